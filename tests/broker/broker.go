package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// Time limits of a broker's life.
const (
	DefaultStartTimeout = 120 * time.Second // JVM start on a busy 2-core machine
	StopTimeout         = 60 * time.Second  // SIGTERM to exit, then SIGKILL
	killTimeout         = 60 * time.Second  // SIGKILL to exit (a process stuck in the kernel)
	pollInterval        = 200 * time.Millisecond
)

// Options describe one broker. DataDir and WorkDir are required (Start
// fills WorkDir from t.TempDir when t has one).
type Options struct {
	DataDir string    // KahaDB and all broker state: on the netraid mount
	WorkDir string    // generated configuration, logs, JVM temporary files: not on the mount
	Netns   string    // run in the network namespace Netns ("": the caller's)
	Host    string    // IP address of the STOMP connector (default 127.0.0.1)
	Port    int       // STOMP port (0: one the kernel finds free)
	Log     io.Writer // also gets the broker's output (always in WorkDir/broker.log)

	Heap         string        // -Xmx (default DefaultHeap)
	StartTimeout time.Duration // until the broker answers CONNECT (default DefaultStartTimeout)
	Home         string        // ActiveMQ home with bin/activemq.jar (default DefaultHome)
	Config       string        // activemq.xml to start from (default DefaultConfig)
	Java         string        // java binary (default: java on PATH)
}

func (o *Options) setDefaults() {
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.Heap == "" {
		o.Heap = DefaultHeap
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = DefaultStartTimeout
	}
	if o.Home == "" {
		o.Home = DefaultHome
	}
	if o.Config == "" {
		o.Config = DefaultConfig
	}
	if o.Java == "" {
		o.Java = "java"
	}
}

// Available reports whether a broker can run here with the default
// installation (java, the ActiveMQ jar, its configuration); the error
// wraps ErrNotInstalled.
func Available() error {
	o := Options{}
	o.setDefaults()
	_, err := o.installation()
	return err
}

// installation checks the installation and returns the java binary.
func (o *Options) installation() (string, error) {
	java, err := exec.LookPath(o.Java)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrNotInstalled, err)
	}
	for _, p := range []string{filepath.Join(o.Home, "bin", "activemq.jar"), o.Config} {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w: %w", ErrNotInstalled, err)
		}
	}
	return java, nil
}

// Broker is a running ActiveMQ JVM.
type Broker struct {
	opts    Options
	addr    string
	logPath string
	cmd     *exec.Cmd
	started time.Duration
	asked   atomic.Bool   // Kill or Stop was called
	done    chan struct{} // closed once the process was reaped
	exitErr error         // cmd.Wait's result, set before done closes
}

// Launch starts a broker and waits until it answers a STOMP CONNECT. ctx
// bounds the start only; the broker runs until Kill or Stop, which the
// caller must call. If the caller's process dies, the kernel kills the
// broker.
func Launch(ctx context.Context, o Options) (*Broker, error) {
	o.setDefaults()
	if o.DataDir == "" || o.WorkDir == "" {
		return nil, errors.New("broker: Options.DataDir and Options.WorkDir are required")
	}
	java, err := o.installation()
	if err != nil {
		return nil, err
	}
	if err := o.absolute(); err != nil {
		return nil, err
	}
	if o.Port == 0 {
		if o.Port, err = freePort(o.Netns, o.Host); err != nil {
			return nil, err
		}
	}
	if err := o.writeFiles(); err != nil {
		return nil, err
	}
	b := &Broker{
		opts:    o,
		addr:    net.JoinHostPort(o.Host, strconv.Itoa(o.Port)),
		logPath: filepath.Join(o.WorkDir, "broker.log"),
		done:    make(chan struct{}),
	}
	begin := time.Now()
	if err := b.spawn(java); err != nil {
		return nil, err
	}
	if err := b.waitReady(ctx); err != nil {
		b.Kill()
		return nil, err
	}
	b.started = time.Since(begin)
	return b, nil
}

func (o *Options) absolute() error {
	for _, p := range []*string{&o.DataDir, &o.WorkDir} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return fmt.Errorf("broker: %w", err)
		}
		*p = abs
	}
	return nil
}

// writeFiles makes the directories and writes activemq.xml and
// log4j.properties into WorkDir.
func (o *Options) writeFiles() error {
	if err := os.MkdirAll(o.DataDir, 0o755); err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	return o.writeConfig()
}

// writeConfig makes WorkDir and writes activemq.xml and log4j.properties
// into it; DataDir is left alone.
func (o *Options) writeConfig() error {
	for _, d := range []string{o.WorkDir, filepath.Join(o.WorkDir, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("broker: %w", err)
		}
	}
	src, err := os.ReadFile(o.Config)
	if err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	xml, err := renderConfig(src, stompURI(o.Host, o.Port))
	if err != nil {
		return fmt.Errorf("%w (%s)", err, o.Config)
	}
	if err := os.WriteFile(filepath.Join(o.WorkDir, "activemq.xml"), xml, 0o644); err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	if err := os.WriteFile(filepath.Join(o.WorkDir, "log4j.properties"), []byte(log4jProperties), 0o644); err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	return nil
}

// spawn starts the JVM and the goroutine that reaps it.
func (b *Broker) spawn(java string) error {
	o := b.opts
	argv := append([]string{java}, javaArgs(o.Home, o.WorkDir, o.DataDir, o.Heap)...)
	if o.Netns != "" {
		// Its network namespace only: `ip netns exec` would give the JVM
		// a mount namespace of its own, a copy that keeps every mount of
		// that moment alive after it is unmounted here.
		argv = append([]string{"nsenter", "--net=/run/netns/" + o.Netns, "--"}, argv...)
	}
	logf, err := os.OpenFile(b.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	fmt.Fprintf(logf, "=== %s start %q\n", time.Now().Format(time.RFC3339), argv)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = o.WorkDir
	cmd.Stdout, cmd.Stderr = logf, logf
	if o.Log != nil {
		w := io.MultiWriter(logf, o.Log)
		cmd.Stdout, cmd.Stderr = w, w
	}
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("broker: start %s: %w", argv[0], err)
	}
	b.cmd = cmd
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(logf, "=== %s exit: %v\n", time.Now().Format(time.RFC3339), cmd.ProcessState)
		logf.Close()
		b.exitErr = err
		close(b.done)
	}()
	return nil
}

// waitReady polls until the JVM listens on the port and answers a STOMP
// CONNECT there, the process exits, or the start time-out or ctx ends.
func (b *Broker) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, b.opts.StartTimeout)
	defer cancel()
	var last error
	for {
		// Only our JVM's listener counts: another process may hold the port.
		ours, err := listens(b.Pid(), b.opts.Port)
		if err == nil && !ours {
			err = fmt.Errorf("pid %d not listening on port %d yet", b.Pid(), b.opts.Port)
		}
		if err == nil {
			attempt, cancelAttempt := context.WithTimeout(ctx, 5*time.Second)
			var c *Client
			if c, err = b.Endpoint().Dial(attempt); err == nil {
				err = c.Close()
			}
			cancelAttempt()
			if err == nil {
				return nil
			}
		}
		last = err
		select {
		case <-b.done:
			return fmt.Errorf("%w during start-up (pid %d, %v); log %s:\n%s",
				ErrExited, b.Pid(), b.cmd.ProcessState, b.logPath, b.Tail(4000))
		case <-ctx.Done():
			return fmt.Errorf("%w: %s after %v: %v (last: %v); log %s:\n%s",
				ErrNotReady, b.Endpoint(), b.opts.StartTimeout, ctx.Err(), last, b.logPath, b.Tail(4000))
		case <-time.After(pollInterval):
		}
	}
}

// Addr is the STOMP connector's host:port.
func (b *Broker) Addr() string { return b.addr }

// Endpoint is where clients reach the broker, namespace included.
func (b *Broker) Endpoint() Endpoint { return Endpoint{Addr: b.addr, Netns: b.opts.Netns} }

// Pid is the JVM's process id.
func (b *Broker) Pid() int { return b.cmd.Process.Pid }

// DataDir is the broker's state directory; KahaDB is in DataDir/kahadb.
func (b *Broker) DataDir() string { return b.opts.DataDir }

// LogPath is the file with the broker's output.
func (b *Broker) LogPath() string { return b.logPath }

// StartupTime is how long the broker took from exec to a CONNECTED frame.
func (b *Broker) StartupTime() time.Duration { return b.started }

// Done is closed once the broker process has exited and was reaped.
func (b *Broker) Done() <-chan struct{} { return b.done }

// Kill crashes the broker with SIGKILL and waits until it is gone. It
// returns an error wrapping ErrExited if the broker had exited before the
// first Kill or Stop.
func (b *Broker) Kill() error {
	return b.end(syscall.SIGKILL, killTimeout)
}

// Stop stops the broker cleanly (SIGTERM runs ActiveMQ's shutdown hook)
// and waits; after StopTimeout it kills it and returns ErrStopTimeout. It
// returns an error wrapping ErrExited if the broker had exited before the
// first Kill or Stop.
func (b *Broker) Stop() error {
	err := b.end(syscall.SIGTERM, StopTimeout)
	if errors.Is(err, ErrStopTimeout) {
		if kerr := b.end(syscall.SIGKILL, killTimeout); kerr != nil {
			return kerr
		}
	}
	return err
}

func (b *Broker) end(sig syscall.Signal, timeout time.Duration) error {
	first := !b.asked.Swap(true)
	select {
	case <-b.done:
		if first {
			return fmt.Errorf("%w before it was stopped (pid %d, %v); log %s", ErrExited, b.Pid(), b.exitErr, b.logPath)
		}
		return nil
	default:
	}
	if err := b.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("broker: signal pid %d: %w", b.Pid(), err)
	}
	select {
	case <-b.done:
		return nil
	case <-time.After(timeout):
		if sig == syscall.SIGKILL {
			return fmt.Errorf("broker: pid %d still running %v after SIGKILL", b.Pid(), timeout)
		}
		return fmt.Errorf("%w: pid %d after %v", ErrStopTimeout, b.Pid(), timeout)
	}
}

// Tail returns up to the last n bytes of the broker's log.
func (b *Broker) Tail(n int) string {
	f, err := os.Open(b.logPath)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > int64(n) {
		f.Seek(st.Size()-int64(n), io.SeekStart)
	}
	buf, _ := io.ReadAll(io.LimitReader(f, int64(n)))
	return string(buf)
}
