package broker

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// Where Debian's activemq package puts things.
const (
	DefaultHome   = "/usr/share/activemq"
	DefaultConfig = "/etc/activemq/instances-available/main/activemq.xml"
	DefaultHeap   = "256m"
)

var (
	connectorsRE = regexp.MustCompile(`(?s)<transportConnectors>.*?</transportConnectors>`)
	dataDirRE    = regexp.MustCompile(`\bdataDirectory\s*=\s*"\$\{activemq\.data\}"`)
	kahaDirRE    = regexp.MustCompile(`<kahaDB\b[^>]*\bdirectory\s*=\s*"\$\{activemq\.data\}/`)
	// KahaDB syncs its journal on every write unless told otherwise.
	noSyncRE = regexp.MustCompile(`(?i)\benableJournalDiskSyncs\s*=\s*"false"|\bjournalDiskSyncStrategy\s*=\s*"(periodic|never)"`)
)

// renderConfig turns the package's activemq.xml into the broker's: the
// transport connectors become one STOMP connector at uri, and the state
// directories under ${activemq.base}/data move to ${activemq.data}. Nothing
// else changes. It refuses a configuration that would keep state outside
// ${activemq.data} or that turns journal syncs off.
func renderConfig(src []byte, uri string) ([]byte, error) {
	if m := noSyncRE.Find(src); m != nil {
		return nil, fmt.Errorf("%w: %s: acknowledged messages would not be on disk", ErrUnsafeConfig, m)
	}
	locs := connectorsRE.FindAllIndex(src, -1)
	if len(locs) != 1 {
		return nil, fmt.Errorf("%w: %d transportConnectors elements, want 1", ErrUnsafeConfig, len(locs))
	}
	var uriAttr bytes.Buffer
	if err := xmlEscape(&uriAttr, uri); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	out.Write(src[:locs[0][0]])
	fmt.Fprintf(&out, "<transportConnectors>\n"+
		"            <transportConnector name=\"stomp\" uri=\"%s\"/>\n"+
		"        </transportConnectors>", uriAttr.String())
	out.Write(src[locs[0][1]:])
	res := bytes.ReplaceAll(out.Bytes(), []byte("${activemq.base}/data"), []byte("${activemq.data}"))
	if !dataDirRE.Match(res) || !kahaDirRE.Match(res) {
		return nil, fmt.Errorf("%w: broker dataDirectory or kahaDB directory not under ${activemq.data}", ErrUnsafeConfig)
	}
	return res, nil
}

// stompURI is the connector's URI for host and port.
func stompURI(host string, port int) string {
	return "stomp://" + net.JoinHostPort(host, strconv.Itoa(port))
}

func xmlEscape(b *bytes.Buffer, s string) error {
	if strings.ContainsAny(s, "\x00\r\n") {
		return fmt.Errorf("broker: %q does not fit an XML attribute", s)
	}
	r := strings.NewReplacer(`&`, "&amp;", `<`, "&lt;", `>`, "&gt;", `"`, "&quot;", `'`, "&apos;")
	b.WriteString(r.Replace(s))
	return nil
}

// log4jProperties sends the broker's log (log4j 1, as Debian's build uses)
// to standard output at INFO, with the package's own quieter loggers.
const log4jProperties = `log4j.rootLogger=INFO, stdout
log4j.logger.org.apache.activemq.spring=WARN
log4j.logger.org.apache.activemq.web.handler=WARN
log4j.logger.org.springframework=WARN
log4j.logger.org.apache.xbean=WARN
log4j.logger.org.eclipse.jetty=WARN
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=%d{ISO8601} %-5p %m [%c{1}] [%t]%n
`

// openFlags are those /usr/bin/activemq passes to Java 9 and later.
var openFlags = []string{
	"--add-reads=java.xml=java.logging",
	"--add-opens", "java.base/java.security=ALL-UNNAMED",
	"--add-opens", "java.base/java.net=ALL-UNNAMED",
	"--add-opens", "java.base/java.lang=ALL-UNNAMED",
	"--add-opens", "java.base/java.util=ALL-UNNAMED",
	"--add-opens", "java.naming/javax.naming.spi=ALL-UNNAMED",
	"--add-opens", "java.rmi/sun.rmi.transport.tcp=ALL-UNNAMED",
	"--add-opens", "java.base/java.util.concurrent=ALL-UNNAMED",
	"--add-opens", "java.base/java.util.concurrent.atomic=ALL-UNNAMED",
	"--add-exports=java.base/sun.net.www.protocol.http=ALL-UNNAMED",
	"--add-exports=java.base/sun.net.www.protocol.https=ALL-UNNAMED",
	"--add-exports=java.base/sun.net.www.protocol.jar=ALL-UNNAMED",
	"--add-exports=jdk.xml.dom/org.w3c.dom.html=ALL-UNNAMED",
	"--add-exports=jdk.naming.rmi/com.sun.jndi.url.rmi=ALL-UNNAMED",
}

// javaArgs is the JVM command line `activemq console` would run for an
// instance whose base and configuration directory is work and whose data
// directory is data, with a heap of heap (a -Xmx value).
func javaArgs(home, work, data, heap string) []string {
	args := []string{
		"-Xms64m", "-Xmx" + heap,
		"-Dorg.apache.activemq.UseDedicatedTaskRunner=true",
		"-Djava.awt.headless=true",
		"-Djava.io.tmpdir=" + filepath.Join(work, "tmp"),
		"-Dlog4j.configuration=" + (&url.URL{Scheme: "file", Path: filepath.Join(work, "log4j.properties")}).String(),
	}
	args = append(args, openFlags...)
	return append(args,
		"-Dactivemq.classpath="+work,
		"-Dactivemq.home="+home,
		"-Dactivemq.base="+work,
		"-Dactivemq.conf="+work,
		"-Dactivemq.data="+data,
		"-jar", filepath.Join(home, "bin", "activemq.jar"),
		"start", "xbean:"+(&url.URL{Scheme: "file", Path: filepath.Join(work, "activemq.xml")}).String(),
	)
}
