package broker

import (
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
)

func TestRenderDebianConfig(t *testing.T) {
	srcs := map[string]string{"testdata": "testdata/debian-activemq.xml"}
	if _, err := os.Stat(DefaultConfig); err == nil {
		srcs["installed"] = DefaultConfig
	}
	for name, path := range srcs {
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			out, err := renderConfig(src, "stomp://127.0.0.1:40001")
			if err != nil {
				t.Fatal(err)
			}
			s := string(out)
			for _, want := range []string{
				`<transportConnector name="stomp" uri="stomp://127.0.0.1:40001"/>`,
				`dataDirectory="${activemq.data}"`,
				`<kahaDB directory="${activemq.data}/kahadb"/>`,
				`useJmx="false"`,
			} {
				if !strings.Contains(s, want) {
					t.Errorf("missing %s in\n%s", want, s)
				}
			}
			for _, gone := range []string{"openwire", "61616", "${activemq.base}"} {
				if strings.Contains(s, gone) {
					t.Errorf("%s still in\n%s", gone, s)
				}
			}
			if n := strings.Count(s, "<transportConnector "); n != 1 {
				t.Errorf("%d connectors, want 1", n)
			}
			// Only the connectors and the data paths changed.
			norm := func(b string) string {
				b = regexp.MustCompile(`(?s)<transportConnectors>.*?</transportConnectors>`).ReplaceAllString(b, "")
				return strings.ReplaceAll(b, "${activemq.base}/data", "${activemq.data}")
			}
			if norm(s) != norm(string(src)) {
				t.Errorf("more than the connectors and data paths changed:\n%s", s)
			}
		})
	}
}

func TestRenderConfigRefuses(t *testing.T) {
	const ok = `<beans><broker dataDirectory="${activemq.base}/data">
<persistenceAdapter><kahaDB directory="${activemq.base}/data/kahadb"%s/></persistenceAdapter>
<transportConnectors><transportConnector name="openwire" uri="tcp://127.0.0.1:61616"/></transportConnectors>
</broker></beans>`
	tests := []struct {
		name string
		src  string
		err  error
	}{
		{"plain", strings.Replace(ok, "%s", "", 1), nil},
		{"syncs always", strings.Replace(ok, "%s", ` journalDiskSyncStrategy="always"`, 1), nil},
		{"syncs off", strings.Replace(ok, "%s", ` enableJournalDiskSyncs="false"`, 1), ErrUnsafeConfig},
		{"periodic syncs", strings.Replace(ok, "%s", ` journalDiskSyncStrategy="PERIODIC"`, 1), ErrUnsafeConfig},
		{"never syncs", strings.Replace(ok, "%s", ` journalDiskSyncStrategy = "never"`, 1), ErrUnsafeConfig},
		{"no connectors", regexp.MustCompile(`(?s)<transportConnectors>.*</transportConnectors>`).ReplaceAllString(ok, ""), ErrUnsafeConfig},
		{"two connectors sections", strings.Replace(ok, "</broker>", "<transportConnectors></transportConnectors></broker>", 1), ErrUnsafeConfig},
		{"kahadb elsewhere", strings.Replace(strings.Replace(ok, "%s", "", 1), "${activemq.base}/data/kahadb", "/var/lib/kahadb", 1), ErrUnsafeConfig},
		{"broker data elsewhere", strings.Replace(strings.Replace(ok, "%s", "", 1), `dataDirectory="${activemq.base}/data"`, `dataDirectory="/var/lib/amq"`, 1), ErrUnsafeConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := renderConfig([]byte(tt.src), "stomp://127.0.0.1:1")
			if !errors.Is(err, tt.err) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
		})
	}
}

func TestStompURI(t *testing.T) {
	for host, want := range map[string]string{
		"127.0.0.1":  "stomp://127.0.0.1:61613",
		"::1":        "stomp://[::1]:61613",
		"10.213.4.2": "stomp://10.213.4.2:61613",
	} {
		if got := stompURI(host, 61613); got != want {
			t.Errorf("stompURI(%s) = %s, want %s", host, got, want)
		}
	}
}

func TestRenderConfigEscapesURI(t *testing.T) {
	src, err := os.ReadFile("testdata/debian-activemq.xml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := renderConfig(src, `stomp://h:1?a=1&b="2"`)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `uri="stomp://h:1?a=1&amp;b=&quot;2&quot;"`) {
		t.Fatalf("uri not escaped:\n%s", out)
	}
	if _, err := renderConfig(src, "stomp://h:1\n"); err == nil {
		t.Fatal("a newline in the URI was accepted")
	}
}

func TestJavaArgs(t *testing.T) {
	args := javaArgs("/usr/share/activemq", "/w", "/mnt/d", "256m")
	joined := strings.Join(args, " ")
	for _, want := range []string{
		"-Xmx256m",
		"-Djava.io.tmpdir=/w/tmp",
		"-Dlog4j.configuration=file:///w/log4j.properties",
		"-Dactivemq.base=/w",
		"-Dactivemq.conf=/w",
		"-Dactivemq.data=/mnt/d",
		"-Dactivemq.home=/usr/share/activemq",
		"-jar /usr/share/activemq/bin/activemq.jar start xbean:file:///w/activemq.xml",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("missing %q in %s", want, joined)
		}
	}
	if !strings.HasSuffix(joined, "start xbean:file:///w/activemq.xml") {
		t.Errorf("the task must come last: %s", joined)
	}
}
