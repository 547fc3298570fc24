package harness

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// LoopDevice makes a sparse file of the given size under dir and attaches
// a loop device to it with direct I/O, detached at cleanup. It returns
// the loop device path and the backing file.
func LoopDevice(t T, dir, name string, size int64) (dev, backing string) {
	t.Helper()
	backing = filepath.Join(dir, name+".img")
	f, err := os.Create(backing)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	dev = strings.TrimSpace(Run(t, "losetup", "--find", "--show", "--direct-io=on", backing))
	t.Cleanup(func() { Try("losetup", "-d", dev) })
	return dev, backing
}

// Unique returns a short random name with the given prefix, for network
// namespaces and interfaces that must not collide with a parallel run.
func Unique(prefix string) string {
	var b [3]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// NBDURI returns the libnbd URI of an export on a unix socket.
func NBDURI(socket, export string) string {
	return fmt.Sprintf("nbd+unix:///%s?socket=%s", export, socket)
}
