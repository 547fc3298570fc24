package promoter

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestShellJoin: sh reads back exactly the arguments ShellJoin quoted.
func TestShellJoin(t *testing.T) {
	args := []string{"plain", "", "two words", "it's", `"dq"`, "$HOME", "a\\b", "--mkfs=ext4 -E x", "new\nline", "*"}
	out, err := exec.Command("sh", "-c", "set -- "+ShellJoin(args)+`; for a in "$@"; do printf '%s\0' "$a"; done`).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if !slices.Equal(got, args) {
		t.Fatalf("sh read %q, want %q", got, args)
	}
}

// TestBrokerScript: the broker's start and stop script is valid sh (and
// shellcheck-clean where shellcheck is installed), with the JVM's
// arguments quoted.
func TestBrokerScript(t *testing.T) {
	path := filepath.Join(t.TempDir(), "activemq.sh")
	text := brokerScript("a", "/mnt/vol", "/mnt/vol/activemq", "/work dir", []string{"/usr/bin/java", "-Dx=a b", "-jar", "it's.jar"})
	if err := os.WriteFile(path, []byte(text), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("sh", "-n", path).CombinedOutput(); err != nil {
		t.Fatalf("sh -n: %v\n%s\n%s", err, out, text)
	}
	if !strings.Contains(text, `'-Dx=a b' -jar 'it'\''s.jar'`) || !strings.Contains(text, `--chdir '/work dir'`) {
		t.Errorf("arguments not quoted:\n%s", text)
	}
	if sc, err := exec.LookPath("shellcheck"); err == nil {
		if out, err := exec.Command(sc, path).CombinedOutput(); err != nil {
			t.Errorf("shellcheck: %v\n%s", err, out)
		}
	}
	if out, err := exec.Command(path, "frob").CombinedOutput(); err == nil || !strings.Contains(string(out), "usage") {
		t.Errorf("a bad argument: %v, %s", err, out)
	}
}
