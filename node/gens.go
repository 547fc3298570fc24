package node

import "github.com/netraid/netraid/repl"

// The generations and the verdict of a meeting are the replication
// protocol's (package repl).
type (
	Gens    = repl.Gens
	Verdict = repl.Verdict
)

const (
	NoSync      = repl.NoSync
	BitmapSync  = repl.BitmapSync
	FullSync    = repl.FullSync
	SplitBrain  = repl.SplitBrain
	Unrelated   = repl.Unrelated
	TargetNewer = repl.TargetNewer
)

// Decide is repl.Decide.
func Decide(src, dst Gens, discardTarget bool) Verdict { return repl.Decide(src, dst, discardTarget) }
