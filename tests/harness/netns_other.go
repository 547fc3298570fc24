//go:build !linux

package harness

import "errors"

// InNetns needs Linux.
func InNetns(name string, fn func() error) error {
	return errors.New("harness: network namespaces need Linux")
}
