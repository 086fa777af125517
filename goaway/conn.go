package goaway

import (
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// conn wraps the net.Conn a server handshake returned (after TLS, so it
// carries plain HTTP/2 frames). grpc-go writes its frames through Write; the
// wrapper follows them and inserts a GOAWAY at a frame boundary when asked.
// It follows the frames the client sends through Read to count calls.
//
// A server holds one per connection for as long as the connection lives,
// idle or not, so it is kept small (144 bytes; conn.idle_bytes_overhead):
// what only a draining connection needs is in a drainState made on first
// use, and the flags share one word.
type conn struct {
	net.Conn

	// Immutable after track:
	t     *Tracker
	raw   syscall.RawConn // the socket under the connection, nil if not exposed
	id    uint64
	start int64 // when track ran, in nanoseconds since t.epoch (monotonic)

	calls atomic.Uint64 // streams the client opened

	// ds is made by the first GoAway, drain or Draining (most connections
	// never see one) and never replaced.
	ds atomic.Pointer[drainState]

	// Owned by the reading goroutine (grpc-go reads from one goroutine at a
	// time: the handshake, then the transport's reader):
	rcur frameCursor

	wcur frameCursor // guarded by wmu

	maxStream uint32        // highest client stream id seen in a HEADERS frame; owned by the reader
	flags     atomic.Uint32 // fRequested, fPending, ...
	streams   atomic.Int32  // streams in flight through StreamServerInterceptor

	// wmu serialises writes: grpc-go's frames and inserted GOAWAYs.
	wmu sync.Mutex

	prefaceLeft uint8 // client preface bytes still to skip; owned by the reader
}

// The bits of conn.flags. Each is set once, except fPending, which is
// cleared when its GOAWAY is written or dropped.
const (
	fRequested uint32 = 1 << iota // GoAway was asked for (at most once per conn)
	fPending                      // a GOAWAY waits for a frame boundary; drainState.req is set
	fOwnGoAway                    // grpc-go wrote a GOAWAY of its own
	fClosed                       // Close or forget ran: no longer in the Tracker
	fDrained                      // the drain began: drainState.reason and at are set
	fPeerGone                     // a read failed: the client closed or reset the connection
	fCut                          // the server closed the connection with streams in flight
)

// has reports whether any of the flags in f is set.
func (c *conn) has(f uint32) bool { return c.flags.Load()&f != 0 }

// sysConn is a conn whose inner connection exposes its file descriptor
// (TCP, and grpc-go's TLS wrapper); channelz reads socket options through
// it, so the wrapper keeps it. It is one pointer: handing it to grpc-go as
// a net.Conn allocates nothing.
type sysConn struct{ *conn }

// SyscallConn returns the inner connection's syscall.RawConn.
func (s sysConn) SyscallConn() (syscall.RawConn, error) { return s.syscallConn() }

func (c *conn) syscallConn() (syscall.RawConn, error) {
	if c.raw != nil {
		return c.raw, nil
	}
	return c.Conn.(syscall.Conn).SyscallConn()
}

// Read reads from the connection and counts the streams the client opens:
// a HEADERS frame on a client stream id above every one seen so far starts
// a call. Trailers and CONTINUATION frames do not count.
func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.scanRead(p[:n])
	}
	if err != nil {
		c.flags.Or(fPeerGone)
		c.ioFailed(err)
	}
	return n, err
}

func (c *conn) scanRead(p []byte) {
	if c.prefaceLeft > 0 {
		k := min(len(p), int(c.prefaceLeft))
		c.prefaceLeft -= uint8(k)
		p = p[k:]
	}
	f := &c.rcur
	for len(p) > 0 {
		if f.left == 0 && f.hdrN == 0 {
			// Frames that lie whole in p: inline, reading only what counting
			// calls needs.
			i := 0
			for len(p)-i >= frameHeaderLen {
				end := i + frameHeaderLen + (int(p[i])<<16 | int(p[i+1])<<8 | int(p[i+2]))
				if end > len(p) {
					break
				}
				if p[i+3] == frameHeaders {
					c.sawHeaders(binary.BigEndian.Uint32(p[i+5:]) & maxStreamID)
				}
				i = end
			}
			p = p[i:]
			if len(p) == 0 {
				return
			}
		}
		n, hdr := f.next(p)
		p = p[n:]
		if hdr && f.typ == frameHeaders {
			c.sawHeaders(f.stream)
		}
	}
}

// sawHeaders counts a call when a HEADERS frame opens a new client stream
// (odd id above every one seen; trailers reuse an id, CONTINUATION is
// another type), and asks for a GOAWAY at Config.MaxCallsPerConn.
func (c *conn) sawHeaders(stream uint32) {
	if stream&1 == 0 || stream <= c.maxStream {
		return
	}
	c.maxStream = stream
	calls := c.calls.Add(1)
	if c.has(fClosed) {
		// Closed while this read was under way: remove may have summed
		// calls before the Add. Count it again rather than lose it (a
		// stream counted twice only makes Tracker.Audit more lenient).
		c.t.closedCalls.Add(1)
	}
	if limit := c.t.cfg.MaxCallsPerConn; limit > 0 && calls == limit {
		c.goAway(ReasonMaxCalls)
	}
}

// Write writes p, inserting a pending GOAWAY at the first frame boundary in
// or after p. It returns the number of bytes of p written.
func (c *conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	n, err := c.writeLocked(p)
	c.unlockWrite()
	if err != nil {
		c.ioFailed(err)
	}
	return n, err
}

func (c *conn) writeLocked(p []byte) (int, error) {
	if !c.has(fPending) {
		c.scanWrite(p)
		return c.Conn.Write(p)
	}
	written := 0
	for len(p) > 0 && c.has(fPending) {
		if c.resolveLocked() {
			break
		}
		// Not insertable here: write up to the next frame boundary.
		k := 0
		for k < len(p) {
			n, hdr := c.wcur.next(p[k:])
			k += n
			c.sawHeader(hdr)
			if c.wcur.canInsert() {
				break
			}
		}
		n, err := c.Conn.Write(p[:k])
		written += n
		if err != nil {
			return written, err
		}
		p = p[k:]
	}
	if len(p) > 0 {
		c.scanWrite(p)
		n, err := c.Conn.Write(p)
		return written + n, err
	}
	if c.has(fPending) {
		c.resolveLocked() // p ended on a boundary
	}
	return written, nil
}

// scanWrite moves the write cursor over p. This is the per-frame cost of
// the wrapper (goaway.write_ns_per_frame): frames that lie whole in p are
// skipped by a tight inline loop; a frame split across writes, and GOAWAY,
// take the general path.
func (c *conn) scanWrite(p []byte) {
	f := &c.wcur
	for len(p) > 0 {
		if f.left == 0 && f.hdrN == 0 {
			i, inBlock := 0, f.inBlock
			for len(p)-i >= frameHeaderLen {
				end := i + frameHeaderLen + (int(p[i])<<16 | int(p[i+1])<<8 | int(p[i+2]))
				typ := p[i+3]
				if end > len(p) || typ == frameGoAway {
					break
				}
				if typ < 16 && blockTypes>>typ&1 != 0 {
					inBlock = p[i+4]&flagEndHeaders == 0
				}
				i = end
			}
			if i > 0 {
				f.started = true
			}
			f.inBlock = inBlock
			p = p[i:]
			if len(p) == 0 {
				return
			}
		}
		n, hdr := f.next(p)
		p = p[n:]
		c.sawHeader(hdr)
	}
}

// sawHeader notes a GOAWAY written by grpc-go itself: from then on nothing
// is inserted, so the last-stream-id never rises (RFC 9113 §6.8).
func (c *conn) sawHeader(hdr bool) {
	if hdr && c.wcur.typ == frameGoAway && c.wcur.stream == 0 && c.flags.Or(fOwnGoAway)&fOwnGoAway == 0 {
		c.beginDrain(ReasonMaxAge)
	}
}

// insertableLocked reports whether a pending GOAWAY can be resolved now:
// written (at a frame boundary after the server's first frame, its
// SETTINGS preface, and outside a HEADERS+CONTINUATION field block) or
// dropped (grpc-go has sent its own).
func (c *conn) insertableLocked() bool {
	return c.has(fOwnGoAway) || c.wcur.canInsert()
}

// resolveLocked writes or drops the pending GOAWAY if it can be resolved
// now, and reports whether it was.
func (c *conn) resolveLocked() bool {
	if !c.has(fPending) {
		return true // resolved by another holder of the lock
	}
	if !c.insertableLocked() {
		return false
	}
	c.flags.And(^fPending)
	if c.has(fOwnGoAway) {
		c.t.suppressed(c)
		return true
	}
	// The frame is built here, not kept on the connection: an idle
	// connection's every byte is counted (conn.idle_bytes_overhead).
	r := c.ds.Load().req
	_, err := c.Conn.Write(appendGoAway(make([]byte, 0, frameHeaderLen+8+len(debugPrefix)+len(r)), debugPrefix+string(r)))
	if err == nil {
		// Handlers learn of the drain only now: whatever they write next
		// (a stream's last message, its trailers) reaches the client after
		// the GOAWAY, so the client opens its next stream on a new
		// connection.
		c.beginDrain(r)
	}
	c.t.wrote(c, err)
	return true
}

// unlockWrite releases wmu, then writes a GOAWAY that was requested while
// the lock was held, if nobody else holds the lock by then. GoAway stores
// pending before it tries the lock, so either GoAway gets the lock or the
// holder sees pending after unlocking: a request is never left behind on an
// idle connection. A GOAWAY that waits for the rest of a frame is written
// by the Write that completes the frame.
func (c *conn) unlockWrite() {
	for {
		c.wmu.Unlock()
		if !c.has(fPending) || !c.wmu.TryLock() {
			return
		}
		if !c.resolveLocked() {
			c.wmu.Unlock()
			return
		}
	}
}

// goAway asks for a GOAWAY on c. It never blocks: the frame goes out with
// grpc-go's next write, or on its own goroutine if the connection is idle.
// It reports false if c is closed, already drained by grpc-go, or already
// asked.
func (c *conn) goAway(r Reason) bool {
	if c.has(fClosed|fOwnGoAway|fRequested) || c.flags.Or(fRequested)&fRequested != 0 {
		return false
	}
	d := c.drainState()
	d.req = r
	c.flags.Or(fPending)
	c.armGrace(d)
	if c.wmu.TryLock() {
		if c.insertableLocked() {
			// Idle at a boundary: write now, off the caller's goroutine so
			// that a peer that stopped reading cannot block it. The
			// goroutine owns the lock until it is done.
			go func() {
				c.resolveLocked()
				c.unlockWrite()
			}()
		} else {
			c.unlockWrite()
		}
	}
	return true
}

func (c *conn) armGrace(d *drainState) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c.has(fClosed) || d.timer != nil {
		return
	}
	d.timer = time.AfterFunc(c.t.cfg.Grace, c.graceExpired)
}

func (c *conn) graceExpired() {
	if c.has(fClosed) {
		return
	}
	c.t.hardClosing(c)
	_ = c.Close()
}

// Close closes the connection and removes it from the tracker. It is
// idempotent, like the inner Close it calls.
func (c *conn) Close() error {
	c.forget("closed")
	return c.Conn.Close()
}

// forget removes c from the Tracker and stops its grace timer, once: on
// Close, or when the connection has ended without the wrapper's Close
// (see ioFailed and Tracker.sweepLocked). how says which, for the log.
func (c *conn) forget(how string) {
	if c.flags.Or(fClosed)&fClosed != 0 {
		return
	}
	if how == "closed" && c.streams.Load() > 0 && !c.has(fPeerGone) {
		// The server closes (grace, Stop) under streams in flight; a close
		// after the client's own (a read ended) cuts nothing the client had
		// not given up.
		c.flags.Or(fCut)
	}
	// armGrace, which may be under way, checks fClosed under d.mu.
	if d := c.ds.Load(); d != nil {
		d.mu.Lock()
		if d.timer != nil {
			d.timer.Stop()
		}
		d.mu.Unlock()
	}
	c.t.remove(c, how)
}

// ioFailed forgets c after a read or write of its connection failed (the
// peer's EOF or reset, a closed socket): such a connection carries no more
// calls, and whoever owns it may close the socket rather than the wrapper.
// grpc-go does exactly that when setting up its transport fails after the
// handshake (server.go closes the raw connection), so without this the
// Tracker would keep every connection a client resets right after its
// handshake. A timeout is not an end: a deadline may be lifted and the
// connection used again (grpc-go sets one during its own handshake).
func (c *conn) ioFailed(err error) {
	if c.has(fClosed) {
		return
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return
	}
	c.forget("io_error")
}

// socketClosed reports whether the socket under c was closed by someone
// other than the wrapper (grpc-go closes the raw connection when it cannot
// set up a transport). False when c does not expose its socket.
func (c *conn) socketClosed() bool {
	return c.raw != nil && c.raw.Control(noControl) != nil
}

func noControl(uintptr) {}

// info returns a snapshot of c.
func (c *conn) info() ConnInfo {
	return ConnInfo{
		ID:         c.id,
		RemoteAddr: c.RemoteAddr(),
		LocalAddr:  c.LocalAddr(),
		Start:      c.t.epoch.Add(time.Duration(c.start)),
		Calls:      c.calls.Load(),
		Draining:   c.draining(),
	}
}

// draining reports whether c was asked for a GOAWAY, by this package or by
// grpc-go itself.
func (c *conn) draining() bool { return c.has(fRequested | fOwnGoAway) }

// age returns how long ago c was tracked.
func (c *conn) age() time.Duration { return c.t.since() - time.Duration(c.start) }
