package nbd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"
)

// This file is the server's life: serving listeners, connections entering
// and leaving transmission, and shutdown.

// Serve accepts connections on l and serves them until ctx is cancelled or
// Shutdown is called. On cancellation it stops accepting, lets the
// requests its connections have in flight finish, answers later ones with
// ESHUTDOWN, flushes and closes; it returns once all of its connections
// are gone. It returns nil when stopped, ErrServerClosed if the server
// was already shut down, or the listener's error.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()

	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	var wg sync.WaitGroup
	err := s.acceptLoop(ctx, l, &wg)
	s.mu.Lock()
	delete(s.listeners, l)
	s.mu.Unlock()
	l.Close()
	// Shutdown drains every connection itself; otherwise drain ours.
	for _, c := range s.connsWhere(func(c *conn) bool { return c.l == l }) {
		c.drain()
	}
	wg.Wait()
	return err
}

func (s *Server) acceptLoop(ctx context.Context, l net.Listener, wg *sync.WaitGroup) error {
	backoff := 5 * time.Millisecond
	for {
		nc, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil || s.isShutdown() {
				return nil
			}
			if !retryableAccept(err) {
				return fmt.Errorf("nbd: accept: %w", err)
			}
			s.log.Warn("accept failed, retrying", "err", err, "backoff", backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return nil
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		c := s.register(ctx, nc, l)
		if c == nil {
			nc.Close()
			continue
		}
		wg.Go(c.serve)
	}
}

// retryableAccept reports whether an accept error is a transient lack of
// resources or an aborted connection, after which accepting goes on.
func retryableAccept(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) ||
		errors.Is(err, syscall.ECONNABORTED)
}

func (s *Server) isShutdown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shutdown
}

func closeOnce(ch chan struct{}) {
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// Shutdown stops the server: it closes the listeners, lets every request
// in flight finish (later requests are answered with ESHUTDOWN, pending
// handshakes are cut), closes the connections and flushes every export.
// If ctx ends first, it closes the connections at once and returns
// ctx.Err(); requests stuck in a device still finish in the background and
// Serve returns after them.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutdown = true
	for l := range s.listeners {
		l.Close()
	}
	if len(s.conns) == 0 {
		closeOnce(s.idle)
	}
	s.mu.Unlock()
	all := s.connsWhere(func(*conn) bool { return true })
	for _, c := range all {
		c.drain()
	}
	select {
	case <-s.idle:
	case <-ctx.Done():
		for _, c := range s.connsWhere(func(*conn) bool { return true }) {
			c.abort()
		}
		return fmt.Errorf("nbd: shutdown: %w", ctx.Err())
	}
	var errs []error
	for _, e := range s.exportList() {
		if err := e.Dev.Flush(); err != nil {
			errs = append(errs, fmt.Errorf("nbd: shutdown: flush export %q: %w", e.Name, err))
		}
	}
	return errors.Join(errs...)
}
