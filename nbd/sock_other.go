//go:build !linux

package nbd

import "net"

// wrapSocket is the identity where sockets are read and written through
// package net alone (see sock_linux.go).
func wrapSocket(nc net.Conn) net.Conn { return nc }
