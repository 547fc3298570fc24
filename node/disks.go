package node

import "errors"

func (n *Node) diskFail(disk string) (string, error) {
	return "", errors.New("disk fail: not available yet")
}

func (n *Node) diskReplace(old, new string) (string, error) {
	return "", errors.New("disk replace: not available yet")
}
