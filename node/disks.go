package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/meta"
	"github.com/netraid/netraid/mirror"
	"github.com/netraid/netraid/stripe"
)

// memberIndex finds the member whose disk is path (by name, or by being
// the same file or device). Callers hold n.mu.
func (n *Node) memberIndex(path string) (int, error) {
	want, werr := os.Stat(path)
	abs, _ := filepath.Abs(path)
	for _, m := range n.vol.Members() {
		if m.Path == path || m.Path == abs {
			return m.Index, nil
		}
		if werr == nil {
			if fi, err := os.Stat(m.Path); err == nil && os.SameFile(fi, want) {
				return m.Index, nil
			}
		}
	}
	return 0, fmt.Errorf("%s is not a member disk of volume %s: 'netraid status' lists them", path, n.sb.Name)
}

// peerInSync reports whether the primary's peer leg holds everything.
func (p *primary) peerInSync() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.remote != nil && p.remote.State() == mirror.InSync
}

// diskFail marks a member failed, as mdadm --fail does. On the primary
// the local leg fails and the volume is served through the peer; on a
// secondary the node stops taking the primary's writes until the disk
// is replaced.
func (n *Node) diskFail(path string) (string, error) {
	n.mu.Lock()
	idx, err := n.memberIndex(path)
	if err != nil {
		n.mu.Unlock()
		return "", err
	}
	if n.sb.MemberFailed(idx) {
		n.mu.Unlock()
		return fmt.Sprintf("member %d (%s) is already failed", idx, path), nil
	}
	p := n.prim
	if p != nil && !p.peerInSync() {
		n.mu.Unlock()
		return "", fmt.Errorf("the peer is not in sync, so it cannot serve in this node's place: failing %s would leave the volume without a copy", path)
	}
	err = n.updateSuper(func(sb *meta.Superblock) {
		sb.FailedMembers |= 1 << uint(idx)
		sb.DiskState = meta.Failed
	})
	if err != nil {
		n.mu.Unlock()
		return "", err
	}
	n.log.Warn("member disk failed by the operator", "member", idx, "disk", path)
	if p == nil {
		n.endLink()
		n.mu.Unlock()
		return fmt.Sprintf("member %d (%s) failed: this secondary takes no writes until the disk is replaced ('netraid disk replace %s NEW')", idx, path, path), nil
	}
	n.mu.Unlock()
	p.mir.FailLeg(p.local, "disk fail", fmt.Errorf("member %d (%s) failed by the operator", idx, path))
	return fmt.Sprintf("member %d (%s) failed: the volume is served through the peer; replace it with 'netraid disk replace %s NEW'", idx, path, path), nil
}

// diskReplace puts a new disk in a member's place. On the primary the
// local leg rebuilds that disk's share from the peer while the volume
// keeps serving; on a secondary the node asks its primary for a full
// resync.
func (n *Node) diskReplace(old, newPath string) (string, error) {
	if newPath == "" {
		return "", errors.New("disk replace needs the OLD and the NEW disk")
	}
	n.mu.Lock()
	idx, err := n.memberIndex(old)
	if err != nil {
		n.mu.Unlock()
		return "", err
	}
	p := n.prim
	if p != nil && !p.peerInSync() {
		n.mu.Unlock()
		return "", errors.New("the peer is not in sync: it is the source of the rebuild, so wait for it ('netraid status')")
	}
	if p != nil && n.sb.Flags&meta.FlagNeedFullSync != 0 {
		n.mu.Unlock()
		return "", errors.New("a rebuild of this node's copy is not finished: replace another disk when it is ('netraid status')")
	}
	failedBefore := n.sb.MemberFailed(idx)
	n.mu.Unlock()
	if p != nil && !failedBefore {
		if _, err := n.diskFail(old); err != nil {
			return "", err
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	err = n.vol.Replace(idx, newPath, false, func(sb *meta.Superblock) {
		// One member to rebuild from the start, unless the copy already
		// waited for a sync of another: then only a full sync will do.
		if sb.Flags&meta.FlagNeedFullSync == 0 || sb.Rebuilding && int(sb.RebuildMember) == idx {
			sb.SetRebuild(uint32(idx), 0)
		} else {
			sb.ClearRebuild()
		}
		sb.DiskState = meta.Inconsistent
		sb.Flags |= meta.FlagNeedFullSync
	})
	if err != nil {
		return "", err
	}
	n.sb = n.vol.Super()
	n.log.Info("member disk replaced", "member", idx, "old", old, "new", newPath)
	if p == nil {
		n.endLink()
		if n.sb.Rebuilding {
			return fmt.Sprintf("member %d is now %s; its primary will rebuild its share", idx, newPath), nil
		}
		return fmt.Sprintf("member %d is now %s; this node will be resynced in full from its primary", idx, newPath), nil
	}
	if err := p.startRebuild(idx); err != nil {
		return "", err
	}
	return fmt.Sprintf("member %d is now %s; rebuilding its share from the peer ('netraid status' shows progress)", idx, newPath), nil
}

// startRebuild swaps a fresh local leg in (resyncing: it takes every new
// write, serves no read) and copies the replaced member's share from the
// peer in the background. Callers hold n.mu.
func (p *primary) startRebuild(idx int) error {
	n := p.n
	if err := p.mir.RemoveLeg(p.local); err != nil {
		return fmt.Errorf("detaching the failed local leg: %w", err)
	}
	leg, err := p.mir.AddLeg("local", n.localDev(), mirror.Resyncing, true)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.local = leg
	p.mu.Unlock()
	ctx, done := p.ctx, p.beginRebuild()
	p.wg.Go(func() {
		if err := p.rebuildLocal(ctx, RebuildPoint{Member: idx}, done); err != nil {
			n.log.Error("rebuild of the replaced disk stopped; it resumes when the peer is connected again", "member", idx, "err", err)
		}
	})
	return nil
}

// diskInject makes every I/O on a member's data area fail (or, heal,
// work again), when the node runs with fault injection: a disk dying
// under the volume, for tests and drills.
func (n *Node) diskInject(path string, heal bool) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	idx, err := n.memberIndex(path)
	if err != nil {
		return "", err
	}
	if n.cfg.Faults == nil {
		return "", errors.New("fault injection is off: serve the node with --fault-injection to use it")
	}
	if err := n.cfg.Faults.Inject(idx, heal); err != nil {
		return "", err
	}
	if heal {
		return fmt.Sprintf("member %d (%s): I/O works again", idx, path), nil
	}
	n.log.Warn("fault injection: every I/O on a member now fails", "member", idx, "disk", path)
	return fmt.Sprintf("member %d (%s): every I/O now fails", idx, path), nil
}

// failedMembers returns the mask of the members an I/O error names (a
// stripe.DiskError, possibly joined or wrapped).
func failedMembers(err error) uint64 {
	var mask uint64
	var walk func(error)
	walk = func(err error) {
		var de *stripe.DiskError
		if errors.As(err, &de) && de.Disk >= 0 && de.Disk < 64 {
			mask |= 1 << uint(de.Disk)
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
		} else if u := errors.Unwrap(err); u != nil {
			walk(u)
		}
	}
	walk(err)
	return mask
}

// watchedData is the secondary's data device as the primary writes it:
// an I/O error of a member disk marks that member failed, so that the
// node stops taking writes (the primary goes on alone and tracks them)
// until the disk is replaced.
type watchedData struct {
	blockdev.Device
	n *Node
}

func (w watchedData) check(err error) error {
	if err == nil {
		return nil
	}
	if mask := w.n.failedOf(err); mask != 0 {
		w.n.wg.Go(func() { w.n.membersFailed(mask, err) })
	}
	return err
}

func (w watchedData) ReadAt(p []byte, off int64) (int, error) {
	n, err := w.Device.ReadAt(p, off)
	return n, w.check(err)
}

func (w watchedData) WriteAt(p []byte, off int64) (int, error) {
	n, err := w.Device.WriteAt(p, off)
	return n, w.check(err)
}

func (w watchedData) WriteAtFUA(p []byte, off int64) (int, error) {
	n, err := blockdev.WriteFUA(w.Device, p, off)
	return n, w.check(err)
}

func (w watchedData) Flush() error { return w.check(w.Device.Flush()) }

func (w watchedData) Trim(off, n int64) error {
	return w.check(blockdev.Trim(w.Device, off, n))
}

func (w watchedData) WriteZeroes(off, n int64, mayTrim bool) error {
	return w.check(blockdev.WriteZeroes(w.Device, off, n, mayTrim))
}

func (w watchedData) BlockSize() int { return blockdev.BlockSize(w.Device) }

func (w watchedData) Checksum(off, n int64) (blockdev.Sum, error) {
	s, err := blockdev.Checksum(w.Device, off, n)
	return s, w.check(err)
}

// membersFailed records members that failed under the primary's writes
// on a secondary, and cuts the primary off.
func (n *Node) membersFailed(mask uint64, cause error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.prim != nil || n.sb.FailedMembers&mask == mask && n.sb.DiskState == meta.Failed {
		return
	}
	n.log.Error("member disk(s) failed: taking no more writes from the primary", "members", fmt.Sprintf("%#x", mask), "err", cause)
	n.recordFailed(mask, cause)
	n.endLink()
}

// recordFailed records members failed (FailedMembers, by the volume,
// which fails them at once in memory) and the copy failed with them. It
// returns the error of the record, if it could not be made. Callers hold
// n.mu.
func (n *Node) recordFailed(mask uint64, cause error) error {
	if mask != 0 {
		if err := n.vol.FailMembers(mask, cause); err != nil {
			n.log.Error("could not record the failed disks", "members", fmt.Sprintf("%#x", mask), "err", err)
		}
	}
	err := n.updateSuper(func(sb *meta.Superblock) { sb.DiskState = meta.Failed })
	if err != nil {
		n.log.Error("could not record that this node's copy failed", "err", err)
	}
	return err
}

// memberFailed is told by the volume of a member it failed on its own (a
// metadata write that failed or timed out). It runs on that write's
// goroutine, maybe under n.mu: the node acts on it from a goroutine of
// its own. The member is recorded failed already.
func (n *Node) memberFailed(member int, cause error) {
	n.wg.Go(func() {
		n.mu.Lock()
		p := n.prim
		n.mu.Unlock()
		if p == nil {
			n.membersFailed(1<<uint(member), cause)
			return
		}
		// The local copy lacks a member from now on: the leg fails, and
		// the volume is served through the peer (legFailed records it).
		p.mir.FailLeg(p.local, "member disk metadata", fmt.Errorf("member %d failed: %w", member, cause))
	})
}
