package simnet

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"testing"
	"time"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/devtest"
	"github.com/netraid/netraid/nbd"
)

// The real protocol over the simulated network: the NBD server on a
// listener of host b, clients on connections dialed from host a.

const exportSize = 1 << 20

// serveNBD serves an in-memory export "vol" on b:10809, shut down at
// cleanup (after the clients made later are closed).
func serveNBD(t *testing.T, n *Network, o nbd.ServerOptions) *blockdev.Mem {
	t.Helper()
	srv := nbd.NewServer(o)
	mem := blockdev.NewMem(exportSize)
	if err := srv.AddExport(nbd.Export{Name: "vol", Dev: mem}); err != nil {
		t.Fatal(err)
	}
	l, err := n.Host("b").Listen("tcp", ":10809")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testWait)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return mem
}

// nbdClient opens "vol" from host a, closed at cleanup.
func nbdClient(t *testing.T, n *Network, o nbd.ClientOptions) (*nbd.Client, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	nc, err := n.Host("a").Dial(ctx, "tcp", "b:10809")
	if err != nil {
		return nil, err
	}
	o.Export = "vol"
	c, err := nbd.NewClient(ctx, nc, o)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return c, nil
}

// writeRead writes p at off, flushes, and reads it back.
func writeRead(t *testing.T, c *nbd.Client, p []byte, off int64) {
	t.Helper()
	if _, err := c.WriteAt(p, off); err != nil {
		t.Fatalf("write off %d len %d: %v", off, len(p), err)
	}
	if err := c.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	got := make([]byte, len(p))
	if _, err := c.ReadAt(got, off); err != nil {
		t.Fatalf("read off %d len %d: %v", off, len(p), err)
	}
	if !bytes.Equal(got, p) {
		t.Fatalf("read off %d len %d: not what was written", off, len(p))
	}
}

func TestNBD(t *testing.T) {
	n := New(Options{BufferBytes: 64 << 10}) // smaller than a request
	mem := serveNBD(t, n, nbd.ServerOptions{})
	c, err := nbdClient(t, n, nbd.ClientOptions{})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	if c.Size() != exportSize {
		t.Fatalf("export of %d bytes, want %d", c.Size(), exportSize)
	}
	p, q := pattern(256<<10, 1), pattern(4096, 2)
	writeRead(t, c, p, 0)
	writeRead(t, c, q, exportSize-4096)
	if d := mem.Bytes(); !bytes.Equal(d[:len(p)], p) || !bytes.Equal(d[exportSize-4096:], q) {
		t.Fatal("the export's device does not hold what the client wrote")
	}
	if lost := mem.Crash(); lost != 0 {
		t.Fatalf("a crash of the export's device after the flush lost %d writes", lost)
	}
}

// TestNBDPartition: across a partition a request gets no reply and the
// client breaks after its Timeout; once healed, a new client connects and
// finds what was written before, and the request that timed out lands.
func TestNBDPartition(t *testing.T) {
	n := New(Options{})
	mem := serveNBD(t, n, nbd.ServerOptions{})
	c, err := nbdClient(t, n, nbd.ClientOptions{Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	p := pattern(64<<10, 3)
	writeRead(t, c, p, 0)

	n.Partition("a", "b")
	late := pattern(4096, 4)
	_, err = c.WriteAt(late, 512<<10)
	if !errors.Is(err, nbd.ErrBroken) || !errors.Is(err, blockdev.ErrTimeout) {
		t.Fatalf("write across a partition: %v, want a broken client and a time-out", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), quiet)
	defer cancel()
	if _, err := n.Host("a").Dial(ctx, "tcp", "b:10809"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("dial across a partition: %v, want the context's deadline", err)
	}

	n.Heal("a", "b")
	c2, err := nbdClient(t, n, nbd.ClientOptions{})
	if err != nil {
		t.Fatalf("client after the partition healed: %v", err)
	}
	got := make([]byte, len(p))
	if _, err := c2.ReadAt(got, 0); err != nil || !bytes.Equal(got, p) {
		t.Fatalf("read after the partition healed: %v (equal: %v)", err, bytes.Equal(got, p))
	}
	// The write that timed out was in flight, not lost: once healed, it
	// is delivered and applied, as over TCP. A client's time-out does not
	// say that a write did not happen.
	devtest.WaitWithin(t, testWait, "the timed-out write to land", func() bool {
		return bytes.Equal(mem.Bytes()[512<<10:512<<10+len(late)], late)
	})
}

// TestNBDTLS: the NBD handshake upgrades to TLS over a simulated
// connection, and data moves under it, in records larger than the
// connection's buffer.
func TestNBDTLS(t *testing.T) {
	n := New(Options{BufferBytes: 4096})
	cert, roots := selfSigned(t, "b")
	serveNBD(t, n, nbd.ServerOptions{
		TLS:         &tls.Config{Certificates: []tls.Certificate{cert}},
		TLSRequired: true,
	})
	c, err := nbdClient(t, n, nbd.ClientOptions{TLS: &tls.Config{RootCAs: roots, ServerName: "b"}})
	if err != nil {
		t.Fatalf("TLS client: %v", err)
	}
	if !c.TLS() {
		t.Fatal("the client is not on TLS")
	}
	writeRead(t, c, pattern(300<<10, 5), 4096)

	_, err = nbdClient(t, n, nbd.ClientOptions{TLS: &tls.Config{RootCAs: x509.NewCertPool(), ServerName: "b"}})
	if !errors.Is(err, nbd.ErrTLS) {
		t.Fatalf("client that does not trust the server: %v, want %v", err, nbd.ErrTLS)
	}
}

// TestTLS: crypto/tls alone over a simulated connection: a handshake and
// an echo of 1 MiB through a 4 KiB buffer.
func TestTLS(t *testing.T) {
	_, ca, cb := pair(t, Options{BufferBytes: 4096})
	cert, roots := selfSigned(t, "b")
	srv := tls.Server(cb, &tls.Config{Certificates: []tls.Certificate{cert}})
	echoed := make(chan error, 1)
	go func() {
		srv.SetDeadline(time.Now().Add(testWait))
		_, err := io.CopyN(srv, srv, 1<<20)
		echoed <- err
	}()
	cl := tls.Client(ca, &tls.Config{RootCAs: roots, ServerName: "b"})
	cl.SetDeadline(time.Now().Add(testWait))
	data := pattern(1<<20, 6)
	sent := make(chan error, 1)
	go func() {
		_, err := cl.Write(data)
		sent <- err
	}()
	got := make([]byte, len(data))
	if _, err := io.ReadFull(cl, got); err != nil {
		t.Fatalf("read the echo: %v", err)
	}
	if err := <-sent; err != nil {
		t.Fatalf("send: %v", err)
	}
	if err := <-echoed; err != nil {
		t.Fatalf("echo: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("the echo differs from what was sent")
	}
	if st := cl.ConnectionState(); !st.HandshakeComplete || st.PeerCertificates[0].Subject.CommonName != "b" {
		t.Fatalf("TLS state: %+v", st)
	}
}

// selfSigned makes a certificate for host, and a pool that trusts it.
func selfSigned(t *testing.T, host string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: host},
		DNSNames:              []string{host},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, roots
}
