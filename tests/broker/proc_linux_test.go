package broker

import (
	"net"
	"os"
	"strings"
	"testing"
)

func TestListeningInodes(t *testing.T) {
	const table = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:EE47 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 84674 1 0000000000000000 100 0 0 10 0
   1: 0100007F:EE47 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 84675 1 0000000000000000 20 4 30 10 -1
   2: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1234 1 0000000000000000 100 0 0 10 0
`
	inodes := map[string]bool{}
	if err := listeningInodes(strings.NewReader(table), 0xEE47, inodes); err != nil {
		t.Fatal(err)
	}
	if len(inodes) != 1 || !inodes["84674"] {
		t.Fatalf("inodes %v, want only the listener 84674", inodes)
	}
	if err := listeningInodes(strings.NewReader("h\n 0: nonsense\n"), 1, inodes); err == nil {
		t.Fatal("a short row was accepted")
	}
}

func TestListens(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if ok, err := listens(os.Getpid(), port); !ok || err != nil {
		t.Fatalf("listens(self, %d) = %v, %v while listening", port, ok, err)
	}
	l.Close()
	if ok, err := listens(os.Getpid(), port); ok || err != nil {
		t.Fatalf("listens(self, %d) = %v, %v after closing", port, ok, err)
	}
}
