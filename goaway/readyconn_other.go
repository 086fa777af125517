//go:build !linux

package goaway

import (
	"net"
	"syscall"
)

// readyConn is a conn that reads the way grpc-go reads a bare socket; only
// on Linux (readyconn_linux.go).
type readyConn struct{ conn }

// newReadyConn: grpc-go reads raw sockets only on Linux; elsewhere the
// plain conn is used, as grpc-go uses a bare connection's Read.
func newReadyConn(net.Conn, syscall.RawConn) *readyConn { return nil }
