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
// The conn and the state of the read are one object (192 bytes), plus the
// read callback's closure, made once: what grpc-go itself would allocate
// for a bare socket's reader is about as much.
//
// Only for the socket types grpc-go itself reads raw: a TLS connection's
// syscall.Conn is the encrypted socket, so it gets the plain conn.
type readyConn struct {
	conn

	// State of the read in progress, kept here so that a read allocates
	// nothing (the callback is built once). Owned by the reading goroutine.
	doRead  func(fd uintptr) bool
	pool    mem.BufferPool
	buf     *[]byte
	bufSize int
	res     int // bytes read, or -errno when the read failed
}

// newReadyConn returns a readyConn for nc when nc is a plain socket whose
// file descriptor raw can be read directly, else nil. The caller fills in
// its conn.
func newReadyConn(nc net.Conn, raw syscall.RawConn) *readyConn {
	switch nc.(type) {
	case *net.TCPConn, *net.UnixConn:
	default:
		return nil
	}
	if raw == nil {
		return nil
	}
	r := new(readyConn)
	r.doRead = func(fd uintptr) bool {
		r.buf = r.pool.Get(r.bufSize)
		n, err := syscall.Read(int(fd), *r.buf)
		if err != nil {
			r.pool.Put(r.buf)
			r.buf = nil
			errno, ok := err.(syscall.Errno)
			if !ok || errno == 0 {
				errno = syscall.EIO // syscall.Read returns only an Errno on Linux
			}
			r.res = -int(errno)
			// false: not readable yet, wait for the poller and call again.
			return errno != syscall.EAGAIN && errno != syscall.EWOULDBLOCK
		}
		r.res = n
		return true
	}
	return r
}

// SyscallConn returns the socket's syscall.RawConn (channelz reads socket
// options through it).
func (r *readyConn) SyscallConn() (syscall.RawConn, error) { return r.syscallConn() }

// ReadOnReady waits until the connection is readable, reads up to bufSize
// bytes into a buffer from pool and counts the streams the client opens in
// them, as Read does. It returns the buffer (the caller puts it back), the
// bytes read and an error; a closed peer is io.EOF.
func (r *readyConn) ReadOnReady(bufSize int, pool mem.BufferPool) (*[]byte, int, error) {
	r.bufSize, r.pool = bufSize, pool
	err := r.raw.Read(r.doRead)
	buf, res := r.buf, r.res
	r.buf, r.res, r.pool = nil, 0, nil
	if err != nil {
		if buf != nil {
			pool.Put(buf)
		}
		r.flags.Or(fPeerGone)
		r.ioFailed(err)
		return nil, 0, err
	}
	if res < 0 {
		rerr := syscall.Errno(-res)
		r.flags.Or(fPeerGone)
		r.ioFailed(rerr)
		return nil, 0, rerr
	}
	if res == 0 {
		pool.Put(buf)
		r.flags.Or(fPeerGone)
		r.ioFailed(io.EOF)
		return nil, 0, io.EOF
	}
	r.scanRead((*buf)[:res])
	return buf, res, nil
}
