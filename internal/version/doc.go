// Package version says which netraid a binary is: the version given at
// build time, or else the main module's version that the go command
// stamps from version control, and the commit it was built from.
//
// `make build` injects what git says, since a build may not be stamped
// (GOFLAGS=-buildvcs=false, a git worktree):
//
//	go build -ldflags "-X github.com/netraid/netraid/internal/version.version=v1.2.0
//	  -X github.com/netraid/netraid/internal/version.commit=3b4cfc7…
//	  -X github.com/netraid/netraid/internal/version.modified=true"
//
// What the go command stamped in the build info is used where nothing
// was injected.
//
// Invariants:
//   - Get never fails: a binary without build information (a test binary,
//     one built with -buildvcs=false) reports the version "devel" and no
//     commit.
//   - String is one line, the same everywhere it is shown (--version, the
//     log's first line, status).
package version
