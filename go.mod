module github.com/netraid/netraid

go 1.26.8

require (
	github.com/dustin/go-humanize v1.1.0
	github.com/spf13/pflag v1.0.10
	go.uber.org/goleak v1.3.0
	golang.org/x/net v0.62.0
	golang.org/x/sys v0.49.0
)

require github.com/pelletier/go-toml/v2 v2.4.3 // indirect
