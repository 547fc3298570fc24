package node

import (
	"sync"

	"github.com/netraid/netraid/resync"
)

// resyncState is the progress of the resync under way, for status.
type resyncState struct {
	mu   sync.Mutex
	kind string
	last resync.Progress
	rate int64
}

func newResyncState(kind string, total, rate int64) *resyncState {
	return &resyncState{kind: kind, last: resync.Progress{Total: total}, rate: rate}
}

func (r *resyncState) update(p resync.Progress) {
	r.mu.Lock()
	r.last = p
	r.mu.Unlock()
}

func (r *resyncState) status() *ResyncStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return &ResyncStatus{
		Kind: r.kind, Done: r.last.Done, Total: r.last.Total, Rate: r.last.Rate,
		RateLimit: r.rate, ETASeconds: r.last.ETA.Seconds(), Paused: r.last.Paused,
	}
}
