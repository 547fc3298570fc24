package harness

// T is what the harness needs of a test: testing.TB satisfies it, and so
// does the demo's Script, which runs the same steps outside `go test`.
type T interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	Skip(args ...any)
	Skipf(format string, args ...any)
	Cleanup(func())
	Failed() bool
}
