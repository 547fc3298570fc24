package conffile

import (
	"bytes"
	"encoding"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
	"github.com/spf13/pflag"
)

// Scope is where a key lives in the file.
type Scope int

const (
	// Daemon keys are at the top of the file, before any table: what the
	// whole daemon shares.
	Daemon Scope = iota
	// Volume keys are in the volume's table, [volume.NAME].
	Volume
)

// VolumeTable is the table that holds one table per volume.
const VolumeTable = "volume"

// Key is a key of the file: the flag it sets, by the flag's name, and
// where it lives.
type Key struct {
	Flag  string
	Scope Scope
}

// Schema is what a file may hold.
type Schema struct {
	Keys []Key
	// ArgsKey is a volume key, an array of strings, that stands for the
	// command's arguments (a volume's disks); empty for none.
	ArgsKey string
}

// File is what Apply read.
type File struct {
	Path string
	// Volume is the name of the file's volume table, empty if it has
	// none.
	Volume string
	// Args is the value of the schema's ArgsKey; nil if not given.
	Args []string
	// Set are the flags the file set, in the schema's order.
	Set []string
}

// Apply reads the file at path and sets fs's flags from it. Call it
// before fs.Parse, so that the command line overrides the file. It
// returns an *Error for anything wrong with the file's contents, and
// sets nothing then.
func Apply(path string, fs *pflag.FlagSet, s Schema) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return apply(path, data, fs, s)
}

func apply(path string, data []byte, fs *pflag.FlagSet, s Schema) (*File, error) {
	for _, k := range s.Keys {
		if fs.Lookup(k.Flag) == nil {
			return nil, fmt.Errorf("conffile: the schema names %q, which is not a flag", k.Flag)
		}
	}
	// First the volume tables' names, which the second pass needs for its
	// shape. A syntax error is found here.
	var names struct {
		Volume map[string]any `toml:"volume"`
	}
	if err := toml.NewDecoder(bytes.NewReader(data)).Decode(&names); err != nil {
		return nil, explain(path, data, fs, s, "", err)
	}
	f := &File{Path: path}
	if len(names.Volume) > 0 {
		l := make([]string, 0, len(names.Volume))
		for n := range names.Volume {
			l = append(l, n)
		}
		sort.Strings(l)
		f.Volume = l[0] // the others are refused as unknown tables below
	}
	// Then every value, into a struct made for this schema whose fields
	// hold the flags they set. The flags are set only once the whole file
	// decoded, from a scratch copy of the values.
	t := newTarget(fs, s, f.Volume)
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(t.ptr.Interface()); err != nil {
		return nil, explain(path, data, fs, s, f.Volume, err)
	}
	for _, v := range t.values {
		if v.text == nil {
			continue
		}
		if err := fs.Set(v.flag.Name, *v.text); err != nil {
			return nil, fmt.Errorf("conffile: %s: %s: %w", path, v.flag.Name, err) // checked in UnmarshalText
		}
		f.Set = append(f.Set, v.flag.Name)
	}
	for _, l := range t.lists {
		if *l.items == nil {
			continue
		}
		if err := l.flag.Value.(pflag.SliceValue).Replace(*l.items); err != nil {
			return nil, &Error{Path: path, Key: l.flag.Name, Msg: fmt.Sprintf("expected %s: %v", expectation(l.flag), err)}
		}
		l.flag.Changed = true
		f.Set = append(f.Set, l.flag.Name)
	}
	if t.args != nil && *t.args != nil {
		f.Args = *t.args
	}
	return f, nil
}

// target is the struct a file decodes into: a field per key of the
// schema, each holding a value that knows its flag.
type target struct {
	ptr    reflect.Value
	values []*value
	lists  []list
	args   *[]string
}

type list struct {
	flag  *pflag.Flag
	items *[]string
}

func newTarget(fs *pflag.FlagSet, s Schema, volume string) *target {
	t := &target{}
	var top, vol []reflect.StructField
	var topInit, volInit []any
	for _, k := range s.Keys {
		fl := fs.Lookup(k.Flag)
		var typ reflect.Type
		var init any
		if _, ok := fl.Value.(pflag.SliceValue); ok {
			items := new([]string)
			t.lists = append(t.lists, list{fl, items})
			typ, init = reflect.TypeOf(items), items
		} else {
			v := &value{flag: fl}
			t.values = append(t.values, v)
			typ, init = reflect.TypeOf(v), v
		}
		field := reflect.StructField{Name: fmt.Sprintf("K%d", len(top)+len(vol)), Type: typ, Tag: tag(k.Flag)}
		if k.Scope == Daemon {
			top, topInit = append(top, field), append(topInit, init)
		} else {
			vol, volInit = append(vol, field), append(volInit, init)
		}
	}
	if s.ArgsKey != "" {
		t.args = new([]string)
		vol = append(vol, reflect.StructField{Name: "Args", Type: reflect.TypeOf(t.args), Tag: tag(s.ArgsKey)})
		volInit = append(volInit, t.args)
	}
	volType := reflect.StructOf(vol)
	if volume != "" {
		one := reflect.StructOf([]reflect.StructField{{Name: "V", Type: volType, Tag: tag(volume)}})
		top = append(top, reflect.StructField{Name: "Volumes", Type: one, Tag: tag(VolumeTable)})
	}
	t.ptr = reflect.New(reflect.StructOf(top))
	root := t.ptr.Elem()
	for i, v := range topInit {
		root.Field(i).Set(reflect.ValueOf(v))
	}
	if volume != "" {
		vs := root.Field(len(topInit)).Field(0)
		for i, v := range volInit {
			vs.Field(i).Set(reflect.ValueOf(v))
		}
	}
	return t
}

func tag(key string) reflect.StructTag { return reflect.StructTag(fmt.Sprintf(`toml:%q`, key)) }

// value is a scalar key: its text, checked by its flag, kept for Set.
type value struct {
	flag *pflag.Flag
	text *string
}

var _ encoding.TextUnmarshaler = (*value)(nil)

// UnmarshalText checks b with the flag's own parser, on a scratch value of
// the flag's type where it can make one, and keeps it. The error it
// returns is a parser error pointing at b, so that the decoder reports
// its line: b is a piece of the document for numbers and booleans, and
// the decoder points strings at their place itself.
func (v *value) UnmarshalText(b []byte) error {
	s := string(b)
	if err := check(v.flag, s); err != nil {
		return unstable.NewParserError(b, "%s = %q: expected %s", v.flag.Name, s, expectation(v.flag))
	}
	v.text = &s
	return nil
}

// check runs the flag's parser on s without changing the flag.
func check(fl *pflag.Flag, s string) error {
	t := reflect.TypeOf(fl.Value)
	if t.Kind() == reflect.Pointer && t.Elem().Kind() != reflect.Struct {
		// pflag's own values are the flag's variable under another type:
		// a new one is a scratch copy with the same parser.
		if v, ok := reflect.New(t.Elem()).Interface().(pflag.Value); ok {
			return v.Set(s)
		}
	}
	// Another kind of value: set it and put the old text back.
	old := fl.Value.String()
	err := fl.Value.Set(s)
	if rerr := fl.Value.Set(old); rerr != nil && err == nil {
		return rerr
	}
	return err
}

// Expecter is a flag value that says what it takes, for error messages.
type Expecter interface {
	Expect() string
}

// expectation says what a flag takes.
func expectation(fl *pflag.Flag) string {
	if e, ok := fl.Value.(Expecter); ok {
		return e.Expect()
	}
	switch t := fl.Value.Type(); t {
	case "bool":
		return "true or false"
	case "duration":
		return "a duration such as 5s, 500ms or 1m30s"
	case "int", "int8", "int16", "int32", "int64":
		return "an integer"
	case "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer, 0 or more"
	case "float32", "float64":
		return "a number"
	case "string":
		return "a string"
	default:
		if strings.HasSuffix(t, "Slice") || strings.HasSuffix(t, "Array") {
			return "an array of strings such as [\"a\", \"b\"]"
		}
		return "a " + t
	}
}

// Find returns the value of the flag name in args, a command line not yet
// parsed, and whether it is there: how a command learns which file to
// Apply before it parses the rest. Other flags are skipped whatever they
// are; the last occurrence wins, as in pflag.
func Find(args []string, name string) (string, bool) {
	fs := pflag.NewFlagSet("find", pflag.ContinueOnError)
	fs.ParseErrorsAllowlist.UnknownFlags = true
	fs.SetOutput(nopWriter{})
	fs.Usage = func() {}
	p := fs.String(name, "", "")
	// -h and --help are not errors here: the real parse answers them.
	fs.BoolP("help", "h", false, "")
	if err := fs.Parse(args); err != nil {
		return "", false
	}
	return *p, fs.Changed(name)
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }
