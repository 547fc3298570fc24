//go:build amd64 || arm64

package blockdev

import (
	"bytes"
	"errors"
	"os"
	"sync/atomic"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// testRing sets up a ring of depth slots, closed at the end of the test.
func testRing(t *testing.T, depth int) *aioRing {
	t.Helper()
	r, err := newAIORing(depth)
	if err != nil {
		t.Skipf("no native AIO: %v", err)
	}
	t.Cleanup(func() { r.close() })
	return r
}

// directFile opens a fresh O_DIRECT file of size bytes.
func directFile(t *testing.T, size int64) *os.File {
	t.Helper()
	f, err := os.OpenFile(tempFile(t, size), os.O_RDWR|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestAIOBatchWithRefusedIocb submits three iocbs in one batch, the middle
// one on a bad descriptor: it fails with EBADF, and the ones around it are
// still carried out.
func TestAIOBatchWithRefusedIocb(t *testing.T) {
	r := testRing(t, 4)
	f := directFile(t, 1<<20)
	fds := []int{int(f.Fd()), -1, int(f.Fd())}
	bufs := make([][]byte, len(fds))
	slots := make([]int32, len(fds))
	batch := make([]*iocb, len(fds))
	for k, fd := range fds {
		bufs[k] = GetBuffer(4096, poolAlign)
		defer PutBuffer(bufs[k])
		i, err := r.acquire()
		if err != nil {
			t.Fatal(err)
		}
		slots[k] = i
		r.slots[i].cb = iocb{data: uint64(i), opcode: iocbCmdPwrite, fd: uint32(fd),
			buf: uint64(uintptr(unsafe.Pointer(&bufs[k][0]))), nbytes: 4096, offset: int64(k) * 4096,
			flags: iocbFlagResfd, resfd: r.efdNum}
		batch[k] = &r.slots[i].cb
	}
	r.submitBatch(batch, false)
	for k, i := range slots {
		n, err := r.finish(i)
		switch {
		case k == 1 && !errors.Is(err, unix.EBADF):
			t.Errorf("iocb on a bad descriptor: %d, %v; want EBADF", n, err)
		case k != 1 && (err != nil || n != 4096):
			t.Errorf("iocb %d beside a refused one: %d, %v; want 4096 bytes", k, n, err)
		}
	}
}

// TestAIOReadAtEOF: a read at the end of a file moves nothing and is no
// error, as pread(2); File's loop turns that into ErrUnexpectedEOF.
func TestAIOReadAtEOF(t *testing.T) {
	r := testRing(t, 2)
	f := directFile(t, 8192)
	b := GetBuffer(4096, poolAlign)
	defer PutBuffer(b)
	if n, err := r.transfer(iocbCmdPread, int(f.Fd()), b, 8192); n != 0 || err != nil {
		t.Fatalf("read at EOF = %d, %v; want 0, nil", n, err)
	}
}

// TestAIOCloseWaitsForLastTransfer: closing a ring with a transfer in
// flight refuses new ones at once and releases the context only when that
// transfer is done.
func TestAIOCloseWaitsForLastTransfer(t *testing.T) {
	r, err := newAIORing(2)
	if err != nil {
		t.Skipf("no native AIO: %v", err)
	}
	i, err := r.acquire()
	if err != nil {
		t.Fatal(err)
	}
	r.close()
	if _, err := r.acquire(); !errors.Is(err, ErrClosed) {
		t.Fatalf("acquire after close = %v, want ErrClosed", err)
	}
	select {
	case <-r.reaped:
		t.Fatal("the ring was torn down with a transfer in flight")
	default:
	}
	r.release(i)
	<-r.reaped // the last transfer out stops the reaper
	r.close()  // closing again changes nothing
}

// TestAIOUserRing: completions are read from the ring the kernel maps
// (its layout is the one known here on this kernel), its head follows
// its tail, and more transfers than the context holds go through one
// after another: the kernel sees the room the moved head gives back.
func TestAIOUserRing(t *testing.T) {
	r := testRing(t, 4)
	h := userRing(r.ctx)
	if h == nil {
		t.Skip("the kernel's AIO ring has a layout not known here: io_getevents reaps")
	}
	f := directFile(t, 1<<20)
	b := GetBuffer(4096, poolAlign)
	defer PutBuffer(b)
	for k := range 64 * int(h.nr) / 4 {
		if _, err := r.transfer(iocbCmdPwrite, int(f.Fd()), b, int64(k%256)*4096); err != nil {
			t.Fatalf("transfer %d: %v", k, err)
		}
	}
	if head, tail := atomic.LoadUint32(&h.head), atomic.LoadUint32(&h.tail); head != tail {
		t.Fatalf("ring head %d, tail %d: completions left behind", head, tail)
	}
}

// TestAIOFdsync: a flush goes through the ring (IOCB_CMD_FDSYNC) and
// reports the kernel's error as fdatasync(2) does; the engine answers
// with the blocking call where the ring refuses it.
func TestAIOFdsync(t *testing.T) {
	r := testRing(t, 2)
	f := directFile(t, 1<<20)
	b := GetBuffer(4096, poolAlign)
	defer PutBuffer(b)
	if _, err := r.transfer(iocbCmdPwrite, int(f.Fd()), b, 0); err != nil {
		t.Fatal(err)
	}
	if n, err := r.transfer(iocbCmdFdsync, int(f.Fd()), nil, 0); n != 0 || err != nil {
		if err == unix.EINVAL {
			t.Skip("the kernel has no IOCB_CMD_FDSYNC")
		}
		t.Fatalf("fdsync = %d, %v; want 0, nil", n, err)
	}
	if _, err := r.transfer(iocbCmdFdsync, -1, nil, 0); !errors.Is(err, unix.EBADF) {
		t.Fatalf("fdsync of a bad descriptor: %v; want EBADF", err)
	}
	e := aioEngine{r: r, noFdsync: new(atomic.Bool)}
	if err := e.fdatasync(int(f.Fd())); err != nil || e.noFdsync.Load() {
		t.Fatalf("engine fdatasync = %v (blocking from now on: %v)", err, e.noFdsync.Load())
	}
	e.noFdsync.Store(true)
	if err := e.fdatasync(int(f.Fd())); err != nil {
		t.Fatalf("blocking fdatasync = %v", err)
	}
}

// TestAIONowaitFallback: a write into a hole of a sparse file needs a
// block allocation, which a RWF_NOWAIT submission refuses to wait for
// (EAGAIN); the transfer is submitted again without the flag and lands.
// The file takes the flag otherwise: later transfers still ask for it.
func TestAIONowaitFallback(t *testing.T) {
	r := testRing(t, 2)
	f := directFile(t, 1<<20) // sparse: every block a hole
	w := GetBuffer(4096, poolAlign)
	defer PutBuffer(w)
	for i := range w {
		w[i] = byte(i % 251)
	}
	for _, off := range []int64{0, 512 << 10} {
		if n, err := r.transfer(iocbCmdPwrite, int(f.Fd()), w, off); n != len(w) || err != nil {
			t.Fatalf("write into a hole at %d = %d, %v", off, n, err)
		}
	}
	got := GetBuffer(4096, poolAlign)
	defer PutBuffer(got)
	if n, err := r.transfer(iocbCmdPread, int(f.Fd()), got, 512<<10); n != len(got) || err != nil || !bytes.Equal(got, w) {
		t.Fatalf("read back = %d, %v, equal %v", n, err, bytes.Equal(got, w))
	}
	if r.noNowait.Load() {
		t.Fatal("RWF_NOWAIT dropped for good on a file that takes it")
	}
	t.Logf("%d transfers submitted again without RWF_NOWAIT", r.retried.Load())
}
