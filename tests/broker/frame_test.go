package broker

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func read(s string) (frame, error) { return readFrame(newReader(strings.NewReader(s))) }

func TestReadFrame(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		command string
		headers []header
		body    string
	}{
		{"no headers no body", "RECEIPT\n\n\x00", "RECEIPT", nil, ""},
		{"headers", "RECEIPT\nreceipt-id:r-1\n\n\x00", "RECEIPT", []header{{"receipt-id", "r-1"}}, ""},
		{"crlf", "MESSAGE\r\na:b\r\n\r\nhi\x00", "MESSAGE", []header{{"a", "b"}}, "hi"},
		{"heart-beats before", "\n\r\n\nRECEIPT\n\n\x00", "RECEIPT", nil, ""},
		{"content-length with NULs", "MESSAGE\ncontent-length:5\n\na\x00b\x00c\x00", "MESSAGE",
			[]header{{"content-length", "5"}}, "a\x00b\x00c"},
		{"escapes", "MESSAGE\nk\\cx:a\\nb\\\\c\\rd\\ce\n\n\x00", "MESSAGE", []header{{"k:x", "a\nb\\c\rd:e"}}, ""},
		{"CONNECTED not unescaped", "CONNECTED\nserver:a\\cb\n\n\x00", "CONNECTED", []header{{"server", "a\\cb"}}, ""},
		{"colon in value", "MESSAGE\nk:a:b\n\n\x00", "MESSAGE", []header{{"k", "a:b"}}, ""},
		{"empty value", "MESSAGE\nk:\n\n\x00", "MESSAGE", []header{{"k", ""}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := read(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if f.command != tt.command || string(f.body) != tt.body || !equalHeaders(f.headers, tt.headers) {
				t.Fatalf("got %q %q %q, want %q %q %q", f.command, f.headers, f.body, tt.command, tt.headers, tt.body)
			}
		})
	}
}

func equalHeaders(a, b []header) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestReadFrameErrors(t *testing.T) {
	long := strings.Repeat("x", maxLine+1)
	many := strings.Repeat("k:v\n", maxHeaders+1)
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"clean EOF", "", io.EOF},
		{"heart-beats then EOF", "\n\n", io.EOF},
		{"EOF in command", "RECEI", ErrMalformedFrame},
		{"EOF in headers", "RECEIPT\nk:v\n", ErrMalformedFrame},
		{"EOF in body", "MESSAGE\n\nabc", ErrMalformedFrame},
		{"EOF in sized body", "MESSAGE\ncontent-length:4\n\nab", ErrMalformedFrame},
		{"no NUL after sized body", "MESSAGE\ncontent-length:1\n\nab\x00", ErrMalformedFrame},
		{"no colon", "MESSAGE\nkv\n\n\x00", ErrMalformedFrame},
		{"bad escape", "MESSAGE\nk:a\\tb\n\n\x00", ErrMalformedFrame},
		{"trailing backslash", "MESSAGE\nk:a\\\n\n\x00", ErrMalformedFrame},
		{"bad content-length", "MESSAGE\ncontent-length:x\n\n\x00", ErrMalformedFrame},
		{"negative content-length", "MESSAGE\ncontent-length:-1\n\n\x00", ErrMalformedFrame},
		{"huge content-length", "MESSAGE\ncontent-length:999999999999\n\n\x00", ErrFrameTooLarge},
		{"long line", "MESSAGE\nk:" + long + "\n\n\x00", ErrFrameTooLarge},
		{"many headers", "MESSAGE\n" + many + "\n\x00", ErrFrameTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := read(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
		})
	}
}

func TestReadFrameBodyLimit(t *testing.T) {
	in := "MESSAGE\n\n" + strings.Repeat("b", maxBody+1) + "\x00"
	if _, err := read(in); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("err %v, want ErrFrameTooLarge", err)
	}
	in = "MESSAGE\n\n" + strings.Repeat("b", maxBody) + "\x00"
	f, err := read(in)
	if err != nil || len(f.body) != maxBody {
		t.Fatalf("body of exactly the limit: %v, %d bytes", err, len(f.body))
	}
}

func TestFrameRoundTrip(t *testing.T) {
	frames := []frame{
		{command: "SEND", headers: []header{{"destination", "/queue/a:b\\c\nd\re"}, {"content-length", "3"}}, body: []byte{1, 0, 2}},
		{command: "CONNECT", headers: []header{{"accept-version", "1.2"}}},
		{command: "ACK", headers: []header{{"id", "ID:x-1:2:3"}}},
	}
	var stream []byte
	for _, f := range frames {
		stream = appendFrame(stream, f)
		stream = append(stream, '\n') // a heart-beat between frames
	}
	r := newReader(bytes.NewReader(stream))
	for _, want := range frames {
		got, err := readFrame(r)
		if err != nil {
			t.Fatal(err)
		}
		if got.command != want.command || !equalHeaders(got.headers, want.headers) || !bytes.Equal(got.body, want.body) {
			t.Fatalf("got %+v, want %+v", got, want)
		}
	}
	if _, err := readFrame(r); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

func TestFrameGetFirstWins(t *testing.T) {
	f, err := read("MESSAGE\nk:1\nk:2\n\n\x00")
	if err != nil {
		t.Fatal(err)
	}
	if v := f.value("k"); v != "1" {
		t.Fatalf("k = %q, want the first occurrence", v)
	}
	if m := toMessage(f); m.Headers["k"] != "1" {
		t.Fatalf("Message.Headers[k] = %q, want the first occurrence", m.Headers["k"])
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte("MESSAGE\ncontent-length:3\nk\\c:v\\n\n\nabc\x00"))
	f.Add([]byte("\r\nRECEIPT\nreceipt-id:1\n\n\x00"))
	f.Add([]byte("CONNECTED\nversion:1.2\n\n\x00"))
	f.Fuzz(func(t *testing.T, in []byte) {
		fr, err := readFrame(newReader(bytes.NewReader(in)))
		if err != nil {
			return
		}
		// What was read re-encodes to something that reads back the same.
		if fr.command == "" || strings.Contains(fr.command, "\n") {
			t.Fatalf("command %q", fr.command)
		}
		if _, ok := fr.get("content-length"); !ok && bytes.IndexByte(fr.body, 0) >= 0 {
			t.Fatalf("NUL in a body without content-length")
		}
		again, err := readFrame(newReader(bytes.NewReader(appendFrame(nil, fr))))
		if err != nil {
			t.Fatalf("re-read: %v (%+v)", err, fr)
		}
		if again.command != fr.command || !bytes.Equal(again.body, fr.body) || !equalHeaders(again.headers, fr.headers) {
			t.Fatalf("round trip: %+v != %+v", again, fr)
		}
	})
}
