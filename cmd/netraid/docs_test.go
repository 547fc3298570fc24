package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestServeConfigSchema: every flag of serve can be set from the config
// file, or is listed as one that cannot; adding a flag without its line
// in serveFile fails here.
func TestServeConfigSchema(t *testing.T) {
	u := describeAll(context.Background())["serve"][0]
	in := map[string]bool{}
	for _, k := range serveFile.Keys {
		if in[k.Flag] {
			t.Errorf("%s is twice in serveFile", k.Flag)
		}
		in[k.Flag] = true
		if u.fs.Lookup(k.Flag) == nil {
			t.Errorf("serveFile names %q, which is not a flag of serve", k.Flag)
		}
	}
	for _, f := range serveFlagsNotInFile {
		in[f] = true
	}
	for _, f := range flagNames(u) {
		if !in[f] {
			t.Errorf("serve's --%s is not in serveFile: add its line there (or to serveFlagsNotInFile)", f)
		}
	}
}

func flagNames(u usage) []string {
	var l []string
	u.fs.VisitAll(func(f *pflag.Flag) {
		if f.Deprecated == "" && !f.Hidden {
			l = append(l, f.Name)
		}
	})
	return l
}

// TestManPages: 'netraid _man' writes netraid(8) and a page per command,
// each listing the flags its --help lists, and groff finds nothing wrong
// with them.
func TestManPages(t *testing.T) {
	dir := t.TempDir()
	if code, _, errOut := runCLI("_man", dir); code != exitOK {
		t.Fatalf("_man: exit %d: %s", code, errOut)
	}
	all := describeAll(context.Background())
	pages := []string{"netraid.8"}
	main := read(t, filepath.Join(dir, "netraid.8"))
	for _, c := range listed() {
		page := "netraid-" + c.name + ".8"
		pages = append(pages, page)
		text := read(t, filepath.Join(dir, page))
		if !strings.Contains(main, "netraid\\-"+roffText(c.name)+" (8)") {
			t.Errorf("netraid.8 does not refer to %s", page)
		}
		for _, u := range all[c.name] {
			// The help text is in the page, line by line.
			for _, l := range strings.Split(strings.TrimSpace(u.help), "\n") {
				if l = strings.TrimSpace(l); l != "" && !strings.Contains(text, roffLine(l)) {
					t.Errorf("%s lacks the help line %q", page, l)
				}
			}
			for _, f := range flagNames(u) {
				if !strings.Contains(text, `\fB\-\-`+roffText(f)+`\fR`) {
					t.Errorf("%s lacks --%s (of %q)", page, f, u.name)
				}
			}
		}
		if c.name == "serve" {
			for _, k := range serveFile.Keys {
				if !strings.Contains(text, ".B "+roffText(k.Flag)+"\n") {
					t.Errorf("netraid-serve.8's configuration section lacks %s", k.Flag)
				}
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "netraid-_man.8")); err == nil {
		t.Errorf("a page for the hidden _man command")
	}
	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Logf("groff not installed: pages not checked by it")
		return
	}
	for _, p := range pages {
		out, err := exec.Command(groff, "-man", "-ww", "-z", filepath.Join(dir, p)).CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Errorf("groff on %s: %v\n%s", p, err, out)
		}
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestBashCompletion: the script completes commands, actions, flags and
// an action's own flags, as bash runs it.
func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	code, script, errOut := runCLI("completion", "bash")
	if code != exitOK {
		t.Fatalf("completion bash: exit %d: %s", code, errOut)
	}
	path := filepath.Join(t.TempDir(), "netraid.bash")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ line, want string }{
		{"netraid se", "secret serve"},
		{"netraid --v", "--version"},
		{"netraid serve --pe", "--peer --peer-name --peer-secret --peer-timeout"},
		{"netraid serve --con", "--config --control"},
		{"netraid status --w", "--watch"},
		{"netraid certs i", "init issue"},
		{"netraid certs issue --h", "--host --help"},
		{"netraid disk ", "fail replace inject-error heal"},
		{"netraid resync r", "resume rate"},
		{"netraid serve --config " + filepath.Dir(path) + "/netr", path},
	}
	for _, tt := range tests {
		cmd := exec.Command(bash, "-c", `source "$1"; read -ra COMP_WORDS <<< "$2"; [[ "$2" == *" " ]] && COMP_WORDS+=(""); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _netraid; echo "${COMPREPLY[*]}"`, "_", path, tt.line)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v\n%s", tt.line, err, out)
		}
		if got := strings.TrimSpace(string(out)); got != tt.want {
			t.Errorf("%q completes to %q, want %q", tt.line, got, tt.want)
		}
	}
}
