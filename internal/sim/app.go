package sim

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/netraid/netraid/nbd"
)

// App is the application: an NBD client of one node's export, on that
// node's machine (a broker beside its volume), whose writes the model
// records.
type App struct {
	c     *Cluster
	node  string // whose export it uses, "" if none
	cl    *nbd.Client
	bound time.Duration
	// Attached, if set, says which other nodes are attached to node's
	// mirror now; a flush counts as reaching only those attached before
	// and after it. nil: every other node is taken as detached.
	Attached func(node string) map[string]bool
}

// ErrNoExport: the app has no export to talk to (no primary, or it
// refused the connection).
var ErrNoExport = errors.New("sim: no export")

// NewApp returns an app whose calls may take at most bound (the
// liveness bound: longer is a hang).
func (c *Cluster) NewApp(bound time.Duration) *App { return &App{c: c, bound: bound} }

// Use points the app at node's export, disconnecting from any other.
func (a *App) Use(node string) error {
	if a.node == node && a.cl != nil {
		return nil
	}
	a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), a.bound)
	defer cancel()
	nc, err := a.c.Net.Dialer(node)(ctx, "tcp", node+":"+ExportPort)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrNoExport, node, err)
	}
	cl, err := nbd.NewClient(ctx, nc, nbd.ClientOptions{Export: "vol", Timeout: a.bound})
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrNoExport, node, err)
	}
	a.node, a.cl = node, cl
	return nil
}

// Node returns the node the app uses, or "".
func (a *App) Node() string {
	if a.cl == nil {
		return ""
	}
	return a.node
}

// Close disconnects the app.
func (a *App) Close() {
	if a.cl != nil {
		a.cl.Close()
	}
	a.cl, a.node = nil, ""
}

// Outcome is how an application call ended.
type Outcome int

const (
	OK Outcome = iota
	// Failed: the call was answered with an error.
	Failed
	// Stuck: the call was not answered within the liveness bound.
	Stuck
)

// outcome classifies a call's error; a client broken by its time-out
// means the call hung.
func (a *App) outcome(err error, start time.Time) Outcome {
	switch {
	case err == nil:
		return OK
	case time.Since(start) >= a.bound:
		a.Close()
		return Stuck
	}
	if a.cl != nil {
		select {
		case <-a.cl.Done():
			a.Close()
		default:
		}
	}
	return Failed
}

// Write writes n blocks from block (FUA if fua) and records it.
func (a *App) Write(block, n int64, fua bool) (*Write, Outcome, error) {
	if a.cl == nil {
		return nil, Failed, ErrNoExport
	}
	m := a.c.Model
	w := m.Issue(a.node, block, n, fua)
	buf := make([]byte, n*BlockSize)
	for i := range n {
		fillBlock(buf[i*BlockSize:(i+1)*BlockSize], w.ID, block+i)
	}
	start := time.Now()
	var err error
	if fua {
		_, err = a.cl.WriteAtFUA(buf, block*BlockSize)
	} else {
		_, err = a.cl.WriteAt(buf, block*BlockSize)
	}
	out := a.outcome(err, start)
	w.Failed = out != OK
	if out == OK {
		missing, merr := a.c.missing(w)
		if merr != nil {
			return w, out, merr
		}
		m.Ack(w, missing)
	}
	return w, out, err
}

// Flush flushes the export and records what became durable.
func (a *App) Flush() (Outcome, error) {
	if a.cl == nil {
		return Failed, ErrNoExport
	}
	node := a.node
	before := a.attached(node)
	issued := a.c.Model.Tick()
	start := time.Now()
	err := a.cl.Flush()
	out := a.outcome(err, start)
	if out == OK {
		after := a.attached(node)
		detached := map[string]bool{}
		for _, name := range a.c.Names {
			if name != node && !(before[name] && after[name]) {
				detached[name] = true
			}
		}
		a.c.Model.Flushed(node, issued, detached)
	}
	return out, err
}

func (a *App) attached(node string) map[string]bool {
	if a.Attached == nil {
		return nil
	}
	return a.Attached(node)
}

// Read reads a block through the export and checks it against the model.
func (a *App) Read(block int64) (Outcome, error) {
	if a.cl == nil {
		return Failed, ErrNoExport
	}
	issued := a.c.Model.Tick()
	buf := make([]byte, BlockSize)
	start := time.Now()
	node := a.node
	_, err := a.cl.ReadAt(buf, block*BlockSize)
	out := a.outcome(err, start)
	if out != OK {
		return out, err
	}
	id, err := readStamp(buf, block)
	if err != nil {
		return out, violation("garbage", "a read through %s: %v", node, err)
	}
	return out, a.c.Model.CheckRead(node, block, id, issued)
}

// missing names the nodes whose disks lack w now.
func (c *Cluster) missing(w *Write) (map[string]bool, error) {
	out := map[string]bool{}
	for _, name := range c.Names {
		vals, err := c.blocksOf(name, w.Block, w.N)
		if err != nil {
			return nil, err
		}
		for _, v := range vals {
			if v < w.ID || v == Garbage {
				out[name] = true
			}
		}
	}
	return out, nil
}
