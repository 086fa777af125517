package goaway

import (
	"io"
	"net"
	"syscall"

	"google.golang.org/grpc/mem"
)

// readyConn is a conn over a plain socket that also reads the way grpc-go
// (1.81+) reads a bare *net.TCPConn: it waits until the socket is readable
// and only then takes a buffer from grpc-go's pool. grpc-go uses this
// through its optional ReadOnReady interface (internal/transport/
// readyreader) when the connection offers it; without it grpc-go falls back
// to a bufio.Reader that pins a 32 KiB read buffer per connection for as
// long as the connection lives, idle or not. TestIdleConnectionMemory
// holds the difference.
//
// Only for the socket types grpc-go itself reads raw: a TLS connection's
// syscall.Conn is the encrypted socket, so it gets the plain conn.
type readyConn struct {
	sysConn
	raw syscall.RawConn

	// State of the read in progress, kept here so that a read allocates
	// nothing (the callback is built once). Owned by the reading goroutine.
	doRead  func(fd uintptr) bool
	bufSize int
	pool    mem.BufferPool
	buf     *[]byte
	n       int
	err     error
}

// readyWrap returns c as a readyConn when nc is a plain socket whose file
// descriptor can be read directly, else nil.
func readyWrap(c *conn, nc net.Conn) net.Conn {
	switch nc.(type) {
	case *net.TCPConn, *net.UnixConn:
	default:
		return nil
	}
	if c.raw == nil {
		return nil
	}
	r := &readyConn{sysConn: sysConn{conn: c, sc: nc.(syscall.Conn)}, raw: c.raw}
	r.doRead = func(fd uintptr) bool {
		r.buf = r.pool.Get(r.bufSize)
		r.n, r.err = syscall.Read(int(fd), *r.buf)
		if r.err != nil {
			r.pool.Put(r.buf)
			r.buf = nil
			r.n = 0
		}
		// false: not readable yet, wait for the poller and call again.
		return r.err != syscall.EAGAIN && r.err != syscall.EWOULDBLOCK
	}
	return r
}

// ReadOnReady waits until the connection is readable, reads up to bufSize
// bytes into a buffer from pool and counts the streams the client opens in
// them, as Read does. It returns the buffer (the caller puts it back), the
// bytes read and an error; a closed peer is io.EOF.
func (r *readyConn) ReadOnReady(bufSize int, pool mem.BufferPool) (*[]byte, int, error) {
	r.bufSize, r.pool = bufSize, pool
	err := r.raw.Read(r.doRead)
	buf, n, rerr := r.buf, r.n, r.err
	r.buf, r.n, r.err, r.pool = nil, 0, nil, nil
	if err != nil {
		if buf != nil {
			pool.Put(buf)
		}
		r.drain.peerGone.Store(true)
		r.ioFailed(err)
		return nil, 0, err
	}
	if rerr != nil {
		r.drain.peerGone.Store(true)
		r.ioFailed(rerr)
		return nil, 0, rerr
	}
	if n == 0 {
		pool.Put(buf)
		r.drain.peerGone.Store(true)
		r.ioFailed(io.EOF)
		return nil, 0, io.EOF
	}
	r.scanRead((*buf)[:n])
	return buf, n, nil
}
