package broker

import "context"

// T is what Start needs of a test: testing.TB satisfies it, and so does
// the end-to-end harness's T.
type T interface {
	Helper()
	Cleanup(func())
}

// Start launches a broker for a test (see Launch) and kills it at the
// test's cleanup, logging the end of its log if the test failed. An empty
// WorkDir is taken from t.TempDir() when t has that method.
func Start(t T, o Options) (*Broker, error) {
	t.Helper()
	if o.WorkDir == "" {
		if td, ok := t.(interface{ TempDir() string }); ok {
			o.WorkDir = td.TempDir()
		}
	}
	b, err := Launch(context.Background(), o)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		if f, ok := t.(interface {
			Failed() bool
			Logf(string, ...any)
		}); ok && f.Failed() {
			f.Logf("broker %s (pid %d) log %s ends:\n%s", b.Endpoint(), b.Pid(), b.LogPath(), b.Tail(4000))
		}
		b.Kill()
	})
	return b, nil
}
