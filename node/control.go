package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// The control API is JSON over HTTP on a unix socket of mode 0600: only
// the socket's owner (root) may administer the node. GET /v1/status; every
// action is POST /v1/ACTION with a JSON Request.

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
)

// handler is what serves the control API: the Node.
type handler interface {
	Status() Status
	Do(ctx context.Context, action string, r Request) (string, error)
}

// listenControl makes the control socket, replacing a stale one left by a
// dead process but refusing to steal a live one.
func listenControl(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("node: control socket directory: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("node: control socket %s is in use by a running netraid; stop it or choose --control", path)
	}
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("node: control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("node: control socket: %w", err)
	}
	return l, nil
}

func controlMux(h handler) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		st := h.Status()
		writeReply(w, http.StatusOK, Reply{Status: &st})
	})
	mux.HandleFunc("POST /v1/{action}", func(w http.ResponseWriter, r *http.Request) {
		var req Request
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
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
