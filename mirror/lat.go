package mirror

import (
	"time"

	"github.com/netraid/netraid/internal/lat"
)

// measureLeg records a leg's part of a write or a flush that began at
// t0 (a lat.Start time) and returns when it ended (0 if not measured).
func measureLeg(l *Leg, k kind, t0 int64) int64 {
	var s lat.Stage
	switch {
	case k == kindWrite && l.local:
		s = lat.MirrorLocalWrite
	case k == kindWrite:
		s = lat.MirrorRemoteWrite
	case k == kindFlush && l.local:
		s = lat.MirrorLocalFlush
	case k == kindFlush:
		s = lat.MirrorRemoteFlush
	default:
		return 0
	}
	return lat.Since(s, t0)
}

// legResult is a leg's outcome in a fan-out: its error, and when it
// answered (a lat time; 0 when not measured).
type legResult struct {
	err error
	end int64
}

// measureSkew records how long the first leg to answer waited for the
// last.
func measureSkew(res []legResult) {
	if len(res) < 2 || res[0].end == 0 {
		return
	}
	first, last := res[0].end, res[0].end
	for _, r := range res[1:] {
		if r.end == 0 {
			return
		}
		first, last = min(first, r.end), max(last, r.end)
	}
	lat.Record(lat.MirrorLegSkew, time.Duration(last-first))
}
