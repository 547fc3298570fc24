package conffile

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/spf13/pflag"
)

// Error is a refusal of a file: where, and what was expected.
type Error struct {
	Path string
	Line int    // 1-based; 0 if unknown
	Key  string // the dotted key, if the error is about one
	Msg  string
	// Source is the offending line of the file, for the reader.
	Source string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Path)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	if e.Source != "" {
		fmt.Fprintf(&b, "\n    %d | %s", e.Line, e.Source)
	}
	return b.String()
}

// explain turns the decoder's error into an *Error that says what the
// file should have held there.
func explain(path string, data []byte, fs *pflag.FlagSet, s Schema, volume string, err error) error {
	var de *toml.DecodeError
	if !errors.As(err, &de) {
		return &Error{Path: path, Msg: strings.TrimPrefix(err.Error(), "toml: ")}
	}
	line, _ := de.Position()
	e := &Error{Path: path, Line: line, Key: strings.Join(de.Key(), "."), Source: sourceLine(data, line)}
	msg := strings.TrimPrefix(de.Error(), "toml: ")
	key := []string(de.Key())
	inVolume := len(key) >= 2 && key[0] == VolumeTable
	switch {
	case msg == "unknown field" || msg == "missing table":
		e.Msg = unknown(fs, s, volume, key)
	case strings.HasPrefix(msg, "cannot decode TOML"):
		e.Msg = mismatch(fs, s, key, inVolume, msg)
	default:
		// A syntax error, or a value its flag refused (whose message
		// already says what was expected).
		e.Msg = msg
	}
	return e
}

// unknown explains a key or table the schema does not have.
func unknown(fs *pflag.FlagSet, s Schema, volume string, key []string) string {
	name := key[len(key)-1]
	// A table where a key's value should be: a.b = 1 or a = {b = 1}.
	for i, k := range key[:len(key)-1] {
		if fl := fs.Lookup(k); fl != nil && scopeOf(s, k) >= 0 && (i == 0 || i == 2 && key[0] == VolumeTable) {
			return fmt.Sprintf("%s: expected %s, not a table", k, expectation(fl))
		}
	}
	switch {
	case len(key) == 1 && scopeOf(s, name) == Volume:
		return fmt.Sprintf("%s is a volume's key: put it in the volume's table, [%s.NAME]", name, VolumeTable)
	case len(key) == 1:
		return fmt.Sprintf("unknown key %q%s; the keys at the top of the file are %s, and a volume's go in its table [%s.NAME]",
			name, suggest(name, keysOf(s, Daemon)), strings.Join(keysOf(s, Daemon), ", "), VolumeTable)
	case key[0] != VolumeTable:
		return fmt.Sprintf("unknown table [%s]: the file has the daemon's keys at its top and a table [%s.NAME] per volume", strings.Join(key, "."), VolumeTable)
	case len(key) == 2 && key[1] != volume:
		return fmt.Sprintf("a second volume, [%s.%s]: a daemon serves one volume ([%s.%s]); run one per volume, each with its own file", VolumeTable, key[1], VolumeTable, volume)
	case len(key) == 3 && scopeOf(s, name) == Daemon:
		return fmt.Sprintf("%s is the daemon's key: put it at the top of the file, before any table", name)
	case len(key) == 3:
		return fmt.Sprintf("unknown key %q in [%s.%s]%s; a volume's keys are %s",
			name, VolumeTable, key[1], suggest(name, keysOf(s, Volume)), strings.Join(keysOf(s, Volume), ", "))
	}
	return fmt.Sprintf("unknown key %q", strings.Join(key, "."))
}

// mismatch explains a value of the wrong TOML type.
func mismatch(fs *pflag.FlagSet, s Schema, key []string, inVolume bool, msg string) string {
	name := key[len(key)-1]
	switch {
	case len(key) == 1 && name == VolumeTable, len(key) == 2 && inVolume:
		return fmt.Sprintf("expected a table per volume, such as [%s.vol], holding the volume's keys", VolumeTable)
	case name == s.ArgsKey && inVolume:
		return fmt.Sprintf("%s: expected an array of strings, such as [\"/dev/sdb\", \"/dev/sdc\"]", name)
	}
	if fl := fs.Lookup(name); fl != nil && scopeOf(s, name) >= 0 {
		return fmt.Sprintf("%s: expected %s", name, expectation(fl))
	}
	return msg
}

func scopeOf(s Schema, name string) Scope {
	if name == s.ArgsKey {
		return Volume
	}
	for _, k := range s.Keys {
		if k.Flag == name {
			return k.Scope
		}
	}
	return -1
}

func keysOf(s Schema, sc Scope) []string {
	var l []string
	for _, k := range s.Keys {
		if k.Scope == sc {
			l = append(l, k.Flag)
		}
	}
	if sc == Volume && s.ArgsKey != "" {
		l = append([]string{s.ArgsKey}, l...)
	}
	return l
}

// suggest names the key closest to name, if one is close.
func suggest(name string, keys []string) string {
	best, bestD := "", 3
	for _, k := range keys {
		if d := distance(name, k); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = slices.Min([]int{prev[j] + 1, cur[j-1] + 1, prev[j-1] + cost})
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func sourceLine(data []byte, line int) string {
	lines := bytes.Split(data, []byte("\n"))
	if line < 1 || line > len(lines) {
		return ""
	}
	return strings.TrimRight(string(lines[line-1]), "\r")
}
