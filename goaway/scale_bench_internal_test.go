package goaway

import (
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"
)

// addrConn is a discardConn with TCP addresses (the address index of
// Draining keys connections by them), each with its own client port.
type addrConn struct {
	discardConn
	local, remote net.Addr
}

func (c addrConn) LocalAddr() net.Addr  { return c.local }
func (c addrConn) RemoteAddr() net.Addr { return c.remote }

func newAddrConn(i int) addrConn {
	return addrConn{local: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 50051},
		remote: &net.TCPAddr{IP: net.IPv4(10, 1, byte(i>>16), byte(i>>8)), Port: 1024 + i&0xff}}
}

// The Tracker's bookkeeping per connection, at scale (make bench:
// goaway.track_ns, goaway.active_10k_us, goaway.all_10k_inproc_ms). The
// connections are discardConns: no socket, so these are the library's
// own costs; bench/cmd/idleconns measures GoAwayAll over real sockets.

// BenchmarkTrack is what a connection costs the Tracker from its
// handshake to its close: track (map, address index) and remove.
func BenchmarkTrack(b *testing.B) {
	t, err := NewTracker(Config{Grace: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c := t.track(newAddrConn(i)).(*conn)
		_ = c.Close()
		i++
	}
}

// trackerWith returns a Tracker holding n idle connections.
func trackerWith(b *testing.B, n int) *Tracker {
	t, err := NewTracker(Config{Grace: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		c := t.track(newAddrConn(i)).(*conn)
		c.prefaceLeft = 0
	}
	return t
}

// BenchmarkActive is Tracker.Active with 10 000 connections: the policies
// call it every round and the rebalancer on every lookup.
func BenchmarkActive(b *testing.B) {
	for _, n := range []int{1000, 10_000} {
		b.Run(fmt.Sprintf("conns=%d", n), func(b *testing.B) {
			t := trackerWith(b, n)
			b.ReportAllocs()
			for b.Loop() {
				_ = t.Active()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e3, "µs/call")
		})
	}
}

// BenchmarkGoAwayAll is a lame-duck GoAwayAll over 10 000 idle
// connections, without sockets.
func BenchmarkGoAwayAll(b *testing.B) {
	const n = 10_000
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		t := trackerWith(b, n)
		b.StartTimer()
		if sent := t.GoAwayAll(ReasonDrain); sent != n {
			b.Fatalf("sent %d, want %d", sent, n)
		}
		b.StopTimer()
		for _, c := range t.candidatesAll() {
			_ = c.Close()
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ms/call")
}

// candidatesAll returns every live connection (draining or not).
func (t *Tracker) candidatesAll() []*conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*conn, 0, len(t.conns))
	for _, c := range t.conns {
		out = append(out, c)
	}
	return out
}
