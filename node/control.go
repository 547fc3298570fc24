package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// The control API is JSON over HTTP on a unix socket that only root and
// the daemon's own user may use. GET /v1/status; every action is POST
// /v1/ACTION with a JSON Request.
//
// No other user reaches the socket at any moment: it is bound in a fresh
// directory of mode 0700 beside its path, made 0600 there and renamed
// into place, so that it appears with its final mode whatever the umask
// or the directory's mode. A process-wide umask around the bind would
// race with other goroutines creating files. Every accepted connection
// is checked besides (SO_PEERCRED: uid 0 or the daemon's), so that a mode
// loosened later, or a default ACL on the directory, lets no one in
// either.

// Request carries the arguments of a control action.
type Request struct {
	Force        bool   `json:"force,omitempty"`
	DiscardLocal bool   `json:"discard_local,omitempty"`
	Repair       bool   `json:"repair,omitempty"`
	All          bool   `json:"all,omitempty"` // verify every region, not only the used ones
	Rate         int64  `json:"rate,omitempty"`
	Disk         string `json:"disk,omitempty"`
	NewDisk      string `json:"new_disk,omitempty"`
	Wait         bool   `json:"wait,omitempty"`
}

// Reply is every control answer: an error text, or a message and a status.
type Reply struct {
	Error   string  `json:"error,omitempty"`
	Message string  `json:"message,omitempty"`
	Status  *Status `json:"status,omitempty"`
}

// Actions the control API accepts, each handled by a Node method.
const (
	ActPromote      = "promote"
	ActDemote       = "demote"
	ActConnect      = "connect"
	ActDisconnect   = "disconnect"
	ActResyncPause  = "resync-pause"
	ActResyncResume = "resync-resume"
	ActResyncRate   = "resync-rate"
	ActResyncFull   = "resync-full"
	ActVerify       = "verify"
	ActDiskFail     = "disk-fail"
	ActDiskReplace  = "disk-replace"
	ActDiskInject   = "disk-inject-error"
	ActDiskHeal     = "disk-heal"
	ActForgetPeer   = "forget-peer"
)

// handler is what serves the control API: the Node.
type handler interface {
	Status() Status
	Do(ctx context.Context, action string, r Request) (string, error)
}

// Control server time-outs. No write time-out: 'verify --wait' is
// answered when the verify ends, however long it runs.
var (
	controlHeaderTimeout = 10 * time.Second // to send a request's header
	controlBodyTimeout   = 10 * time.Second // to send its body
	controlIdleTimeout   = 30 * time.Second // between requests on a kept-alive connection
)

// controlServer is the HTTP server of the control API.
func controlServer(h handler) *http.Server {
	return &http.Server{
		Handler:           controlMux(h),
		ReadHeaderTimeout: controlHeaderTimeout,
		IdleTimeout:       controlIdleTimeout,
		MaxHeaderBytes:    1 << 16,
	}
}

// listenControl makes the control socket, replacing a stale one left by a
// dead process but refusing to steal a live one. The socket is never
// open to another user (see the top of this file).
func listenControl(path string, log *slog.Logger) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("node: control socket directory: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("node: control socket %s is in use by a running netraid; stop it or choose --control", path)
	}
	l, err := listenUnixMode(path, 0o600)
	if err != nil {
		return nil, fmt.Errorf("node: control socket: %w", err)
	}
	euid := os.Geteuid()
	return &controlListener{Listener: l, log: log, allow: func(uid int) bool { return uid == 0 || uid == euid }}, nil
}

// listenUnixMode listens on a unix socket at path that has mode from the
// moment it appears there, whatever the umask and the directory's mode:
// it is bound in a fresh 0700 directory beside path, given mode there,
// and renamed over path (replacing any socket or file there). The
// listener's Addr is path. The socket is not removed when the listener
// closes: the caller removes path.
func listenUnixMode(path string, mode os.FileMode) (net.Listener, error) {
	// MkdirTemp makes the directory 0700 (less under a umask), with a
	// name no one can take first; it is short, for the socket's path.
	priv, err := os.MkdirTemp(filepath.Dir(path), ".ctl")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(priv)
	bound := filepath.Join(priv, "s")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: bound, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("bound first as %s: %w", bound, err)
	}
	// After the rename the bound path is gone.
	l.SetUnlinkOnClose(false)
	if err := os.Chmod(bound, mode); err != nil {
		l.Close()
		return nil, err
	}
	if err := os.Rename(bound, path); err != nil {
		l.Close()
		return nil, err
	}
	return renamedListener{l, &net.UnixAddr{Name: path, Net: "unix"}}, nil
}

// renamedListener is a unix socket listener whose socket was moved to
// addr after it was bound.
type renamedListener struct {
	*net.UnixListener
	addr net.Addr
}

func (l renamedListener) Addr() net.Addr { return l.addr }

// controlListener accepts only the connections of users it allows: root
// and the daemon's own.
type controlListener struct {
	net.Listener
	log   *slog.Logger
	allow func(uid int) bool
}

func (l *controlListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		uid, err := peerUID(c)
		if err == nil && l.allow(uid) {
			return c, nil
		}
		if err == nil {
			err = fmt.Errorf("the caller runs as uid %d: only root and the daemon's user (uid %d) may use the control socket", uid, os.Geteuid())
		}
		l.log.Warn("control connection refused", "err", err)
		c.Close()
	}
}

func controlMux(h handler) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		st := h.Status()
		writeReply(w, http.StatusOK, Reply{Status: &st})
	})
	mux.HandleFunc("POST /v1/{action}", func(w http.ResponseWriter, r *http.Request) {
		var req Request
		// The body has its time-out, then none: a read deadline still
		// set while the action runs would cancel its context.
		rc := http.NewResponseController(w)
		rc.SetReadDeadline(time.Now().Add(controlBodyTimeout))
		err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req)
		rc.SetReadDeadline(time.Time{})
		if err != nil && !errors.Is(err, io.EOF) {
			writeReply(w, http.StatusBadRequest, Reply{Error: "bad request: " + err.Error()})
			return
		}
		msg, err := h.Do(r.Context(), r.PathValue("action"), req)
		if err != nil {
			writeReply(w, http.StatusConflict, Reply{Error: err.Error()})
			return
		}
		writeReply(w, http.StatusOK, Reply{Message: msg})
	})
	return mux
}

func writeReply(w http.ResponseWriter, code int, r Reply) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(r)
}

// Client talks to a running node's control socket.
type Client struct {
	path string
	hc   *http.Client
}

// NewClient returns a client for the control socket at path.
func NewClient(path string) *Client {
	return &Client{path: path, hc: &http.Client{Transport: &http.Transport{
		// One request per connection: an admin command makes one call,
		// and a poller must not leave idle connections behind.
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}}
}

// ErrNoDaemon means nothing listens on the control socket.
var ErrNoDaemon = errors.New("node: no netraid daemon on the control socket")

func (c *Client) call(ctx context.Context, method, action string, req *Request) (Reply, error) {
	var body io.Reader
	if req != nil {
		b, err := json.Marshal(req)
		if err != nil {
			return Reply{}, err
		}
		body = bytes.NewReader(b)
	}
	hr, err := http.NewRequestWithContext(ctx, method, "http://netraid/v1/"+action, body)
	if err != nil {
		return Reply{}, err
	}
	resp, err := c.hc.Do(hr)
	if err != nil {
		var ne *net.OpError
		if errors.As(err, &ne) && ne.Op == "dial" {
			return Reply{}, fmt.Errorf("%w %s (is 'netraid serve' running? give --control): %v", ErrNoDaemon, c.path, ne.Err)
		}
		return Reply{}, fmt.Errorf("node: control %s: %w", action, err)
	}
	defer resp.Body.Close()
	var r Reply
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return Reply{}, fmt.Errorf("node: control %s: bad answer: %w", action, err)
	}
	if r.Error != "" {
		return r, errors.New(r.Error)
	}
	return r, nil
}

// Status asks the daemon for its status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	r, err := c.call(ctx, http.MethodGet, "status", nil)
	if err != nil {
		return Status{}, err
	}
	if r.Status == nil {
		return Status{}, errors.New("node: control status: empty answer")
	}
	return *r.Status, nil
}

// Do runs an action and returns the daemon's message.
func (c *Client) Do(ctx context.Context, action string, req Request) (string, error) {
	r, err := c.call(ctx, http.MethodPost, action, &req)
	return r.Message, err
}
