package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// rds is a redis-server whose every write is in its append-only file,
// fsynced, before its reply (appendfsync always: the server writes and
// fsyncs the file before it sends the replies of an event-loop round).
type rds struct {
	cmd   *exec.Cmd
	addr  string
	size  int
	took  time.Duration
	done  chan struct{}
	waitE error
}

const redisStartTimeout = 30 * time.Second

func startRedis(ctx context.Context, o options) (store, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	for _, d := range []string{o.data, o.work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	logf, err := os.Create(filepath.Join(o.work, "redis.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	r := &rds{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), size: o.size, done: make(chan struct{})}
	r.cmd = exec.Command(o.redis, "--bind", "127.0.0.1", "--port", strconv.Itoa(port),
		"--dir", o.data, "--appendonly", "yes", "--appendfsync", "always", "--save", "",
		"--daemonize", "no", "--protected-mode", "no")
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	begin := time.Now()
	if err := r.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { r.waitE = r.cmd.Wait(); close(r.done) }()
	ctx, cancel := context.WithTimeout(ctx, redisStartTimeout)
	defer cancel()
	for {
		p, err := r.dial(ctx)
		if err == nil {
			err = p.(*respPipe).ping()
			p.close()
			if err == nil {
				r.took = time.Since(begin)
				return r, nil
			}
		}
		select {
		case <-r.done:
			return nil, fmt.Errorf("redis-server exited during start-up (%v); log %s", r.waitE, logf.Name())
		case <-ctx.Done():
			r.stop()
			return nil, fmt.Errorf("redis-server not answering on %s: %w (last: %v)", r.addr, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (r *rds) dial(ctx context.Context) (pipe, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", r.addr)
	if err != nil {
		return nil, err
	}
	return &respPipe{c: c, r: bufio.NewReader(c), val: make([]byte, r.size)}, nil
}

func (r *rds) pid() int               { return r.cmd.Process.Pid }
func (r *rds) started() time.Duration { return r.took }

// stop ends the server with SIGTERM (it syncs and exits) and waits up to
// a minute, then kills it.
func (r *rds) stop() error {
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
		return nil
	case <-time.After(time.Minute):
		r.cmd.Process.Kill()
		<-r.done
		return errors.New("redis-server ignored SIGTERM for a minute; killed")
	}
}

// respPipe sends SET commands (RESP) on one connection.
type respPipe struct {
	c   net.Conn
	r   *bufio.Reader
	val []byte
	buf []byte
}

func (p *respPipe) send(dst string, n int) (string, error) {
	key := dst + ":" + strconv.Itoa(n)
	b := p.buf[:0]
	b = fmt.Appendf(b, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n", len(key), key, len(p.val))
	b = append(b, p.val...)
	b = append(b, "\r\n"...)
	p.buf = b
	p.c.SetWriteDeadline(time.Now().Add(30 * time.Second))
	_, err := p.c.Write(b)
	return key, err
}

func (p *respPipe) await(key string) error {
	p.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, err := p.r.ReadString('\n')
	if err != nil {
		return fmt.Errorf("redis: SET %s: %w", key, err)
	}
	if line != "+OK\r\n" {
		return fmt.Errorf("redis: SET %s answered %q", key, line)
	}
	return nil
}

func (p *respPipe) ping() error {
	p.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := p.c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := p.r.ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

func (p *respPipe) close() error { return p.c.Close() }

// freePort is a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
