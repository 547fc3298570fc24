package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Set by the linker (-X); empty means "from the build info".
var version, commit, modified string

// Info is what the binary knows of its own build.
type Info struct {
	Version  string // v1.2.0, a pseudo-version, or "devel"
	Commit   string // the VCS revision, empty if unknown
	Time     string // the commit's time (RFC 3339), empty if unknown
	Modified bool   // built from a tree with uncommitted changes
	Go       string // the Go toolchain
}

// Get returns the binary's build information.
func Get() Info {
	return fromBuildInfo(Info{Version: version, Commit: commit, Modified: modified == "true"}, debug.ReadBuildInfo)
}

// fromBuildInfo completes what was injected with the build info.
func fromBuildInfo(in Info, read func() (*debug.BuildInfo, bool)) Info {
	in.Go = runtime.Version()
	bi, ok := read()
	if ok && in.Commit == "" {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				in.Commit = s.Value
			case "vcs.time":
				in.Time = s.Value
			case "vcs.modified":
				in.Modified = s.Value == "true"
			}
		}
	}
	if ok && in.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		in.Version = bi.Main.Version
	}
	if in.Version == "" {
		in.Version = "devel"
	}
	return in
}

// String is the version on one line: "v1.2.0 (commit 3b4cfc70a1b2,
// modified, go1.26.8)".
func (in Info) String() string {
	var parts []string
	if in.Commit != "" {
		c := in.Commit
		if len(c) > 12 {
			c = c[:12]
		}
		parts = append(parts, "commit "+c)
	}
	if in.Modified {
		parts = append(parts, "modified")
	}
	parts = append(parts, in.Go)
	return fmt.Sprintf("%s (%s)", in.Version, strings.Join(parts, ", "))
}

// String is Get().String().
func String() string { return Get().String() }
