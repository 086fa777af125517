package goaway

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	client, err = net.Dial("tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	server, err = lis.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = server.Close() })
	return server, client
}

// TestForgetsRawClose: whoever owns the raw socket may close it instead of
// the wrapper (grpc-go's server.go does, when NewServerTransport fails after
// the handshake, before any read or write has failed): the Tracker forgets
// the connection by the next time it looks at its connections.
func TestForgetsRawClose(t *testing.T) {
	tr := newTestTracker(t, Config{})
	raw, _ := tcpPair(t)
	w := tr.track(raw)
	if got := tr.Len(); got != 1 {
		t.Fatalf("Len = %d after track, want 1", got)
	}
	_ = raw.Close() // the raw connection, not w
	if got := tr.Len(); got != 0 {
		t.Fatalf("Len = %d after the raw connection was closed, want 0", got)
	}
	if n := tr.GoAwayAll(ReasonDrain); n != 0 {
		t.Errorf("GoAwayAll = %d, want 0", n)
	}
	_ = w.Close() // still safe, and counted once
	if got := tr.Len(); got != 0 {
		t.Fatalf("Len = %d, want 0", got)
	}
}

// TestForgetsOnPeerEnd: a read that ends in the peer's EOF, or a write that
// fails because the peer reset the connection, ends the connection for the
// Tracker even if nobody closes the wrapper; a read deadline does not.
func TestForgetsOnPeerEnd(t *testing.T) {
	t.Run("deadline then eof", func(t *testing.T) {
		tr := newTestTracker(t, Config{})
		raw, peer := tcpPair(t)
		// A plain conn (no ReadOnReady) reads through conn.Read.
		w := tr.track(struct{ net.Conn }{raw})
		if err := w.SetReadDeadline(time.Now().Add(time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Read(make([]byte, 16)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read = %v, want a deadline error", err)
		}
		if got := tr.Len(); got != 1 {
			t.Fatalf("Len = %d after a read deadline, want 1: a timeout does not end a connection", got)
		}
		if err := w.SetReadDeadline(time.Time{}); err != nil {
			t.Fatal(err)
		}
		_ = peer.Close()
		if _, err := w.Read(make([]byte, 16)); !errors.Is(err, io.EOF) {
			t.Fatalf("Read = %v, want EOF", err)
		}
		tr.mu.Lock()
		n := len(tr.conns) // without sweep: the read alone forgot it
		tr.mu.Unlock()
		if n != 0 {
			t.Fatalf("%d connections tracked after the peer's EOF, want 0", n)
		}
	})
	t.Run("write after reset", func(t *testing.T) {
		tr := newTestTracker(t, Config{})
		raw, peer := tcpPair(t)
		w := tr.track(struct{ net.Conn }{raw})
		if err := peer.(*net.TCPConn).SetLinger(0); err != nil {
			t.Fatal(err)
		}
		_ = peer.Close()
		// The first write after the RST may still succeed (the kernel learns
		// of the reset asynchronously); one soon fails.
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := w.Write(make([]byte, 9)); err != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("writes to a reset connection kept succeeding")
			}
			time.Sleep(time.Millisecond)
		}
		tr.mu.Lock()
		n := len(tr.conns)
		tr.mu.Unlock()
		if n != 0 {
			t.Fatalf("%d connections tracked after a failed write, want 0", n)
		}
	})
}
