package broker

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// procAttr puts the broker in its own process group (a terminal's ^C goes
// to the test, not the JVM) and kills it if the test process dies first.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// listens reports whether process pid holds a TCP socket listening on
// port, in its own network namespace. It tells our broker apart from
// another process answering on the same port.
func listens(pid, port int) (bool, error) {
	inodes := map[string]bool{}
	for _, table := range []string{"tcp", "tcp6"} {
		f, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return false, err
		}
		err = listeningInodes(f, port, inodes)
		f.Close()
		if err != nil {
			return false, err
		}
	}
	if len(inodes) == 0 {
		return false, nil
	}
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	for _, fd := range fds {
		link, err := os.Readlink(dir + "/" + fd.Name())
		if err != nil {
			continue // closed meanwhile
		}
		if inode, ok := strings.CutPrefix(link, "socket:["); ok && inodes[strings.TrimSuffix(inode, "]")] {
			return true, nil
		}
	}
	return false, nil
}

// tcpListen is the st column of /proc/net/tcp for a listening socket.
const tcpListen = "0A"

// listeningInodes adds to inodes the socket inodes of the rows of a
// /proc/net/tcp{,6} table that listen on port.
func listeningInodes(r io.Reader, port int, inodes map[string]bool) error {
	sc := bufio.NewScanner(r)
	sc.Scan() // the heading
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 10 {
			return fmt.Errorf("broker: short /proc/net/tcp row %q", sc.Text())
		}
		_, hexPort, ok := strings.Cut(f[1], ":")
		p, err := strconv.ParseUint(hexPort, 16, 16)
		if !ok || err != nil {
			return fmt.Errorf("broker: /proc/net/tcp local address %q", f[1])
		}
		if int(p) == port && f[3] == tcpListen {
			inodes[f[9]] = true
		}
	}
	return sc.Err()
}
