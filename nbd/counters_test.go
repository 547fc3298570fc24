package nbd

import "testing"

// TestStatsByCommand: requests and bytes are counted by command, error
// replies by error value, and a request held by the device counts in
// flight until it is answered.
func TestStatsByCommand(t *testing.T) {
	g := newGate(expSize)
	ts := startServer(t, "unix", ServerOptions{}, Export{Name: "s", Dev: g})
	c := ts.dial(t, ClientOptions{Export: "s"})
	if _, err := c.WriteAt(make([]byte, 3000), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadAt(make([]byte, 5000), 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := c.Trim(8192, 4096); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteZeroes(16384, 1024, false); err != nil {
		t.Fatal(err)
	}
	// Past the end: EINVAL for a read, ENOSPC for a write (sent raw: the
	// client refuses them itself).
	r := ts.raw(t)
	r.open("s", false, false)
	r.request(CmdRead, 0, 1, uint64(expSize), 512, nil)
	if e := r.simple(1); e != EINVAL {
		t.Fatalf("a read past the end: %v, want EINVAL", e)
	}
	r.request(CmdWrite, 0, 2, uint64(expSize), 512, make([]byte, 512))
	if e := r.simple(2); e != ENOSPC {
		t.Fatalf("a write past the end: %v, want ENOSPC", e)
	}
	st := ts.Stats()
	want := map[string]CommandStats{
		"read": {2, 5000}, "write": {2, 3000}, "flush": {1, 0}, "trim": {1, 4096}, "write-zeroes": {1, 1024},
		"cache": {}, "block-status": {}, "netraid-control": {}, "other": {},
	}
	if len(st.Commands) != len(want) {
		t.Errorf("commands %v, want the keys of %v", st.Commands, want)
	}
	for k, w := range want {
		if st.Commands[k] != w {
			t.Errorf("command %s: %+v, want %+v", k, st.Commands[k], w)
		}
	}
	if st.Requests != 7 || st.BytesRead != 5000 || st.BytesWritten != 3000 || st.Errors != 2 {
		t.Errorf("totals: requests %d, read %d, written %d, errors %d; want 7, 5000, 3000, 2",
			st.Requests, st.BytesRead, st.BytesWritten, st.Errors)
	}
	if st.Errnos["EINVAL"] != 1 || st.Errnos["ENOSPC"] != 1 || st.Errnos["EIO"] != 0 || len(st.Errnos) != len(countedErrnos)+1 {
		t.Errorf("errors by value %v, want one EINVAL, one ENOSPC, every key", st.Errnos)
	}
	if st.InFlight != 0 || st.InFlightBytes != 0 {
		t.Errorf("in flight with nothing running: %d requests, %d bytes", st.InFlight, st.InFlightBytes)
	}

	// A read the device holds is in flight, with its bytes.
	g.hold(65536)
	done := make(chan error, 1)
	go func() {
		_, err := c.ReadAt(make([]byte, 4096), 65536)
		done <- err
	}()
	<-g.arrived
	if st := ts.Stats(); st.InFlight != 1 || st.InFlightBytes != 4096 {
		t.Errorf("a held read: in flight %d requests, %d bytes; want 1, 4096", st.InFlight, st.InFlightBytes)
	}
	g.release(65536)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the read to leave the flight", func() bool { return ts.Stats().InFlight == 0 })
}

// TestCounterSlots: every counted command and error value has its own
// slot, and anything else shares "other".
func TestCounterSlots(t *testing.T) {
	var k counters
	seen := map[*cmdCount]Command{}
	for _, c := range countedCommands {
		if prev, dup := seen[k.cmd(c)]; dup {
			t.Errorf("%v and %v share a slot", prev, c)
		}
		seen[k.cmd(c)] = c
	}
	if k.cmd(Command(99)) != &k.cmds[len(countedCommands)] || k.cmd(CmdDisc) != &k.cmds[len(countedCommands)] {
		t.Error("an uncounted command does not go to other")
	}
	if k.errno(Errno(1234)) != &k.errnos[len(countedErrnos)] {
		t.Error("an uncounted error value does not go to other")
	}
	k.errno(EIO).Add(3)
	_, errnos := k.snapshot()
	if errnos["EIO"] != 3 {
		t.Errorf("EIO %d, want 3", errnos["EIO"])
	}
}
