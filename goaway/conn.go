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
type conn struct {
	net.Conn

	// Immutable after track:
	t     *Tracker
	id    uint64
	start time.Time
	raw   syscall.RawConn // the socket under the connection, nil if not exposed

	// Owned by the reading goroutine (grpc-go reads from one goroutine at a
	// time: the handshake, then the transport's reader):
	rcur        frameCursor
	prefaceLeft int
	maxStream   uint32 // highest client stream id seen in a HEADERS frame

	calls     atomic.Uint64 // streams the client opened
	requested atomic.Bool   // GoAway was asked for (at most once per conn)
	pending   atomic.Bool   // a GOAWAY waits for a frame boundary
	sent      atomic.Bool   // our GOAWAY was written
	ownGoAway atomic.Bool   // grpc-go wrote a GOAWAY of its own
	closed    atomic.Bool   // Close or forget ran: no longer in the Tracker

	// Set before pending is stored, read by the writer after it loads
	// pending:
	reason Reason

	// wmu serialises writes: grpc-go's frames and inserted GOAWAYs.
	wmu  sync.Mutex
	wcur frameCursor // guarded by wmu

	tmu   sync.Mutex  // guards timer
	timer *time.Timer // the grace timer, nil until GoAway

	drain drain // closed at the first GOAWAY, ours or grpc-go's (drain.go)
}

// sysConn is a conn whose inner connection exposes its file descriptor
// (TCP, and grpc-go's TLS wrapper); channelz reads socket options through
// it, so the wrapper keeps it.
type sysConn struct {
	*conn
	sc syscall.Conn
}

func (s sysConn) SyscallConn() (syscall.RawConn, error) { return s.sc.SyscallConn() }

// Read reads from the connection and counts the streams the client opens:
// a HEADERS frame on a client stream id above every one seen so far starts
// a call. Trailers and CONTINUATION frames do not count.
func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.scanRead(p[:n])
	}
	if err != nil {
		c.drain.peerGone.Store(true)
		c.ioFailed(err)
	}
	return n, err
}

func (c *conn) scanRead(p []byte) {
	if c.prefaceLeft > 0 {
		k := min(len(p), c.prefaceLeft)
		c.prefaceLeft -= k
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
	if c.closed.Load() {
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
	if !c.pending.Load() {
		c.scanWrite(p)
		return c.Conn.Write(p)
	}
	written := 0
	for len(p) > 0 && c.pending.Load() {
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
	if c.pending.Load() {
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
			i, frames, inBlock := 0, uint64(0), f.inBlock
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
				frames++
			}
			f.frames += frames
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
	if hdr && c.wcur.typ == frameGoAway && c.wcur.stream == 0 && !c.ownGoAway.Load() {
		c.ownGoAway.Store(true)
		c.drain.begin(ReasonMaxAge)
	}
}

// insertableLocked reports whether a pending GOAWAY can be resolved now:
// written (at a frame boundary after the server's first frame, its
// SETTINGS preface, and outside a HEADERS+CONTINUATION field block) or
// dropped (grpc-go has sent its own).
func (c *conn) insertableLocked() bool {
	return c.ownGoAway.Load() || c.wcur.canInsert()
}

// resolveLocked writes or drops the pending GOAWAY if it can be resolved
// now, and reports whether it was.
func (c *conn) resolveLocked() bool {
	if !c.pending.Load() {
		return true // resolved by another holder of the lock
	}
	if !c.insertableLocked() {
		return false
	}
	c.pending.Store(false)
	if c.ownGoAway.Load() {
		c.t.suppressed(c)
		return true
	}
	// The frame is built here, not kept on the connection: an idle
	// connection's every byte is counted (conn.idle_bytes_overhead).
	_, err := c.Conn.Write(appendGoAway(make([]byte, 0, frameHeaderLen+8+len(debugPrefix)+len(c.reason)), debugPrefix+string(c.reason)))
	if err == nil {
		c.sent.Store(true)
		// Handlers learn of the drain only now: whatever they write next
		// (a stream's last message, its trailers) reaches the client after
		// the GOAWAY, so the client opens its next stream on a new
		// connection.
		c.drain.begin(c.reason)
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
		if !c.pending.Load() || !c.wmu.TryLock() {
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
	if c.closed.Load() || c.ownGoAway.Load() || !c.requested.CompareAndSwap(false, true) {
		return false
	}
	c.reason = r
	c.pending.Store(true)
	c.armGrace()
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

func (c *conn) armGrace() {
	c.tmu.Lock()
	defer c.tmu.Unlock()
	if c.closed.Load() || c.timer != nil {
		return
	}
	c.timer = time.AfterFunc(c.t.cfg.Grace, c.graceExpired)
}

func (c *conn) graceExpired() {
	if c.closed.Load() {
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
	if !c.closed.CompareAndSwap(false, true) {
		return
	}
	if how == "closed" && c.drain.streams.Load() > 0 && !c.drain.peerGone.Load() {
		// The server closes (grace, Stop) under streams in flight; a close
		// after the client's own (a read ended) cuts nothing the client had
		// not given up.
		c.drain.cut.Store(true)
	}
	c.tmu.Lock()
	if c.timer != nil {
		c.timer.Stop()
	}
	c.tmu.Unlock()
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
	if c.closed.Load() {
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
		Start:      c.start,
		Calls:      c.calls.Load(),
		Draining:   c.requested.Load() || c.ownGoAway.Load(),
	}
}
