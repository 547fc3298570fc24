package repl

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Secret authenticates the two ends of a link with a secret both nodes
// hold, in the manner of DRBD's shared-secret with cram-hmac-alg: each
// end proves it knows the secret, bound to both ends' names and to fresh
// random challenges of both, before anything else is said. It
// authenticates the peer, not the stream: on a network others can reach,
// the link needs TLS (--tls-dir).
//
// The exchange, as two NBD options (nbd.OptNetraidAuth):
//
//	client: 'A' nonceC(32) nameC     server: nonceS(32)
//	client: 'B' macC(32)             server: nameS macS(32)
//
// macC = HMAC-SHA256(key, "netraid link client\x00" nonceS nonceC nameC
// "\x00" nameS) and macS the same with "server", the nonces and the names
// swapped, so that neither proof can be replayed or reflected. The server
// says nothing but a random challenge until the client has proved itself,
// and accepts only its configured peer's name; the client accepts only
// its own configured peer's.
type Secret struct {
	Key []byte
	// Self is this node's name; Peer the only name it accepts.
	Self, Peer string
}

const nonceSize = 32

// MinSecret is the shortest secret accepted, in bytes.
const MinSecret = 16

// ReadSecret reads a secret file (its bytes, surrounding white space
// trimmed) for the nodes self and peer.
func ReadSecret(path, self, peer string) (Secret, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Secret{}, fmt.Errorf("repl: secret: %w", err)
	}
	key := []byte(strings.TrimSpace(string(b)))
	if len(key) < MinSecret {
		return Secret{}, fmt.Errorf("repl: the secret in %s has %d bytes, at least %d are needed: make one with 'netraid secret new FILE'", path, len(key), MinSecret)
	}
	if self == "" || peer == "" {
		return Secret{}, errors.New("repl: a secret needs both nodes' names (--name and --peer-name)")
	}
	return Secret{Key: key, Self: self, Peer: peer}, nil
}

// ErrAuth: the peer did not prove it holds the secret under the expected
// name.
var ErrAuth = errors.New("repl: the peer did not authenticate")

func (s Secret) mac(role string, first, second []byte, a, b string) []byte {
	h := hmac.New(sha256.New, s.Key)
	h.Write([]byte("netraid link " + role + "\x00"))
	h.Write(first)
	h.Write(second)
	h.Write([]byte(a))
	h.Write([]byte{0})
	h.Write([]byte(b))
	return h.Sum(nil)
}

func nonce() []byte {
	b := make([]byte, nonceSize)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("repl: no randomness: %v", err))
	}
	return b
}

// serverState is one connection's exchange on the server.
type serverState struct {
	nonceC, nonceS []byte
	nameC          string
}

// ServerAuth is the server's side, for nbd.ServerOptions.Auth.
func (s Secret) ServerAuth() func(ctx context.Context, state *any, req []byte) ([]byte, bool, error) {
	return func(_ context.Context, state *any, req []byte) ([]byte, bool, error) {
		st, _ := (*state).(*serverState)
		switch {
		case st == nil && len(req) > 1+nonceSize && req[0] == 'A':
			st = &serverState{nonceC: req[1 : 1+nonceSize], nameC: string(req[1+nonceSize:]), nonceS: nonce()}
			*state = st
			return st.nonceS, false, nil
		case st != nil && len(req) == 1+sha256.Size && req[0] == 'B':
			want := s.mac("client", st.nonceS, st.nonceC, st.nameC, s.Self)
			if st.nameC != s.Peer || !hmac.Equal(want, req[1:]) {
				return nil, false, fmt.Errorf("%w: a caller named %q did not prove it holds the secret of %q", ErrAuth, st.nameC, s.Peer)
			}
			proof := s.mac("server", st.nonceC, st.nonceS, s.Self, st.nameC)
			return append([]byte(s.Self), proof...), true, nil
		}
		return nil, false, fmt.Errorf("%w: a malformed authentication step", ErrAuth)
	}
}

// ClientAuth is the client's side of one connection, for
// nbd.ClientOptions.Auth.
func (s Secret) ClientAuth() func(reply []byte) ([]byte, error) {
	var nonceC, nonceS []byte
	step := 0
	return func(reply []byte) ([]byte, error) {
		step++
		switch step {
		case 1:
			nonceC = nonce()
			return append(append([]byte{'A'}, nonceC...), s.Self...), nil
		case 2:
			if len(reply) != nonceSize {
				return nil, fmt.Errorf("%w: a challenge of %d bytes", ErrAuth, len(reply))
			}
			nonceS = reply
			return append([]byte{'B'}, s.mac("client", nonceS, nonceC, s.Self, s.Peer)...), nil
		case 3:
			if len(reply) <= sha256.Size {
				return nil, fmt.Errorf("%w: a proof of %d bytes", ErrAuth, len(reply))
			}
			name, proof := string(reply[:len(reply)-sha256.Size]), reply[len(reply)-sha256.Size:]
			if name != s.Peer || !hmac.Equal(proof, s.mac("server", nonceC, nonceS, name, s.Self)) {
				return nil, fmt.Errorf("%w: the server, named %q, did not prove it holds the secret of %q", ErrAuth, name, s.Peer)
			}
			return nil, nil
		}
		return nil, fmt.Errorf("%w: more steps than the exchange has", ErrAuth)
	}
}
