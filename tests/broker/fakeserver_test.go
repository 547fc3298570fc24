package broker

import (
	"bufio"
	"net"
	"strconv"
	"sync"
	"testing"
)

// scripted serves one connection on loopback with handler, which reads and
// writes frames as the test wants, then hangs up. The test's cleanup closes
// the listener and the connection and waits for the handler.
func scripted(t *testing.T, handler func(s *peer)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	conns := make(chan net.Conn, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		conn, err := l.Accept()
		if err != nil {
			return
		}
		conns <- conn
		handler(&peer{t: t, conn: conn, r: newReader(conn)})
		conn.Close() // the script is over: hang up
	}()
	t.Cleanup(func() {
		l.Close()
		select {
		case c := <-conns:
			c.Close()
		default:
		}
		wg.Wait()
	})
	return l.Addr().String()
}

// peer is the server side of a scripted connection. Its methods report
// failures with t.Errorf (they run off the test goroutine) and return ok.
type peer struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
	// gone, if set, says the server has crashed on purpose: a write that
	// fails then is the crash, not a failure of the test.
	gone func() bool
}

// writeFailed reports a failed write unless the server crashed on purpose.
func (p *peer) writeFailed(what string, err error) {
	if p.gone != nil && p.gone() {
		return
	}
	p.t.Errorf("server: writing %s: %v", what, err)
}

func (p *peer) expect(command string) (frame, bool) {
	f, err := readFrame(p.r)
	if err != nil {
		p.t.Errorf("server: reading %s: %v", command, err)
		return f, false
	}
	if f.command != command {
		p.t.Errorf("server: got %s, want %s", f.command, command)
		return f, false
	}
	return f, true
}

func (p *peer) send(command string, headers ...string) bool {
	f := frame{command: command}
	for i := 0; i+1 < len(headers); i += 2 {
		f.headers = append(f.headers, header{headers[i], headers[i+1]})
	}
	if _, err := p.conn.Write(appendFrame(nil, f)); err != nil {
		p.writeFailed(command, err)
		return false
	}
	return true
}

func (p *peer) message(ack string, body []byte) bool {
	f := frame{command: "MESSAGE", headers: []header{
		{"destination", "/queue/q"}, {"message-id", "m-" + ack}, {"subscription", "sub-1"},
		{"ack", ack}, {"content-length", strconv.Itoa(len(body))},
	}, body: body}
	if _, err := p.conn.Write(appendFrame(nil, f)); err != nil {
		p.writeFailed("MESSAGE", err)
		return false
	}
	return true
}

// accept answers CONNECT as a STOMP 1.2 server.
func (p *peer) accept() bool {
	if _, ok := p.expect("CONNECT"); !ok {
		return false
	}
	return p.send("CONNECTED", "version", "1.2", "server", "fake/1")
}

// receipt answers the frame's receipt request.
func (p *peer) receipt(f frame) bool {
	id, ok := f.get("receipt")
	if !ok {
		p.t.Errorf("server: %s without a receipt header", f.command)
		return false
	}
	return p.send("RECEIPT", "receipt-id", id)
}

// queueServer is an in-memory STOMP queue broker for the load helpers:
// SEND stores and answers the receipt, SUBSCRIBE delivers what is queued,
// ACK forgets, and a closed connection's unacknowledged messages go back to
// the queue. After crashAfter stored messages (if > 0) it stores the next
// one, answers nothing and drops every connection, as a killed broker would.
type queueServer struct {
	t          *testing.T
	l          net.Listener
	wg         sync.WaitGroup
	crashAfter int

	mu      sync.Mutex
	queue   [][]byte
	stored  int
	crashed bool
	// cut: the connections the crash dropped. Their handlers may still
	// be writing after recover, and those writes fail by design.
	cut    map[net.Conn]bool
	conns  map[net.Conn]bool
	ackSeq int
}

func startQueueServer(t *testing.T, crashAfter int) *queueServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &queueServer{t: t, l: l, crashAfter: crashAfter, conns: map[net.Conn]bool{}, cut: map[net.Conn]bool{}}
	s.wg.Add(1)
	go s.acceptLoop()
	t.Cleanup(s.close)
	return s
}

func (s *queueServer) endpoint() Endpoint { return Endpoint{Addr: s.l.Addr().String()} }

func (s *queueServer) close() {
	s.l.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *queueServer) acceptLoop() {
	defer s.wg.Done()
	for {
		conn, err := s.l.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.crashed {
			s.mu.Unlock()
			conn.Close()
			continue
		}
		s.conns[conn] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serve(conn)
	}
}

func (s *queueServer) serve(conn net.Conn) {
	defer s.wg.Done()
	unacked := map[string][]byte{}
	requeue := func() {
		s.mu.Lock()
		for ack, body := range unacked {
			s.queue = append(s.queue, body)
			delete(unacked, ack)
		}
		s.mu.Unlock()
	}
	defer func() {
		conn.Close()
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
		requeue()
	}()
	p := &peer{t: s.t, conn: conn, r: newReader(conn), gone: func() bool { return s.dropped(conn) }}
	if !p.accept() {
		return
	}
	for {
		f, err := readFrame(p.r)
		if err != nil {
			return
		}
		switch f.command {
		case "SEND":
			if !s.store(f.body) {
				return
			}
			p.receipt(f)
		case "SUBSCRIBE":
			p.receipt(f)
			for _, body := range s.takeAll() {
				ack := s.nextAck()
				unacked[ack] = body
				p.message(ack, body)
			}
		case "ACK":
			delete(unacked, f.value("id"))
		case "DISCONNECT":
			// Back on the queue before the receipt, as a broker has them
			// once the consumer's close is confirmed: a client that
			// reconnects at once must find them.
			requeue()
			p.receipt(f)
			return
		default:
			s.t.Errorf("queue server: unexpected %s", f.command)
			return
		}
	}
}

// store keeps body; it returns false once the server crashed.
func (s *queueServer) store(body []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.crashed {
		return false
	}
	s.queue = append(s.queue, body)
	s.stored++
	if s.crashAfter > 0 && s.stored > s.crashAfter {
		s.crashed = true
		for c := range s.conns {
			c.Close()
			s.cut[c] = true
		}
		return false
	}
	return true
}

// dropped reports whether the crash (crashAfter) dropped conn: it stays
// so after recover.
func (s *queueServer) dropped(conn net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cut[conn]
}

func (s *queueServer) takeAll() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queue
	s.queue = nil
	return q
}

func (s *queueServer) nextAck() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ackSeq++
	return "a" + strconv.Itoa(s.ackSeq)
}

// recover lets connections in again after a crash, keeping the queue.
func (s *queueServer) recover() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.crashed = false
	s.crashAfter = 0
}
