package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/netraid/netraid/meta"
	"github.com/netraid/netraid/resync"
)

// Do runs a control action and returns a message for the operator.
func (n *Node) Do(ctx context.Context, action string, r Request) (string, error) {
	select {
	case <-n.ready:
	default:
		return "", errors.New("the node is starting: try again")
	}
	switch action {
	case ActPromote:
		return n.promoteAndStart(ctx, r.Force)
	case ActDemote:
		return n.demote(r.Force)
	case ActConnect:
		return n.connect(r.DiscardLocal)
	case ActDisconnect:
		return n.disconnect()
	case ActResyncPause, ActResyncResume, ActResyncRate, ActResyncFull:
		return n.resyncControl(action, r.Rate)
	case ActVerify:
		return n.runVerify(ctx, r)
	case ActDiskFail:
		return n.diskFail(r.Disk)
	case ActDiskReplace:
		return n.diskReplace(r.Disk, r.NewDisk)
	case ActDiskInject, ActDiskHeal:
		return n.diskInject(r.Disk, action == ActDiskHeal)
	case ActForgetPeer:
		return n.forgetPeer()
	}
	return "", fmt.Errorf("unknown action %q", action)
}

// primaryOrErr returns the primary machinery or says the action needs it.
func (n *Node) primaryOrErr(what string) (*primary, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.prim == nil {
		return nil, fmt.Errorf("%s runs on the primary; this node is secondary", what)
	}
	return n.prim, nil
}

func (n *Node) connect(discard bool) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cfg.standalone() {
		return "", errors.New("this node has no peer: serve it with --peer and --listen-peer")
	}
	if discard && n.prim != nil {
		return "", errors.New("--discard-local throws this node's changes away, so it must be secondary: run 'netraid demote' first")
	}
	n.disconnected = false
	n.discardLocal = discard
	if n.prim != nil {
		n.prim.kickLink()
	} else if n.peer.state == PeerDisconnected || n.peer.state == PeerStandalone {
		n.setPeer(PeerWaiting, nil)
	}
	if discard {
		return "connecting; this node's changes since the nodes parted will be discarded and it will be resynced from the peer", nil
	}
	return "connecting", nil
}

func (n *Node) disconnect() (string, error) {
	n.mu.Lock()
	if n.cfg.standalone() {
		n.mu.Unlock()
		return "", errors.New("this node has no peer")
	}
	n.disconnected = true
	p := n.prim
	n.setPeer(PeerDisconnected, nil)
	n.endLink()
	n.mu.Unlock()
	if p != nil {
		p.mu.Lock()
		c := p.client
		p.mu.Unlock()
		if c != nil {
			c.Close()
		}
	}
	return "disconnected: the link stays down until 'netraid connect'", nil
}

func (n *Node) resyncControl(action string, rate int64) (string, error) {
	p, err := n.primaryOrErr("resync")
	if err != nil {
		return "", err
	}
	switch action {
	case ActResyncFull:
		if err := n.bm.SetAll(); err != nil {
			return "", err
		}
		p.mu.Lock()
		c := p.client
		p.mu.Unlock()
		if c != nil {
			// Reconnecting starts a resync of everything now dirty.
			c.Close()
		}
		return fmt.Sprintf("the whole volume is marked out of sync; the peer will be resynced (%d bytes)", n.bm.DirtyBytes()), nil
	case ActResyncRate:
		n.mu.Lock()
		n.cfg.ResyncRate = rate
		n.mu.Unlock()
		if e := p.currentEngine(); e != nil {
			e.SetRate(rate)
		}
		if rate == 0 {
			return "resync rate: unlimited", nil
		}
		return fmt.Sprintf("resync rate: %d bytes/s", rate), nil
	case ActResyncPause, ActResyncResume:
		pause := action == ActResyncPause
		n.mu.Lock()
		n.resyncPaused = pause
		n.mu.Unlock()
		if e := p.currentEngine(); e != nil {
			if pause {
				e.Pause()
			} else {
				e.Resume()
			}
		}
		if pause {
			return "resync paused (writes are still mirrored and tracked)", nil
		}
		return "resync resumed", nil
	}
	return "", fmt.Errorf("unknown resync action %q", action)
}

// runVerify starts a verify of the used regions, or of every region with
// r.All or while the superblock asks for a full verify (FlagNeedFullVerify),
// and with r.Wait waits for it.
func (n *Node) runVerify(ctx context.Context, r Request) (string, error) {
	p, err := n.primaryOrErr("verify")
	if err != nil {
		return "", err
	}
	n.mu.Lock()
	if n.verify != nil && n.verify.Running {
		n.mu.Unlock()
		return "", errors.New("a verify is already running: see 'netraid status'")
	}
	full := r.All || n.sb.Flags&meta.FlagNeedFullVerify != 0
	vs := &VerifyStatus{Running: true, Full: full, Total: n.size}
	if n.verify != nil {
		vs.LastFull = n.verify.LastFull
	}
	n.verify = vs
	n.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		res, err := p.mir.Verify(n.ctx, resync.VerifyOptions{Repair: r.Repair, UsedOnly: !full, Progress: func(pr resync.Progress) {
			n.mu.Lock()
			vs.Done, vs.Total = pr.Done, pr.Total
			n.mu.Unlock()
		}})
		n.mu.Lock()
		defer n.mu.Unlock()
		n.verifyDone(vs, res, err, r.Repair)
	}()
	if !r.Wait {
		return "verify started: see 'netraid status'", nil
	}
	select {
	case <-done:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return verifyMessage(vs, r.Repair)
}

// verifyDone records the outcome of a verify in vs. A full verify that
// leaves the copies the same (none differed, or all were repaired) clears
// FlagNeedFullVerify. Callers hold n.mu.
func (n *Node) verifyDone(vs *VerifyStatus, res resync.VerifyResult, err error, repair bool) {
	vs.Running = false
	vs.Finished = time.Now().UTC().Format(time.RFC3339)
	vs.Mismatched = res.Mismatched
	vs.Repaired = repair && err == nil
	if err != nil {
		vs.Error = err.Error()
	} else if vs.Full {
		vs.LastFull = vs.Finished
	}
	if n.sb.Flags&meta.FlagNeedFullVerify == 0 || !fullVerifyDone(vs.Full, repair, len(res.Mismatched), err) {
		return
	}
	if err := n.updateSuper(func(sb *meta.Superblock) { sb.Flags &^= meta.FlagNeedFullVerify }); err != nil {
		// The next verify is a full one again: nothing is lost.
		n.log.Warn("could not record that a full verify was done", "err", err)
	}
}

// fullVerifyDone decides whether a verify ends the need for a full one
// (FlagNeedFullVerify): it compared every region, ended without error,
// and left the copies the same — none differed, or it repaired them. A
// full verify that found mismatches and did not repair them leaves the
// flag, so that a plain 'verify --repair' still sees every region.
func fullVerifyDone(full, repair bool, mismatched int, err error) bool {
	return full && err == nil && (mismatched == 0 || repair)
}

// verifyMessage tells the operator what a verify found. Callers hold n.mu.
func verifyMessage(vs *VerifyStatus, repair bool) (string, error) {
	if vs.Error != "" {
		return "", fmt.Errorf("verify: %s", vs.Error)
	}
	what, again := "verify of the used regions", "netraid verify --repair"
	if vs.Full {
		what, again = "verify of every region", "netraid verify --all --repair"
	}
	msg := fmt.Sprintf("%s: %d mismatched region(s)", what, len(vs.Mismatched))
	if len(vs.Mismatched) > 0 {
		msg += fmt.Sprintf(": %v", vs.Mismatched)
		if repair {
			msg += "; repaired from the primary"
		} else {
			msg += fmt.Sprintf("; run '%s' to copy them again from the primary", again)
		}
	}
	return msg, nil
}

// currentEngine returns the engine of the resync under way, if any.
func (p *primary) currentEngine() *resync.Engine {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.engine
}

// forgetPeer forgets the peer's volume identity (its set UUID), so that
// the next peer to meet this node is pinned anew: after the peer's
// machine or disks were replaced, as drbdsetup forget-peer.
func (n *Node) forgetPeer() (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cfg.standalone() {
		return "", errors.New("this node has no peer")
	}
	if n.prim != nil && n.peer.state == PeerConnected {
		return "", errors.New("the peer is connected to this primary: disconnect it first ('netraid disconnect')")
	}
	old := n.sb.PeerSetUUID
	if err := n.updateSuper(func(sb *meta.Superblock) { sb.PeerSetUUID = meta.UUID{} }); err != nil {
		return "", err
	}
	n.log.Warn("forgot the peer's volume: the next peer that authenticates is taken", "old_set", old)
	return fmt.Sprintf("forgot the peer's volume (set %s): the next peer %q that authenticates is taken and pinned", old, n.cfg.PeerName), nil
}
