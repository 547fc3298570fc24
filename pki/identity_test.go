package pki

import (
	"errors"
	"net/url"
	"testing"
)

func TestIdentityURI(t *testing.T) {
	for _, tc := range []struct {
		uri  string
		want Identity
		err  bool
	}{
		{uri: "netraid://volume/vol", want: Identity{Volume: "vol"}},
		{uri: "netraid://volume/vol/node/a", want: Identity{Volume: "vol", Role: RoleNode, Name: "a"}},
		{uri: "netraid://volume/my.vol-1/client/alice_2", want: Identity{Volume: "my.vol-1", Role: RoleClient, Name: "alice_2"}},
		{uri: "netraid://volume/vol/admin/a", err: true},
		{uri: "netraid://volume/vol/node", err: true},
		{uri: "netraid://volume/vol/node/a/b", err: true},
		{uri: "netraid://volume/", err: true},
		{uri: "netraid://volume/v%20l/node/a", err: true},
		{uri: "netraid://volume/vol/node/a%2Fb", err: true},
	} {
		u, err := url.Parse(tc.uri)
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseIdentity(u)
		if tc.err {
			if !errors.Is(err, ErrNoIdentity) {
				t.Errorf("%s: got %+v, %v; want ErrNoIdentity", tc.uri, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: got %+v, %v; want %+v", tc.uri, got, err, tc.want)
			continue
		}
		if back := got.URI().String(); back != tc.uri {
			t.Errorf("%+v encodes as %s, want %s", got, back, tc.uri)
		}
	}
}

func TestValidName(t *testing.T) {
	for _, ok := range []string{"a", "node-1", "x.y_z", string(make65('a'))[:64]} {
		if err := ValidName(ok); err != nil {
			t.Errorf("ValidName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a/b", "a b", "é", "a:b", string(make65('a'))} {
		if err := ValidName(bad); !errors.Is(err, ErrName) {
			t.Errorf("ValidName(%q) = %v, want ErrName", bad, err)
		}
	}
}

func make65(c byte) []byte {
	b := make([]byte, 65)
	for i := range b {
		b[i] = c
	}
	return b
}
