package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// newDisks makes sparse files and a volume of them, named name.
func newDisks(t *testing.T, dir, name string, n int) []string {
	t.Helper()
	var disks []string
	for i := range n {
		p := filepath.Join(dir, name+"-"+string(rune('0'+i)))
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, 16<<20); err != nil {
			t.Fatal(err)
		}
		disks = append(disks, p)
	}
	if code, _, e := runCLI(append([]string{"create", "--name", name}, disks...)...); code != exitOK {
		t.Fatalf("create: %s", e)
	}
	return disks
}

func writeFile(t *testing.T, path, text string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestServeConfigRefused: serve refuses a bad config file with exit 2 and
// a message naming the file, the line and what was expected, before it
// touches any disk.
func TestServeConfigRefused(t *testing.T) {
	dir := t.TempDir()
	disks := newDisks(t, dir, "vol", 1)
	list := `["` + disks[0] + `"]`
	tests := []struct {
		name, text string
		want       []string
	}{
		{"unknown key", "[volume.vol]\ndisks = " + list + "\npeer-timout = \"5s\"\n", []string{":3:", `unknown key "peer-timout"`, `did you mean "peer-timeout"`}},
		{"bad duration", "[volume.vol]\ndisks = " + list + "\npeer-timeout = \"soon\"\n", []string{":3:", "expected a duration"}},
		{"bad size", "[volume.vol]\ndisks = " + list + "\nresync-rate = \"fast\"\n", []string{":3:", "expected a size such as 16MiB"}},
		{"size too big", "[volume.vol]\ndisks = " + list + "\nreadahead = \"2GiB\"\n", []string{":3:", "up to 1.0 GiB"}},
		{"syntax", "[volume.vol\n", []string{":1:"}},
		{"another volume's disks", "[volume.other]\ndisks = " + list + "\n", []string{`holds volume "vol"`, "[volume.other]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, filepath.Join(dir, "netraid.toml"), tt.text)
			code, _, errOut := runCLI("serve", "--config", path, "--control", filepath.Join(dir, "ctl"))
			if code != exitUsage {
				t.Fatalf("exit %d, want %d (usage): %s", code, exitUsage, errOut)
			}
			for _, w := range append(tt.want, path) {
				if !strings.Contains(errOut, w) {
					t.Errorf("%q does not say %q", errOut, w)
				}
			}
		})
	}
	code, _, errOut := runCLI("serve", "--config", filepath.Join(dir, "none.toml"))
	if code != exitUsage || !strings.Contains(errOut, "none.toml") {
		t.Errorf("a missing file: exit %d, %q", code, errOut)
	}
}

// TestServePrintConfig: the settings in effect are the file's, with the
// command line's flags over them, and print back as a file that serve
// reads to the same settings.
func TestServePrintConfig(t *testing.T) {
	dir := t.TempDir()
	disks := newDisks(t, dir, "vol", 2)
	path := writeFile(t, filepath.Join(dir, "a.toml"), `control = "/run/a.sock"
[volume.vol]
disks = ["`+disks[0]+`", "`+disks[1]+`"]
listen = "/run/a.nbd"
peer-timeout = "2s"
resync-rate = "100MB"
`)
	code, out, errOut := runCLI("serve", "--config", path, "--peer-timeout", "7s", "--print-config")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, w := range []string{
		"\ncontrol = \"/run/a.sock\"\n", "[volume.vol]\n", `disks = ["` + disks[0] + `", "` + disks[1] + `"]`,
		"\nlisten = \"/run/a.nbd\"\n", "\npeer-timeout = \"7s\"\n", "\nresync-rate = \"100MB\"\n",
		"\n# max-connections = 256\n",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("--print-config lacks %q:\n%s", w, out)
		}
	}
	// Disks on the command line replace the file's.
	back := writeFile(t, filepath.Join(dir, "b.toml"), out)
	code, out2, errOut := runCLI("serve", "--config", back, "--print-config", disks[1], disks[0])
	if code != exitOK {
		t.Fatalf("reading the printed file: exit %d: %s", code, errOut)
	}
	if !strings.Contains(out2, `disks = ["`+disks[1]+`", "`+disks[0]+`"]`) || !strings.Contains(out2, "\npeer-timeout = \"7s\"\n") {
		t.Errorf("printed file read back to:\n%s", out2)
	}
	// Flags alone print as a file too, named after the disks' volume.
	code, out3, errOut := runCLI("serve", "--print-config", "--listen", "/run/x.nbd", disks[0], disks[1])
	if code != exitOK || !strings.Contains(out3, "[volume.vol]\n") || !strings.Contains(out3, "\nlisten = \"/run/x.nbd\"\n") {
		t.Errorf("flags alone: exit %d %s\n%s", code, errOut, out3)
	}
}
