package conffile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// flags is a command's flag set as the tests use it.
type flags struct {
	fs       *pflag.FlagSet
	control  *string
	debug    *bool
	listen   *string
	timeout  *time.Duration
	conns    *int
	readOnly *bool
	hosts    *[]string
}

func newFlags() *flags {
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	return &flags{
		fs:       fs,
		control:  fs.String("control", "/run/ctl", ""),
		debug:    fs.Bool("debug", false, ""),
		listen:   fs.String("listen", "127.0.0.1:10809", ""),
		timeout:  fs.Duration("peer-timeout", 5*time.Second, ""),
		conns:    fs.Int("max-connections", 256, ""),
		readOnly: fs.Bool("read-only", false, ""),
		hosts:    fs.StringArray("host", nil, ""),
	}
}

var schema = Schema{
	Keys: []Key{
		{"control", Daemon},
		{"debug", Daemon},
		{"listen", Volume},
		{"peer-timeout", Volume},
		{"max-connections", Volume},
		{"read-only", Volume},
		{"host", Volume},
	},
	ArgsKey: "disks",
}

const good = `# a node
control = "/run/netraid/a.sock"
debug = true

[volume.vol]
disks = ["/dev/sdb", "/dev/sdc"]
listen = "10.0.0.1:10809"
peer-timeout = "2s"
max-connections = 16
read-only = "true"
host = ["a.example", "10.0.0.1"]
`

func TestApply(t *testing.T) {
	f := newFlags()
	file, err := apply("a.toml", []byte(good), f.fs, schema)
	if err != nil {
		t.Fatal(err)
	}
	if file.Volume != "vol" || strings.Join(file.Args, ",") != "/dev/sdb,/dev/sdc" {
		t.Errorf("volume %q args %q", file.Volume, file.Args)
	}
	if *f.control != "/run/netraid/a.sock" || !*f.debug || *f.listen != "10.0.0.1:10809" ||
		*f.timeout != 2*time.Second || *f.conns != 16 || !*f.readOnly || strings.Join(*f.hosts, ",") != "a.example,10.0.0.1" {
		t.Errorf("flags not set from the file: %+v", f)
	}
	if got := strings.Join(file.Set, ","); got != "control,debug,listen,peer-timeout,max-connections,read-only,host" {
		t.Errorf("set %s", got)
	}
	// The command line, parsed after, wins; what it does not give stays
	// as the file said. A list given on the command line replaces the
	// file's.
	if err := f.fs.Parse([]string{"--listen", "/tmp/sock", "--debug=false", "--host", "b.example", "/dev/sdd"}); err != nil {
		t.Fatal(err)
	}
	if *f.listen != "/tmp/sock" || *f.debug || *f.timeout != 2*time.Second || strings.Join(*f.hosts, ",") != "b.example" {
		t.Errorf("command line does not override the file: listen %q debug %v timeout %v hosts %q", *f.listen, *f.debug, *f.timeout, *f.hosts)
	}
}

func TestApplyEmptyAndDaemonOnly(t *testing.T) {
	for _, doc := range []string{"", "# nothing\n", "control = \"/x\"\n"} {
		f := newFlags()
		file, err := apply("a.toml", []byte(doc), f.fs, schema)
		if err != nil {
			t.Fatalf("%q: %v", doc, err)
		}
		if file.Volume != "" || file.Args != nil {
			t.Errorf("%q: volume %q args %q", doc, file.Volume, file.Args)
		}
	}
}

// TestApplyRefuses: each bad file is refused with its line and a message
// that says what is wrong and what was expected, and sets no flag.
func TestApplyRefuses(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		line int
		want []string
	}{
		{"syntax", "[volume.vol]\ndisks = [\"/dev/sdb\"\n", 2, []string{"incomplete"}},
		{"unknown volume key", "[volume.vol]\ndisks = [\"/a\"]\n\npeer-timout = \"5s\"\n", 4, []string{`unknown key "peer-timout" in [volume.vol]`, `did you mean "peer-timeout"`, "listen, peer-timeout"}},
		{"unknown daemon key", "contrl = \"/x\"\n", 1, []string{`unknown key "contrl"`, `did you mean "control"`}},
		{"volume key at the top", "debug = true\nlisten = \"x:1\"\n", 2, []string{"listen is a volume's key", "[volume.NAME]"}},
		{"daemon key in a volume", "[volume.vol]\ncontrol = \"/x\"\n", 2, []string{"control is the daemon's key", "top of the file"}},
		{"bad duration", "[volume.vol]\npeer-timeout = \"5x\"\n", 2, []string{`peer-timeout = "5x": expected a duration`}},
		{"bad integer", "[volume.vol]\nmax-connections = \"lots\"\n", 2, []string{`max-connections = "lots": expected an integer`}},
		{"bad bool", "[volume.vol]\nread-only = 3\n", 2, []string{`read-only = "3": expected true or false`}},
		{"bad bool word", "debug = \"yes please\"\n", 1, []string{"expected true or false"}},
		{"float for an integer", "[volume.vol]\nmax-connections = 1.5\n", 2, []string{"expected an integer"}},
		{"array for a scalar", "[volume.vol]\nlisten = [\"a\"]\n", 2, []string{"listen: expected a string"}},
		{"inline table for a scalar", "[volume.vol]\nlisten = {a = 1}\n", 2, []string{"unknown key \"a\" in [volume.vol]"}},
		{"dotted key under a scalar", "debug.x = true\n", 1, []string{"debug: expected true or false, not a table"}},
		{"date for a scalar", "[volume.vol]\nlisten = 2024-01-01\n", 2, []string{"listen: expected a string"}},
		{"disks not an array", "[volume.vol]\ndisks = \"/dev/sdb\"\n", 2, []string{"disks: expected an array of strings"}},
		{"disks of numbers", "[volume.vol]\ndisks = [1, 2]\n", 2, []string{"disks: expected an array of strings"}},
		{"volume without a name", "[volume]\ndisks = [\"/a\"]\n", 2, []string{"a table per volume"}},
		{"volume not a table", "volume = \"vol\"\n", 1, []string{"a table per volume"}},
		{"two volumes", "[volume.a]\ndisks = [\"/a\"]\n[volume.b]\ndisks = [\"/b\"]\n", 3, []string{"a second volume, [volume.b]", "one volume ([volume.a])"}},
		{"unknown table", "[volumes.vol]\ndisks = [\"/a\"]\n", 1, []string{"unknown table [volumes.vol]"}},
		{"key twice", "[volume.vol]\nlisten = \"a:1\"\nlisten = \"b:1\"\n", 3, []string{"already defined"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFlags()
			_, err := apply("/etc/netraid/netraid.toml", []byte(tt.doc), f.fs, schema)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("%q: want an *Error, got %v", tt.doc, err)
			}
			if e.Line != tt.line {
				t.Errorf("line %d, want %d: %v", e.Line, tt.line, err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "/etc/netraid/netraid.toml:") {
				t.Errorf("%q does not start with the file and line", msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%q does not say %q", msg, w)
				}
			}
			if e.Source == "" {
				t.Errorf("%q does not quote the line", msg)
			}
			f.fs.VisitAll(func(fl *pflag.Flag) {
				if fl.Changed {
					t.Errorf("%s was set from a refused file", fl.Name)
				}
			})
			if *f.timeout != 5*time.Second || *f.conns != 256 || *f.control != "/run/ctl" {
				t.Errorf("a refused file changed a flag's value")
			}
		})
	}
}

func TestApplyMissingFile(t *testing.T) {
	_, err := Apply(filepath.Join(t.TempDir(), "none.toml"), newFlags().fs, schema)
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v, want a not-exist error", err)
	}
}

func TestApplySchemaMustNameFlags(t *testing.T) {
	s := Schema{Keys: []Key{{"no-such-flag", Volume}}}
	if _, err := apply("a.toml", nil, newFlags().fs, s); err == nil || !strings.Contains(err.Error(), "no-such-flag") {
		t.Fatalf("got %v", err)
	}
}

func TestFind(t *testing.T) {
	tests := []struct {
		args []string
		want string
		ok   bool
	}{
		{nil, "", false},
		{[]string{"--config", "/etc/a.toml"}, "/etc/a.toml", true},
		{[]string{"--config=/etc/a.toml", "/dev/sdb"}, "/etc/a.toml", true},
		{[]string{"--peer", "10.0.0.2:7789", "--read-only", "--config", "b.toml", "/dev/sdb"}, "b.toml", true},
		{[]string{"-h", "--config", "c.toml"}, "c.toml", true},
		{[]string{"--listen", "x", "/dev/sdb"}, "", false},
	}
	for _, tt := range tests {
		got, ok := Find(tt.args, "config")
		if got != tt.want || ok != tt.ok {
			t.Errorf("Find(%q) = %q, %v; want %q, %v", tt.args, got, ok, tt.want, tt.ok)
		}
	}
}

func TestDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"abc", "", 3}, {"peer-timout", "peer-timeout", 1}, {"kitten", "sitting", 3}} {
		if d := distance(tt.a, tt.b); d != tt.d {
			t.Errorf("distance(%q, %q) = %d, want %d", tt.a, tt.b, d, tt.d)
		}
	}
}

// TestWriteReadsBack: what Write writes, Apply reads back to the same
// settings, with defaults left out, and odd strings survive.
func TestWriteReadsBack(t *testing.T) {
	f := newFlags()
	if err := f.fs.Parse([]string{"--listen", `/tmp/a "quoted"\path` + "\t", "--peer-timeout", "1m30s", "--max-connections", "3", "--read-only", "--host", "h1", "--host", "h2"}); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := Write(&b, f.fs, schema, "my.vol", []string{"/dev/sdb", "/dev/sdc"}); err != nil {
		t.Fatal(err)
	}
	g := newFlags()
	file, err := apply("w.toml", []byte(b.String()), g.fs, schema)
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if file.Volume != "my.vol" || strings.Join(file.Args, ",") != "/dev/sdb,/dev/sdc" {
		t.Errorf("volume %q args %q", file.Volume, file.Args)
	}
	if *g.listen != *f.listen || *g.timeout != *f.timeout || *g.conns != 3 || !*g.readOnly || strings.Join(*g.hosts, ",") != "h1,h2" {
		t.Errorf("read back %q %v %d %v %q\n%s", *g.listen, *g.timeout, *g.conns, *g.readOnly, *g.hosts, b.String())
	}
	if g.fs.Lookup("control").Changed || g.fs.Lookup("debug").Changed {
		t.Errorf("defaults were written as settings:\n%s", b.String())
	}
	if !strings.Contains(b.String(), "# control = \"/run/ctl\"") {
		t.Errorf("defaults not shown as comments:\n%s", b.String())
	}
}
