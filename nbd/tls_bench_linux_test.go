package nbd

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/tls"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// These benchmarks measure the data path of the replication link and of
// an export: an nbd.Client streaming 1 MiB requests, 8 in flight, to a
// Server over loopback TCP, in plaintext and through STARTTLS, against a
// device that costs nothing, so what is left is the protocol, the
// sockets and the cipher. Each reports MB/s and the CPU the process used
// (client and server together): "cores" is CPU time over wall time,
// "cpu-us/MiB" the CPU time one MiB costs.
//
//	go test ./nbd -run '^$' -bench 'Stream|AESGCM' -benchtime 2s

const (
	benchRequest  = 1 << 20
	benchInflight = 8
)

// discard is a device that drops writes and reads nothing.
type discard struct{ size int64 }

func (d discard) ReadAt(p []byte, off int64) (int, error)  { return len(p), nil }
func (d discard) WriteAt(p []byte, off int64) (int, error) { return len(p), nil }
func (d discard) Flush() error                             { return nil }
func (d discard) Size() int64                              { return d.size }
func (d discard) Close() error                             { return nil }

func BenchmarkStream(b *testing.B) {
	p := newTestPKI(b)
	for _, mode := range []string{"plain", "tls"} {
		for _, op := range []Command{CmdWrite, CmdRead} {
			b.Run(fmt.Sprintf("%s/%v", mode, op), func(b *testing.B) {
				var srv, cli *tls.Config
				if mode == "tls" {
					srv, cli = p.server(b, "a"), p.client(b, "alice")
				}
				benchStream(b, srv, cli, op)
			})
		}
	}
}

func benchStream(b *testing.B, srv, cli *tls.Config, op Command) {
	const size = 1 << 30
	ts := startServer(b, "tcp", ServerOptions{TLS: srv, TLSRequired: srv != nil, MaxInflight: benchInflight},
		Export{Name: "null", Dev: discard{size}})
	c := ts.dial(b, ClientOptions{Export: "null", TLS: cli, Timeout: time.Minute})
	if c.TLS() != (cli != nil) {
		b.Fatalf("TLS on the client: %v", c.TLS())
	}
	b.SetBytes(benchRequest)
	var next atomic.Int64
	var failed sync.Mutex
	var firstErr error
	work := func() {
		buf := pattern(1, benchRequest)
		for {
			n := int(next.Add(1) - 1)
			if n >= b.N {
				return
			}
			off := int64(n%(size/benchRequest)) * benchRequest
			var err error
			if op == CmdWrite {
				_, err = c.WriteAt(buf, off)
			} else {
				_, err = c.ReadAt(buf, off)
			}
			if err != nil {
				failed.Lock()
				firstErr = err
				failed.Unlock()
				return
			}
		}
	}
	var wg sync.WaitGroup
	cpu0 := cpuTime(b)
	b.ResetTimer()
	start := time.Now()
	for range benchInflight {
		wg.Go(work)
	}
	wg.Wait()
	b.StopTimer()
	wall, cpu := time.Since(start), cpuTime(b)-cpu0
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	b.ReportMetric(cpu.Seconds()/wall.Seconds(), "cores")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/MiB")
}

// cpuTime is the user and system CPU time the process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAESGCM is the cipher alone: sealing and opening one full TLS
// record (16 KiB) with each key size TLS 1.3 may pick.
func BenchmarkAESGCM(b *testing.B) {
	const record = 16 << 10
	for _, bits := range []int{128, 256} {
		aead := newGCM(b, bits)
		nonce := make([]byte, aead.NonceSize())
		plain := pattern(2, record)
		sealed := aead.Seal(nil, nonce, plain, nil)
		b.Run(fmt.Sprintf("seal/%d", bits), func(b *testing.B) {
			out := make([]byte, 0, len(sealed))
			b.SetBytes(record)
			for b.Loop() {
				aead.Seal(out[:0], nonce, plain, nil)
			}
		})
		b.Run(fmt.Sprintf("open/%d", bits), func(b *testing.B) {
			out := make([]byte, 0, record)
			b.SetBytes(record)
			for b.Loop() {
				if _, err := aead.Open(out[:0], nonce, sealed, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func newGCM(b *testing.B, bits int) cipher.AEAD {
	block, err := aes.NewCipher(make([]byte, bits/8))
	if err != nil {
		b.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		b.Fatal(err)
	}
	return aead
}
