//go:build !linux

package broker

import "errors"

func inNetns(name string, fn func() error) error {
	return errors.New("broker: network namespaces need Linux")
}
