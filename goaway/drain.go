package goaway

import (
	"context"
	"hash/maphash"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"
)

// ReasonMaxAge is the reason of a drain that grpc-go started itself, by
// writing a GOAWAY of its own: keepalive.ServerParameters'
// MaxConnectionAge (the maxage lever), or grpc.Server.GracefulStop when no
// grpcmgmt Manager sent a drain GOAWAY first.
const ReasonMaxAge Reason = "max_age"

// drainState is what a connection needs once it drains, or once a handler
// asks about its drain: made on first use (conn.drainState), so that an
// idle connection carries only the pointer to it.
type drainState struct {
	mu    sync.Mutex    // guards ch and timer, and beginDrain's writes
	ch    chan struct{} // made by the first Draining, closed by beginDrain
	timer *time.Timer   // the grace timer, nil until GoAway
	// req is why GoAway was asked for: set before fPending, read by the
	// writer after it sees fPending.
	req Reason
	// reason is why the drain began (req, or ReasonMaxAge for grpc-go's own
	// GOAWAY) and at when the GOAWAY was written: set before fDrained.
	reason Reason
	at     time.Time
}

// drainState returns c's drainState, making it on first use.
func (c *conn) drainState() *drainState {
	if d := c.ds.Load(); d != nil {
		return d
	}
	d := new(drainState)
	if c.ds.CompareAndSwap(nil, d) {
		return d
	}
	return c.ds.Load()
}

// closedChan is the channel Draining returns for a connection that was
// drained before anything asked: closed, shared by all of them.
var closedChan = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

// outlived reports whether a stream ending now outlived the drain's grace:
// it ended because the connection was closed at the end of the grace. (When
// grpc-go closes a connection at its MaxConnectionAgeGrace, it first waits
// up to a second for the client to close, so the client's close can come
// first: the time tells.)
func (d *drainState) outlived(grace time.Duration) bool {
	return time.Since(d.at) >= grace-grace/10
}

// beginDrain marks c draining for r, once.
func (c *conn) beginDrain(r Reason) {
	d := c.drainState()
	d.mu.Lock()
	defer d.mu.Unlock()
	if c.has(fDrained) {
		return
	}
	d.reason, d.at = r, time.Now()
	c.flags.Or(fDrained)
	if d.ch != nil {
		close(d.ch)
	}
}

// drainChannel returns the channel beginDrain closes, making it on first
// use: an idle connection does not carry one (96 bytes).
func (c *conn) drainChannel() <-chan struct{} {
	if c.has(fDrained) {
		return closedChan
	}
	d := c.drainState()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ch == nil {
		if c.has(fDrained) {
			return closedChan
		}
		d.ch = make(chan struct{})
	}
	return d.ch
}

// Draining returns a channel that is closed when the connection carrying
// the call of ctx (a handler's context) has been sent a GOAWAY (closed as
// the frame is written, so anything the handler sends next reaches the
// client after it), for any reason: max age (grpc-go's own GOAWAY), load, rebalancing, max calls,
// lame-duck shutdown, or a direct GoAway. A handler of a long-lived stream
// selects on it and finishes the stream cleanly (sends what it must and
// returns OK, or a status the client retries); the client opens its next
// stream on a new connection, possibly to another replica, instead of
// having the stream cut when the grace period ends.
//
//	for {
//		select {
//		case <-goaway.Draining(ctx):
//			return nil // the client resumes on a new connection
//		case ev := <-events:
//			if err := stream.Send(ev); err != nil {
//				return err
//			}
//		}
//	}
//
// It returns nil (a channel that never fires in a select) when the
// connection is not wrapped by a Tracker (WrapCredentials, or the grpcmgmt
// Manager) or cannot be told apart from another one with the same
// addresses. It allocates only on the first call on a connection (which
// makes the channel); call it once per stream and keep the channel.
func Draining(ctx context.Context) <-chan struct{} {
	if c := connOf(ctx); c != nil {
		return c.drainChannel()
	}
	return nil
}

// DrainInfo returns why the connection carrying the call of ctx is
// draining and when the Tracker will close it (the GOAWAY's time plus the
// grace: Config.Grace, which the Manager sets to the maxage grace), and
// false if it is not draining or not tracked. Clients normally close a
// drained connection as soon as their last call on it ends, well before
// the deadline.
func DrainInfo(ctx context.Context) (r Reason, closeBy time.Time, ok bool) {
	c := connOf(ctx)
	if c == nil {
		return "", time.Time{}, false
	}
	if !c.has(fDrained) {
		return "", time.Time{}, false
	}
	d := c.ds.Load()
	return d.reason, d.at.Add(c.t.cfg.Grace), true
}

// StreamServerInterceptor counts the streams of each tracked connection,
// so that a drain is measured: grpcmgmt.goaway.drained_streams counts, by
// drain reason, the streams that ended while their connection was
// draining, ended="cut" when the connection was closed under it by the
// server (at the end of the grace, or a hard stop) and ended="handler"
// otherwise (its handler returned first: it listened to Draining, or its
// client finished or gave up). The grpcmgmt Manager installs it; it adds no
// allocation to a stream.
func (t *Tracker) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		c := connOf(ss.Context())
		if c == nil || c.t != t {
			return h(srv, ss)
		}
		c.streams.Add(1)
		err := h(srv, ss)
		c.streams.Add(-1)
		if c.has(fDrained) {
			d := c.ds.Load()
			t.m.drainedStream(d.reason, c.has(fCut) || d.outlived(t.cfg.Grace))
		}
		return err
	}
}

// The process-wide index of tracked connections by their addresses, for
// Draining: a handler's context carries the connection's peer (remote and
// local address), not the connection. Written when a connection opens or
// closes, read by Draining. The key is a seeded 64-bit hash of the
// addresses (a lookup does not allocate, and an entry is 16 bytes: the
// index holds one per connection, and an idle connection's cost is counted
// in bytes, conn.idle_bytes_overhead); a lookup checks the addresses of
// the connection it finds.
var index = struct {
	sync.RWMutex
	m    map[uint64]*conn
	seed maphash.Seed
}{m: map[uint64]*conn{}, seed: maphash.MakeSeed()}

// ambiguous marks a key shared by two live connections (addresses that are
// the same, in-memory listeners, or whose hashes collide): Draining cannot
// tell them apart and returns nil.
var ambiguous = &conn{}

// keyOf hashes a connection's addresses. TCP addresses are hashed as IPv6
// (IPv4-mapped) and ports; an IPv6 zone is left out: two live connections
// that differ only by zone are marked ambiguous. Other addresses (unix
// sockets, in-memory listeners) are hashed by their network and string
// forms.
func keyOf(local, remote net.Addr) (uint64, bool) {
	if local == nil || remote == nil {
		return 0, false
	}
	l, lok := local.(*net.TCPAddr)
	r, rok := remote.(*net.TCPAddr)
	if lok && rok {
		var b [37]byte
		la, ra := l.AddrPort(), r.AddrPort()
		*(*[16]byte)(b[0:16]) = la.Addr().As16()
		*(*[16]byte)(b[16:32]) = ra.Addr().As16()
		b[32], b[33] = byte(la.Port()>>8), byte(la.Port())
		b[34], b[35] = byte(ra.Port()>>8), byte(ra.Port())
		b[36] = 't'
		return maphash.Bytes(index.seed, b[:]), true
	}
	var h maphash.Hash
	h.SetSeed(index.seed)
	h.WriteString(local.Network())
	h.WriteByte(0)
	h.WriteString(local.String())
	h.WriteByte(0)
	h.WriteString(remote.Network())
	h.WriteByte(0)
	h.WriteString(remote.String())
	return h.Sum64(), true
}

// sameAddr reports whether a and b are the same address, as keyOf sees
// them.
func sameAddr(a, b net.Addr) bool {
	if a == b {
		return true
	}
	ta, aok := a.(*net.TCPAddr)
	tb, bok := b.(*net.TCPAddr)
	if aok && bok {
		return ta.Port == tb.Port && ta.IP.Equal(tb.IP)
	}
	return !aok && !bok && a.Network() == b.Network() && a.String() == b.String()
}

func indexAdd(c *conn) {
	k, ok := keyOf(c.LocalAddr(), c.RemoteAddr())
	if !ok {
		return
	}
	index.Lock()
	defer index.Unlock()
	if prev, dup := index.m[k]; dup && prev != c {
		index.m[k] = ambiguous
		return
	}
	index.m[k] = c
}

func indexRemove(c *conn) {
	k, ok := keyOf(c.LocalAddr(), c.RemoteAddr())
	if !ok {
		return
	}
	index.Lock()
	defer index.Unlock()
	if index.m[k] == c {
		delete(index.m, k)
	}
}

// connOf returns the tracked connection carrying the call of ctx, or nil.
func connOf(ctx context.Context) *conn {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	k, ok := keyOf(p.LocalAddr, p.Addr)
	if !ok {
		return nil
	}
	index.RLock()
	c := index.m[k]
	index.RUnlock()
	if c == nil || c == ambiguous || !sameAddr(c.LocalAddr(), p.LocalAddr) || !sameAddr(c.RemoteAddr(), p.Addr) {
		return nil
	}
	return c
}
