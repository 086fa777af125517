//go:build linux

package goaway

import (
	"errors"
	"io"
	"net"
	"testing"

	"google.golang.org/grpc/mem"
)

// readyReader is grpc-go's optional interface (internal/transport/
// readyreader.Reader), restated: grpc-go finds it by this method alone.
type readyReader interface {
	ReadOnReady(bufSize int, pool mem.BufferPool) (*[]byte, int, error)
}

// countingPool is a BufferPool that counts the buffers out.
type countingPool struct{ out int }

func (p *countingPool) Get(n int) *[]byte { p.out++; b := make([]byte, n); return &b }
func (p *countingPool) Put(*[]byte)       { p.out-- }

// TestReadOnReady: over a TCP socket the wrapper offers grpc-go's
// ReadOnReady, counts the calls in what it reads, returns io.EOF when the
// peer closes, an error once closed itself, and never keeps a buffer.
func TestReadOnReady(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	peer, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	raw, err := lis.Accept()
	if err != nil {
		t.Fatal(err)
	}
	tr := newTestTracker(t, Config{})
	wrapped := tr.track(raw)
	rr, ok := wrapped.(readyReader)
	if !ok {
		t.Fatalf("the wrapper over a *net.TCPConn is a %T without ReadOnReady: grpc-go would pin a read buffer per connection", wrapped)
	}
	c := tr.candidates()[0]

	// The client preface, then HEADERS on streams 1 and 3 and a DATA frame.
	in := []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	in = append(in, 0, 0, 0, frameHeaders, flagEndHeaders, 0, 0, 0, 1)
	in = append(in, 0, 0, 1, 0, 0, 0, 0, 0, 1, 'x')
	in = append(in, 0, 0, 0, frameHeaders, flagEndHeaders, 0, 0, 0, 3)
	if _, err := peer.Write(in); err != nil {
		t.Fatal(err)
	}
	pool := &countingPool{}
	var got []byte
	for len(got) < len(in) {
		buf, n, err := rr.ReadOnReady(7, pool) // small reads split frames
		if err != nil {
			t.Fatalf("ReadOnReady after %d bytes: %v", len(got), err)
		}
		got = append(got, (*buf)[:n]...)
		pool.Put(buf)
	}
	if string(got) != string(in) {
		t.Fatalf("read %q, want %q", got, in)
	}
	if n := c.calls.Load(); n != 2 {
		t.Fatalf("%d calls counted, want 2", n)
	}

	peer.Close()
	if _, _, err := rr.ReadOnReady(16, pool); err != io.EOF {
		t.Fatalf("after the peer closed: err %v, want io.EOF", err)
	}
	if err := wrapped.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := rr.ReadOnReady(16, pool); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("after Close: err %v, want net.ErrClosed", err)
	}
	if pool.out != 0 {
		t.Fatalf("%d buffers not returned to the pool", pool.out)
	}
}

// TestReadOnReadyOnlyOnSockets: a connection that is not a plain socket (TLS
// here, or any wrapper) gets no ReadOnReady: reading its descriptor would
// read the encrypted bytes.
func TestReadOnReadyOnlyOnSockets(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	tr := newTestTracker(t, Config{})
	if _, ok := tr.track(a).(readyReader); ok {
		t.Fatal("a net.Pipe connection got ReadOnReady")
	}
}
