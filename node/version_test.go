package node_test

import (
	"strings"
	"testing"

	"github.com/netraid/netraid/internal/sim"
	"github.com/netraid/netraid/node"
)

// TestVersionSkew: two nodes of a pair that run different versions
// both say so, in status and once in the log, and still mirror (a
// rolling upgrade passes through this state); nodes of one version say
// nothing.
func TestVersionSkew(t *testing.T) {
	versions := map[string]string{"a": "1.4.0", "b": "1.5.0"}
	s := newSynced(t, sim.Options{Config: func(name string, cfg *node.Config) { cfg.Version = versions[name] }})
	for name, other := range map[string]string{"a": "b", "b": "a"} {
		st := s.status(name)
		found := false
		for _, p := range st.Problems {
			found = found || strings.Contains(p, "the peer runs netraid "+versions[other]+" and this node "+versions[name])
		}
		if !found {
			t.Errorf("%s's status does not say the versions differ: %q", name, st.Problems)
		}
		if st.Peer == nil || st.Peer.Version != versions[other] {
			t.Errorf("%s's status gives the peer's version as %+v", name, st.Peer)
		}
	}
	s.waitLog(0, `msg="the peer runs another version of netraid"`, "node=a")
	s.waitLog(0, `msg="the peer runs another version of netraid"`, "node=b")
}

// TestSameVersionSilent: a pair of one version raises no problem.
func TestSameVersionSilent(t *testing.T) {
	s := newSynced(t, sim.Options{Config: func(_ string, cfg *node.Config) { cfg.Version = "1.5.0" }})
	for _, name := range []string{"a", "b"} {
		for _, p := range s.status(name).Problems {
			if strings.Contains(p, "the peer runs netraid") {
				t.Errorf("%s: %s", name, p)
			}
		}
	}
}
