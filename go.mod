module github.com/netraid/netraid

go 1.26.8

require (
	github.com/dustin/go-humanize v1.1.0 // indirect
	github.com/ncw/directio v1.0.5 // indirect
	github.com/pkg/xattr v0.4.12 // indirect
	github.com/spf13/pflag v1.0.10 // indirect
	go.uber.org/goleak v1.3.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
)
