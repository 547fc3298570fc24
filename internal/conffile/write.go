package conffile

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"
)

// Write writes the schema's flags as a file that Apply reads back to the
// same settings: each key under its flag's usage, as a comment; a flag
// left at its default is written commented out. volume names the volume's
// table; args are the values of the schema's ArgsKey.
func Write(w io.Writer, fs *pflag.FlagSet, s Schema, volume string, args []string) error {
	bw := bufio.NewWriter(w)
	for _, sc := range []Scope{Daemon, Volume} {
		if sc == Volume {
			fmt.Fprintf(bw, "\n[%s.%s]\n", VolumeTable, quoteKey(volume))
			if s.ArgsKey != "" {
				fmt.Fprintf(bw, "%s = %s\n", s.ArgsKey, array(args))
			}
		}
		for _, k := range s.Keys {
			if k.Scope != sc {
				continue
			}
			fl := fs.Lookup(k.Flag)
			if fl == nil {
				return fmt.Errorf("conffile: the schema names %q, which is not a flag", k.Flag)
			}
			fmt.Fprintf(bw, "\n# %s\n", fl.Usage)
			if !fl.Changed {
				bw.WriteString("# ")
			}
			fmt.Fprintf(bw, "%s = %s\n", k.Flag, valueOf(fl))
		}
	}
	return bw.Flush()
}

// valueOf is a flag's value in TOML: bare for booleans and numbers, an
// array for lists, a string for the rest.
func valueOf(fl *pflag.Flag) string {
	if sv, ok := fl.Value.(pflag.SliceValue); ok {
		return array(sv.GetSlice())
	}
	switch t := fl.Value.Type(); {
	case t == "bool", strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"), strings.HasPrefix(t, "float"):
		return fl.Value.String()
	}
	return quote(fl.Value.String())
}

func array(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// quote writes s as a TOML basic string.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\u%04X", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// quoteKey writes a table name bare when TOML allows it.
func quoteKey(k string) string {
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return quote(k)
		}
	}
	if k == "" {
		return `""`
	}
	return k
}
