package goaway

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"
)

// ReasonMaxAge is the reason of a drain that grpc-go started itself, by
// writing a GOAWAY of its own: keepalive.ServerParameters'
// MaxConnectionAge (the maxage lever), or grpc.Server.GracefulStop when no
// grpcmgmt Manager sent a drain GOAWAY first.
const ReasonMaxAge Reason = "max_age"

// drain is the drain state of one connection: closed once, at its first
// GOAWAY, whoever sent it.
type drain struct {
	mu     sync.Mutex    // guards ch, and begin's writes
	ch     chan struct{} // made by the first Draining (most connections never see one), closed by begin
	done   atomic.Bool   // begin ran: reason and at are set
	reason Reason        // set before done
	at     time.Time     // when the GOAWAY was written; set before done

	streams  atomic.Int64 // streams in flight through StreamServerInterceptor
	peerGone atomic.Bool  // a read failed: the client closed or reset the connection
	cut      atomic.Bool  // the server closed the connection with streams in flight
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
func (d *drain) outlived(grace time.Duration) bool {
	return time.Since(d.at) >= grace-grace/10
}

// begin marks the connection draining for r, once.
func (d *drain) begin(r Reason) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.done.Load() {
		return
	}
	d.reason, d.at = r, time.Now()
	d.done.Store(true)
	if d.ch != nil {
		close(d.ch)
	}
}

// channel returns the channel begin closes, making it on first use: an
// idle connection does not carry one (96 bytes).
func (d *drain) channel() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ch == nil {
		if d.done.Load() {
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
// addresses. It allocates once per connection (the first call on it
// makes the channel); call it once per stream and keep the channel.
func Draining(ctx context.Context) <-chan struct{} {
	if c := connOf(ctx); c != nil {
		return c.drain.channel()
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
	if !c.drain.done.Load() {
		return "", time.Time{}, false
	}
	return c.drain.reason, c.drain.at.Add(c.t.cfg.Grace), true
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
		c.drain.streams.Add(1)
		err := h(srv, ss)
		c.drain.streams.Add(-1)
		if c.drain.done.Load() {
			t.m.drainedStream(c.drain.reason, c.drain.cut.Load() || c.drain.outlived(t.cfg.Grace))
		}
		return err
	}
}

// The process-wide index of tracked connections by their addresses, for
// Draining: a handler's context carries the connection's peer (remote and
// local address), not the connection. Written when a connection opens or
// closes, read by Draining (a map keyed by a comparable struct: a lookup
// does not allocate).
var index = struct {
	sync.RWMutex
	m map[connKey]*conn
}{m: map[connKey]*conn{}}

// ambiguous marks addresses shared by two live connections (in-memory
// listeners): Draining cannot tell them apart and returns nil.
var ambiguous = &conn{}

// connKey identifies a connection by its addresses. It is kept small
// (52 bytes; netip.AddrPort pairs and strings took 96): the index holds one
// per connection, and an idle connection's cost is counted in bytes
// (conn.idle_bytes_overhead). An IPv6 zone is left out: two live
// connections that differ only by zone are marked ambiguous.
type connKey struct {
	local, remote [16]byte // TCP addresses as IPv6 (IPv4-mapped)
	lport, rport  uint16
	// names, for addresses that are not TCP (unix sockets, in-memory
	// listeners): network and string forms of both.
	names string
}

func keyOf(local, remote net.Addr) (connKey, bool) {
	if local == nil || remote == nil {
		return connKey{}, false
	}
	l, lok := local.(*net.TCPAddr)
	r, rok := remote.(*net.TCPAddr)
	if lok && rok {
		la, ra := l.AddrPort(), r.AddrPort()
		return connKey{local: la.Addr().As16(), remote: ra.Addr().As16(), lport: la.Port(), rport: ra.Port()}, true
	}
	return connKey{names: local.Network() + ":" + local.String() + " " + remote.Network() + ":" + remote.String()}, true
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
	if c == ambiguous {
		return nil
	}
	return c
}
