//go:build !(amd64 || arm64)

package blockdev

import "errors"

// newAIOEngine: this machine's struct iocb layout is not the one
// aio_linux.go encodes, so Files use blocking syscalls.
func newAIOEngine() (ioEngine, error) {
	return nil, errors.New("blockdev: native AIO is only built for amd64 and arm64")
}

// AIOAvailable reports why Files do not use native AIO here.
func AIOAvailable() error {
	_, err := newAIOEngine()
	return err
}
