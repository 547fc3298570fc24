package version

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	vcs := func(main string, settings ...debug.BuildSetting) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) {
			return &debug.BuildInfo{Main: debug.Module{Version: main}, Settings: settings}, true
		}
	}
	rev := debug.BuildSetting{Key: "vcs.revision", Value: "3b4cfc70a1b2c3d4e5f60718293a4b5c6d7e8f90"}
	dirty := debug.BuildSetting{Key: "vcs.modified", Value: "true"}
	none := func() (*debug.BuildInfo, bool) { return nil, false }
	tests := []struct {
		name     string
		injected Info
		read     func() (*debug.BuildInfo, bool)
		version  string
		in       []string // in String()
		notIn    []string
	}{
		{"injected wins", Info{Version: "v1.2.0"}, vcs("v0.0.0-2025-abc", rev), "v1.2.0", []string{"v1.2.0 (commit 3b4cfc70a1b2,"}, []string{"modified"}},
		{"injected commit", Info{Version: "devel", Commit: "0123456789abcdef", Modified: true}, vcs("(devel)"), "devel", []string{"devel (commit 0123456789ab, modified, go"}, nil},
		{"stamped by go build", Info{}, vcs("v0.0.0-20250101000000-3b4cfc70a1b2+dirty", rev, dirty), "v0.0.0-20250101000000-3b4cfc70a1b2+dirty", []string{"commit 3b4cfc70a1b2, modified"}, nil},
		{"devel", Info{}, vcs("(devel)"), "devel", []string{"devel (go"}, []string{"commit"}},
		{"no build info", Info{}, none, "devel", []string{"devel (go"}, []string{"commit"}},
	}
	for _, tt := range tests {
		in := fromBuildInfo(tt.injected, tt.read)
		if in.Version != tt.version {
			t.Errorf("%s: version %q, want %q", tt.name, in.Version, tt.version)
		}
		s := in.String()
		for _, w := range tt.in {
			if !strings.Contains(s, w) {
				t.Errorf("%s: %q does not contain %q", tt.name, s, w)
			}
		}
		for _, w := range tt.notIn {
			if strings.Contains(s, w) {
				t.Errorf("%s: %q contains %q", tt.name, s, w)
			}
		}
		if strings.Contains(s, "\n") {
			t.Errorf("%s: %q is not one line", tt.name, s)
		}
	}
}
