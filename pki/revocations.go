package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Revocations is the revocation list of a node or client directory,
// DIR/ca-crl.pem, as its CA (DIR/ca-cert.pem) signed it. It reads the
// file again whenever it changes (size, modification time or inode), so
// that a list copied in takes effect at the next check, without a
// restart. No file: nothing is revoked. A file that cannot be read, or
// that the CA did not sign, revokes everything until it is fixed: a
// broken list must not let a revoked certificate back in.
type Revocations struct {
	path string
	ca   *x509.Certificate

	mu      sync.Mutex
	stamp   fileStamp // of the file the list came from; zero: none
	revoked map[string]bool
	err     error // the last load's, kept until the file changes
}

// fileStamp tells one version of a file from another.
type fileStamp struct {
	size  int64
	mtime time.Time
	ino   uint64
}

// OpenRevocations reads dir's CA certificate and revocation list. It
// fails if the list is there but broken, so that a node does not start
// with one.
func OpenRevocations(dir string) (*Revocations, error) {
	ca, err := readCert(filepath.Join(dir, CACert))
	if err != nil {
		return nil, err
	}
	r := &Revocations{path: filepath.Join(dir, CRLFile), ca: ca}
	if _, err := r.Load(); err != nil {
		return nil, err
	}
	return r, nil
}

// Path is the revocation list's file.
func (r *Revocations) Path() string { return r.path }

// Load reads the list again if the file changed and returns how many
// certificates it revokes, or why it cannot be used.
func (r *Revocations) Load() (int, error) {
	st, err := stampOf(r.path)
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case errors.Is(err, fs.ErrNotExist):
		r.stamp, r.revoked, r.err = fileStamp{}, nil, nil
		return 0, nil
	case err != nil:
		r.stamp, r.err = fileStamp{}, fmt.Errorf("pki: revocation list: %w", err)
		return 0, r.err
	case st == r.stamp:
		return len(r.revoked), r.err
	}
	r.stamp, r.revoked, r.err = st, nil, nil
	crl, err := readCRL(r.path, r.ca)
	if err != nil {
		r.err = err
		return 0, err
	}
	r.revoked = make(map[string]bool, len(crl.RevokedCertificateEntries))
	for _, e := range crl.RevokedCertificateEntries {
		r.revoked[serialKey(e.SerialNumber)] = true
	}
	return len(r.revoked), nil
}

// Check reads the list again if it changed and says whether cert may be
// used: nil, an error wrapping ErrRevoked, or the error that makes the
// list unusable.
func (r *Revocations) Check(cert *x509.Certificate) error {
	if _, err := r.Load(); err != nil {
		return fmt.Errorf("%w; until it is fixed, %s is refused", err, describe(cert))
	}
	if r.Revoked(cert) {
		return fmt.Errorf("%w: %s is on the revocation list %s", ErrRevoked, describe(cert), r.path)
	}
	return nil
}

// Revoked reports whether the list as last loaded revokes cert, without
// looking at the file.
func (r *Revocations) Revoked(cert *x509.Certificate) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.revoked[serialKey(cert.SerialNumber)]
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	st := fileStamp{size: fi.Size(), mtime: fi.ModTime()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino = uint64(sys.Ino)
	}
	return st, nil
}
