//go:build !linux

package goaway

import "net"

// readyWrap: grpc-go reads raw sockets only on Linux; elsewhere the plain
// conn is used, as grpc-go uses a bare connection's Read.
func readyWrap(*conn, net.Conn) net.Conn { return nil }
