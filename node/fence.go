package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/netraid/netraid/meta"
	"github.com/netraid/netraid/witness"
)

// Automatic, fenced failover through the witness (etcd): see doc.go. The
// rule that keeps it safe: a primary answers a write only if its in-sync
// peer got it, or the peer is recorded outdated in the witness under the
// primary's live election key.

// fence is the node's side of it; nil without a witness.
type fence struct {
	w *witness.Client
	// Guarded by n.mu:
	lead *witness.Leadership // while this node holds the election
	seen int64               // the newest fencing token this node saw
	// users counts the campaigns of this node under way or won and not
	// yet kept or given up; resigning is closed when the last
	// resignation begun ends (see campaign).
	users     int
	resigning chan struct{}
	// view is the witness as last looked at, for status.
	view fenceView
	// why says why this secondary does not promote itself, if it would.
	why string
	// lostAt is when this secondary found its primary gone; lastFailover
	// and took are when it last promoted itself, and how long after.
	lostAt       time.Time
	lastFailover time.Time
	fencedAt     time.Time // when this node last demoted itself for fencing
	took         time.Duration
}

// fenceView is what the node last saw of the witness.
type fenceView struct {
	at        time.Time
	holder    witness.Holder
	own, peer *witness.Record
	err       string
	// leaseLeft is what the witness said is left of lease's session,
	// the election this node held when it looked (nil: none).
	lease     *witness.Leadership
	leaseLeft time.Duration
}

// OnNoQuorum policies: what a primary does with writes its peer did not
// get while it cannot record the peer outdated.
const (
	// NoQuorumSuspend holds them, neither answered nor failed, until the
	// witness or the peer returns.
	NoQuorumSuspend = "suspend"
	// NoQuorumIOError fails them.
	NoQuorumIOError = "io-error"
)

// newFence makes the witness client. It runs before the peer server
// starts: a hello reads n.fence, and a control message may replace n.sb.
func (n *Node) newFence() error {
	w, err := witness.New(witness.Options{
		Endpoints: n.cfg.Etcd, TLS: n.cfg.EtcdTLS, Backend: n.cfg.Witness, TTL: n.cfg.LeaseTTL, Volume: n.sb.Name, Node: n.cfg.Name,
		Logger: n.log,
	})
	if err != nil {
		return err
	}
	n.fence = &fence{w: w}
	return nil
}

// startFence starts the node's loops of the witness.
func (n *Node) startFence(ctx context.Context) {
	n.wg.Go(func() { n.watchWitness(ctx) })
	n.wg.Go(func() { n.promoter(ctx) })
}

// stopFence resigns the election (so that the peer need not wait out the
// lease) and closes the client.
func (n *Node) stopFence() {
	if n.fence == nil {
		return
	}
	n.mu.Lock()
	lead := n.fence.lead
	n.fence.lead = nil
	n.mu.Unlock()
	if lead != nil {
		ctx, cancel := context.WithTimeout(context.Background(), n.fence.w.TTL())
		lead.Resign(ctx)
		cancel()
	}
	n.fence.w.Close()
}

// watchWitness looks at the witness every third of a lease, for status
// and for a primary whose lease ended.
func (n *Node) watchWitness(ctx context.Context) {
	f := n.fence
	t := time.NewTicker(max(f.w.TTL()/3, 100*time.Millisecond))
	defer t.Stop()
	for {
		n.lookAtWitness(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// lookAtWitness reads who holds the election and the outdated records,
// and acts on a leadership whose session ended.
func (n *Node) lookAtWitness(ctx context.Context) {
	f := n.fence
	v := fenceView{at: time.Now()}
	var errs []error
	var err error
	if v.holder, err = f.w.Leader(ctx); err != nil {
		errs = append(errs, err)
	}
	if v.own, err = f.w.Outdated(ctx, n.cfg.Name); err != nil {
		errs = append(errs, err)
	}
	if n.cfg.PeerName != "" {
		if v.peer, err = f.w.Outdated(ctx, n.cfg.PeerName); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		v.err = errors.Join(errs...).Error()
	}
	n.mu.Lock()
	lead := f.lead
	n.mu.Unlock()
	if lead != nil {
		v.lease = lead
		if v.leaseLeft, err = lead.TimeLeft(ctx); err != nil && v.err == "" {
			v.err = err.Error()
		}
	}
	n.mu.Lock()
	f.view = v
	f.seen = max(f.seen, v.holder.Token)
	n.mu.Unlock()
	if lead == nil {
		return
	}
	select {
	case <-lead.Done():
		n.leaseEnded(lead)
	default:
	}
}

// leaseEnded handles the end of this node's election: its lease expired
// (the witness unreachable for a TTL) or was revoked. A primary with its
// in-sync peer goes on (the peer cannot be promoted while it is
// connected) and campaigns again; one without demotes itself: nothing it
// answers could be kept from a peer promoted in its place.
func (n *Node) leaseEnded(lead *witness.Leadership) {
	n.mu.Lock()
	if n.fence.lead != lead {
		n.mu.Unlock()
		return
	}
	n.fence.lead = nil
	p := n.prim
	n.mu.Unlock()
	if p == nil {
		return
	}
	if p.peerInSync() {
		n.log.Warn("the election's lease ended while the peer is in sync: going on, and campaigning again")
		n.wg.Go(func() { n.recampaign(p) })
		return
	}
	n.log.Error("the election's lease ended with no in-sync peer: this node demotes itself; writes held are failed")
	n.fenceDemote(p, errors.New("this node lost its election in the witness with no in-sync peer"))
}

// recampaign wins the election back for a primary that lost it while
// its peer was in sync, once the witness answers again and while it is
// primary.
func (n *Node) recampaign(p *primary) {
	for {
		ctx, cancel := context.WithCancel(p.ctx)
		lead, err := n.campaign(ctx)
		cancel()
		if err == nil {
			n.mu.Lock()
			defer n.mu.Unlock()
			if n.prim == p {
				n.keepLocked(lead)
				n.log.Info("won the election again", "token", lead.Token)
				return
			}
			n.giveUpLocked(lead)
			return
		}
		select {
		case <-p.ctx.Done():
			return
		case <-time.After(n.fence.w.TTL() / 3):
		}
	}
}

// fenceDemote demotes a primary that may no longer answer writes: the
// writes it holds fail (they were never answered), the on-demote
// commands run, and the superblock records that it demoted for fencing.
// It demotes p only: a node already demoted (by the operator, or by the
// other path to this) or primary again since is left alone.
func (n *Node) fenceDemote(p *primary, why error) {
	p.mir.FailAcks(why)
	n.roleMu.Lock()
	defer n.roleMu.Unlock()
	n.mu.Lock()
	current := n.prim == p
	n.mu.Unlock()
	if !current {
		return
	}
	select {
	case <-p.stopCh:
		// A shutdown stopped it already (it leaves n.prim set): it
		// cannot be stopped twice.
	default:
		if _, err := n.demoteLocked(true, p); err != nil {
			n.log.Error("demoting after losing the election", "err", err)
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.fence.fencedAt = time.Now()
	if err := n.updateSuper(func(sb *meta.Superblock) { sb.Flags |= meta.FlagFenced }); err != nil {
		n.log.Error("recording that this node demoted for fencing", "err", err)
	}
}

// fencePeerLost is the witness's part of losing the peer, called by
// legFailed once the new generation is recorded, before any write the
// peer lacks is answered: the peer is recorded outdated under this
// node's election key. If that cannot be done now, the answers are held
// (or failed, with --on-no-quorum io-error) while a goroutine retries
// until it can, or the peer is back in sync, or the node is fenced.
// It reports whether the record was made now.
func (p *primary) fencePeerLost(gen uint64) bool {
	n := p.n
	f := n.fence
	if f == nil {
		return false
	}
	err := p.recordPeerOutdated(gen)
	if err == nil {
		return true
	}
	if errors.Is(err, witness.ErrNotLeader) && p.electing.Load() {
		// Promoted with --force, it has not won the election yet:
		// held until it has (electForced records the peer then).
		p.mir.HoldAcks(holdFence)
		return false
	}
	if errors.Is(err, witness.ErrNotLeader) {
		n.log.Error("the peer is lost and this node no longer holds the election: demoting", "err", err)
		p.mir.HoldAcks(holdFence)
		n.wg.Go(func() { n.fenceDemote(p, fmt.Errorf("peer lost and the election lost: %w", err)) })
		return false
	}
	if n.cfg.OnNoQuorum == NoQuorumIOError {
		p.mir.FailAcks(fmt.Errorf("the peer is lost and the witness cannot record it (--on-no-quorum io-error): %w", err))
		n.mu.Lock()
		n.suspended = fmt.Sprintf("I/O fails since %s: the peer is lost and the witness (etcd) cannot record it outdated (%v); demote and promote again once it can",
			time.Now().UTC().Format(time.RFC3339), err)
		n.mu.Unlock()
		return false
	}
	p.mir.HoldAcks(holdFence)
	n.mu.Lock()
	n.suspended = fmt.Sprintf("I/O held since %s: the peer is lost and the witness (etcd) cannot record it outdated (%v); "+
		"writes are neither answered nor failed until the witness or the peer is back", time.Now().UTC().Format(time.RFC3339), err)
	n.logOnce("I/O held: the witness cannot record the lost peer outdated", err)
	n.mu.Unlock()
	n.wg.Go(func() { p.retryPeerOutdated(gen) })
	return false
}

// electForced campaigns for the election for a primary promoted with
// --force without it (another node held it, or the witness did not
// answer). Its answers stay held (holdFence) until it wins, then until
// it records the peer outdated (fencePromoted); they fail if it stops
// being primary first.
func (p *primary) electForced() {
	n := p.n
	n.mu.Lock()
	said := fmt.Sprintf("I/O held since %s: promoted with --force without the volume's election in the witness (etcd); "+
		"writes are answered once this node wins it (when the node holding it resigns or its lease ends) and records its peer outdated, "+
		"or fail if this node is demoted", time.Now().UTC().Format(time.RFC3339))
	n.suspended = said
	n.mu.Unlock()
	unsay := func() {
		n.mu.Lock()
		if n.suspended == said {
			n.suspended = ""
		}
		n.mu.Unlock()
	}
	// The campaign ends when a demotion or shutdown begins: its drain
	// waits for the answers held here, which then fail.
	ctx, cancel := context.WithCancel(p.ctx)
	defer cancel()
	go func() {
		select {
		case <-p.stopCh:
			cancel()
		case <-ctx.Done():
		}
	}()
	defer unsay()
	for {
		lead, err := n.campaign(ctx)
		if err == nil {
			n.mu.Lock()
			if n.prim == p {
				n.keepLocked(lead)
				gen := n.gens().Current
				n.mu.Unlock()
				p.electing.Store(false)
				n.log.Info("won the volume's election after a forced promotion", "token", lead.Token)
				p.fencePromoted(gen)
				return
			}
			n.giveUpLocked(lead)
			n.mu.Unlock()
			break
		}
		select {
		case <-p.stopCh:
		case <-p.ctx.Done():
		case <-time.After(n.fence.w.TTL() / 3):
			continue
		}
		break
	}
	p.mir.FailAcks(errors.New("the node stopped being primary before it won the volume's election"))
}

// fencePromoted records the peer outdated for a primary promoted while
// its peer was away: from its first write on it answers writes the peer
// lacks. Its answers are held from the promotion (HoldAcks) until the
// record is made, or as fencePeerLost says.
func (p *primary) fencePromoted(gen uint64) {
	if p.fencePeerLost(gen) {
		p.mir.ReleaseAcks(holdFence)
	}
}

// recordPeerOutdated records the peer outdated as of gen under this
// node's election key, unless the peer is in sync again: it then holds
// every write answered, and there is nothing to record.
func (p *primary) recordPeerOutdated(gen uint64) error {
	return p.recordOutdated(p.n.cfg.PeerName, gen, p.peerInSync)
}

// recordOutdated records node's copy (the peer's, or this node's own
// disks') outdated as of gen under this node's election key, unless
// needless (if not nil) says, once it is this record's turn (recMu),
// that there is nothing to record. Without a witness there is nothing
// to record.
func (p *primary) recordOutdated(node string, gen uint64, needless func() bool) error {
	n := p.n
	if n.fence == nil {
		return nil
	}
	p.recMu.Lock()
	defer p.recMu.Unlock()
	if needless != nil && needless() {
		return nil
	}
	n.mu.Lock()
	lead := n.fence.lead
	n.mu.Unlock()
	if lead == nil {
		return witness.ErrNotLeader
	}
	ctx, cancel := context.WithTimeout(p.ctx, n.fence.w.TTL())
	defer cancel()
	if err := lead.RecordOutdated(ctx, node, gen); err != nil {
		return err
	}
	n.log.Warn("recorded outdated in the witness", "node", node, "generation", fmt.Sprintf("%016X", gen))
	return nil
}

// retryPeerOutdated ends a hold of the answers: when the record is made,
// when the peer is back in sync (it holds every write held), or, failed,
// when this node is fenced or stops being primary.
func (p *primary) retryPeerOutdated(gen uint64) {
	n := p.n
	release := func() {
		n.mu.Lock()
		n.suspended = ""
		n.mu.Unlock()
		p.mir.ReleaseAcks(holdFence)
	}
	for attempt := 0; ; attempt++ {
		select {
		case <-p.stopCh:
			p.mir.FailAcks(errors.New("the node stopped being primary while its answers were held"))
			return
		case <-time.After(retryDelay(attempt)):
		}
		if p.peerInSync() {
			n.log.Info("the peer is back in sync: held writes are answered")
			release()
			return
		}
		err := p.recordPeerOutdated(gen)
		switch {
		case err == nil:
			release()
			return
		case errors.Is(err, witness.ErrNotLeader):
			n.mu.Lock()
			ended := n.fence.lead == nil
			n.mu.Unlock()
			if ended {
				// The lease ended: leaseEnded demotes this node (no
				// in-sync peer).
				continue
			}
			n.fenceDemote(p, fmt.Errorf("peer lost and the election lost: %w", err))
			return
		}
	}
}

// clearRecordIf removes node's outdated record once its copy holds
// every write answered, if holds still says so after the record is read.
// The record is read after every record made before (recMu): one that
// reached the witness late, after the copy was made whole, is removed.
// A record made for a later loss is made after holds stops saying so:
// either it is read and holds says no (it stays), or it is made after
// this removal (it waits for recMu; and the removal, guarded by the
// revision read, never takes a record made since). Without a witness,
// without a record, or when the witness does not answer, nothing is
// removed (promoting that copy takes --force until a later resync
// removes it).
func (p *primary) clearRecordIf(node string, holds func() bool) {
	n := p.n
	if n.fence == nil {
		return
	}
	p.recMu.Lock()
	defer p.recMu.Unlock()
	ctx, cancel := context.WithTimeout(p.ctx, n.fence.w.TTL())
	defer cancel()
	r, err := n.fence.w.Outdated(ctx, node)
	if err != nil {
		n.log.Warn("reading an outdated record in the witness: it stays", "node", node, "err", err)
		return
	}
	if r == nil || !holds() {
		return
	}
	n.mu.Lock()
	lead := n.fence.lead
	n.mu.Unlock()
	if lead == nil {
		return
	}
	if err := lead.ClearOutdated(ctx, r); err != nil {
		n.log.Warn("clearing an outdated record in the witness", "node", r.Node, "err", err)
	}
}

// leadershipFor wins the election for a promotion, within a lease or
// two; a node already holding it keeps it. won says the leadership is
// new: the caller keeps it (keepLocked) or gives it up (giveUpLocked).
func (n *Node) leadershipFor(ctx context.Context) (lead *witness.Leadership, won bool, err error) {
	n.mu.Lock()
	lead = n.fence.lead
	n.mu.Unlock()
	if lead != nil {
		select {
		case <-lead.Done():
		default:
			return lead, false, nil
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 2*n.fence.w.TTL())
	defer cancel()
	lead, err = n.campaign(ctx)
	if err != nil {
		n.mu.Lock()
		holder := n.fence.view.holder
		n.mu.Unlock()
		if holder.Node != "" && holder.Node != n.cfg.Name {
			return nil, false, fmt.Errorf("%s holds the volume's election in the witness (token %d): demote it first, or wait for its lease to end", holder.Node, holder.Token)
		}
		return nil, false, fmt.Errorf("winning the volume's election in the witness: %w", err)
	}
	return lead, true, nil
}

// Every leadership of this node shares one election key (one witness
// session): a campaign while a leadership is held, or being given up,
// wins that same key at once. So the node counts its campaigns
// (fence.users), gives a key up only when no campaign of its own and no
// primary of its own uses it, and a campaign first waits for the
// resignations begun before it: otherwise a late resignation deletes
// the key a newer campaign has just won, and that node, primary, finds
// it does not hold the election.

// campaign waits until this node wins the volume's election, or ctx
// ends; a leadership won is then the caller's to keep (keepLocked) or
// give up (giveUpLocked).
func (n *Node) campaign(ctx context.Context) (*witness.Leadership, error) {
	f := n.fence
	n.mu.Lock()
	f.users++
	ch := f.resigning
	n.mu.Unlock()
	var err error
	if ch != nil {
		select {
		case <-ch:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	var lead *witness.Leadership
	if err == nil {
		lead, err = f.w.Campaign(ctx)
	}
	if err != nil {
		n.mu.Lock()
		f.users--
		n.mu.Unlock()
		return nil, err
	}
	return lead, nil
}

// keepLocked makes a leadership won by campaign this node's. Callers
// hold n.mu.
func (n *Node) keepLocked(lead *witness.Leadership) {
	n.fence.users--
	n.fence.lead = lead
	n.fence.seen = max(n.fence.seen, lead.Token)
}

// giveUpLocked gives up a leadership won by campaign that this node does
// not keep. Callers hold n.mu.
func (n *Node) giveUpLocked(lead *witness.Leadership) {
	n.fence.users--
	n.resignKeyLocked(lead)
}

// resignKeyLocked resigns lead's key in the background, unless a
// campaign of this node or the leadership it holds uses that key. The
// next campaign waits for it. Callers hold n.mu.
func (n *Node) resignKeyLocked(lead *witness.Leadership) {
	f := n.fence
	if f.users > 0 || f.lead != nil && f.lead.Key() == lead.Key() {
		return
	}
	prev, ch := f.resigning, make(chan struct{})
	f.resigning = ch
	n.wg.Go(func() {
		if prev != nil {
			<-prev
		}
		ctx, cancel := context.WithTimeout(context.Background(), f.w.TTL())
		lead.Resign(ctx)
		cancel()
		n.mu.Lock()
		if f.resigning == ch {
			f.resigning = nil
		}
		n.mu.Unlock()
		close(ch)
	})
}

// outdatedRefusal reads this node's record in the witness, once it holds
// the election (nobody else can write one then): a copy recorded
// outdated lacks writes its peer acknowledged alone, and is promoted
// only with --force.
func (n *Node) outdatedRefusal(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, n.fence.w.TTL())
	defer cancel()
	r, err := n.fence.w.Outdated(rctx, n.cfg.Name)
	switch {
	case err != nil:
		return fmt.Errorf("reading this node's record in the witness: %w; --force promotes without it", err)
	case r != nil:
		return fmt.Errorf("the witness records this node's copy outdated (by %s at %s, generation %016X): the peer acknowledged writes it lacks; "+
			"start the peer, or --force to promote this copy and lose them", r.By, r.Time.Format(time.RFC3339), r.Generation)
	}
	return nil
}

// promoter is a secondary's side of automatic failover: while it has no
// primary (no link open for a ping interval and time-out), its copy is
// up to date and the witness does not record it outdated, it campaigns;
// when it wins and all of that still holds, it promotes itself and runs
// the on-promote commands. It stops campaigning as soon as a primary
// connects.
func (n *Node) promoter(ctx context.Context) {
	t := time.NewTicker(max(n.cfg.PingInterval/2, 50*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if ok, why := n.selfPromotion(); !ok {
			n.mu.Lock()
			n.fence.why = why
			n.mu.Unlock()
			continue
		}
		n.campaignAndPromote(ctx)
	}
}

// selfPromotion says whether this node should campaign to promote itself
// now, and if not, why (empty when there is nothing to say: it is
// primary, or its primary is connected).
func (n *Node) selfPromotion() (bool, string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	f := n.fence
	switch lv := n.linkView(); {
	case n.prim != nil, lv.Live:
		f.lostAt = time.Time{}
		return false, ""
	case n.disconnected:
		return false, "the link was taken down by the operator ('netraid connect')"
	}
	if f.lostAt.IsZero() {
		f.lostAt = time.Now()
	}
	switch {
	case n.sb.FailedMembers != 0:
		return false, fmt.Sprintf("member disk(s) %#x failed: replace them", n.sb.FailedMembers)
	case n.sb.DiskState != meta.UpToDate && n.sb.DiskState != meta.JustCreated:
		return false, fmt.Sprintf("this node's copy is %s: it does not promote itself; 'netraid promote --force' loses what only the peer holds", n.sb.DiskState)
	case f.view.own != nil:
		r := f.view.own
		return false, fmt.Sprintf("the witness records this node's copy outdated (by %s at %s, generation %016X): the peer holds writes it lacks; "+
			"start the peer, or 'netraid promote --force' to lose them", r.By, r.Time.Format(time.RFC3339), r.Generation)
	case f.view.at.IsZero() || f.view.err != "" && f.view.own == nil && f.view.holder.Node == "":
		return false, "the witness (etcd) does not answer: no automatic promotion until it does"
	}
	return true, ""
}

// campaignAndPromote campaigns until this node wins or a primary
// connects, then promotes it if it still may.
func (n *Node) campaignAndPromote(ctx context.Context) {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-cctx.Done():
				return
			case <-t.C:
				if ok, _ := n.selfPromotion(); !ok {
					cancel()
					return
				}
			}
		}
	}()
	lead, err := n.campaign(cctx)
	if err != nil {
		return
	}
	// Won: read the record again, now that nobody else can write one.
	rctx, rcancel := context.WithTimeout(ctx, n.fence.w.TTL())
	own, err := n.fence.w.Outdated(rctx, n.cfg.Name)
	rcancel()
	n.mu.Lock()
	if err == nil {
		n.fence.view.own = own
	}
	n.mu.Unlock()
	ok, why := n.selfPromotion()
	if err != nil {
		ok, why = false, "the witness did not answer after the election was won: "+err.Error()
	}
	if !ok {
		n.mu.Lock()
		n.fence.why = why
		n.giveUpLocked(lead)
		n.mu.Unlock()
		return
	}
	n.mu.Lock()
	lost := n.fence.lostAt
	n.keepLocked(lead)
	n.mu.Unlock()
	n.log.Warn("won the volume's election with no primary: promoting this node", "token", lead.Token)
	if _, err := n.promoteAndStart(ctx, false); err != nil {
		n.log.Error("promoting after winning the election", "err", err)
		n.mu.Lock()
		n.fence.why = "promoting failed: " + err.Error()
		if n.prim == nil && n.fence.lead == lead {
			// Not primary: the election goes, or the peer could never
			// win it.
			n.resignLocked()
		}
		n.mu.Unlock()
		// Let the peer try first.
		select {
		case <-ctx.Done():
		case <-time.After(n.fence.w.TTL()):
		}
		return
	}
	n.mu.Lock()
	n.fence.lastFailover, n.fence.took = time.Now(), time.Since(lost)
	n.fence.why = ""
	n.mu.Unlock()
	n.log.Info("failover done", "after", time.Since(lost).Round(time.Millisecond))
}

// resignLocked gives the election up, if held, in the background.
// Callers hold n.mu.
func (n *Node) resignLocked() {
	if n.fence == nil || n.fence.lead == nil {
		return
	}
	lead := n.fence.lead
	n.fence.lead = nil
	n.resignKeyLocked(lead)
}
