package goaway_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/grpcmgmt/grpcmgmt/goaway"
	"github.com/grpcmgmt/grpcmgmt/internal/testcert"
)

// TestTrackerForgetsConnectionsResetAfterHandshake: a client that connects,
// completes the transport handshake (none for plaintext, TLS otherwise) and
// resets the connection (SO_LINGER 0) before grpc-go has set up its HTTP/2
// transport. With a small write buffer grpc-go's first write (its SETTINGS)
// fails, NewServerTransport returns an error and server.go closes the *raw*
// connection, never the wrapper the Tracker handed out; with the default
// buffer the write is buffered and the preface read fails instead, after
// which grpc-go closes the wrapper. Either way the Tracker must forget the
// connection: Len returns to 0, the connections gauge to 0, and every
// connection is recorded as closed (so the test knows each one was tracked,
// then forgotten).
//
// Each connection is held between the server's handshake and grpc-go's
// first write until the client has reset it (gatedCreds), so every one of
// them takes the failing path: without the fix, WriteBufferSize 0 and 1
// leave every connection in the Tracker.
func TestTrackerForgetsConnectionsResetAfterHandshake(t *testing.T) {
	const conns = 40
	tlsServer, tlsClient := testcert.TLSConfigs(t)
	for _, tp := range []struct {
		name   string
		server credentials.TransportCredentials
		client *tls.Config // nil: plaintext
	}{
		{"insecure", insecure.NewCredentials(), nil},
		{"tls", credentials.NewTLS(tlsServer), tlsClient},
	} {
		for _, wb := range []struct {
			name string
			opts []grpc.ServerOption
		}{
			{"write-buffer-default", nil},
			{"write-buffer-0", []grpc.ServerOption{grpc.WriteBufferSize(0)}},
			{"write-buffer-1", []grpc.ServerOption{grpc.WriteBufferSize(1)}},
		} {
			t.Run(tp.name+"/"+wb.name, func(t *testing.T) {
				mp := newMeter()
				tr := newTracker(t, goaway.Config{MeterProvider: mp})
				gate := newGatedCreds(tp.server)
				addr, _ := startServer(t, append([]grpc.ServerOption{grpc.Creds(tr.WrapCredentials(gate))}, wb.opts...)...)
				for range conns {
					connectThenReset(t, addr, tp.client, gate)
				}
				// Every connection recorded as closed: each was tracked, then
				// forgotten.
				waitFor(t, 10*time.Second, "the Tracker to forget every reset connection",
					func() bool { return closedConns(t, mp) == conns })
				if got := tr.Len(); got != 0 {
					t.Errorf("Tracker.Len() = %d, want 0", got)
				}
				if got := mp.sum(t, "grpcmgmt.goaway.connections"); got != 0 {
					t.Errorf("grpcmgmt.goaway.connections = %d, want 0", got)
				}
				if n := tr.GoAwayAll(goaway.ReasonDrain); n != 0 {
					t.Errorf("GoAwayAll sent %d GOAWAYs to connections that are gone, want 0", n)
				}
			})
		}
	}
}

// TestResetConnectionsDoNotGrowTheHeap: many connect-then-reset connections
// leave nothing behind: the live heap after a second batch is what it was
// after the first (the leak this guards against cost about 560 bytes per
// connection, growing without bound).
func TestResetConnectionsDoNotGrowTheHeap(t *testing.T) {
	const batch = 400
	mp := newMeter()
	tr := newTracker(t, goaway.Config{MeterProvider: mp})
	gate := newGatedCreds(insecure.NewCredentials())
	addr, _ := startServer(t, grpc.Creds(tr.WrapCredentials(gate)), grpc.WriteBufferSize(0))
	var total uint64
	heapAfter := func() uint64 {
		for range batch {
			connectThenReset(t, addr, nil, gate)
		}
		total += batch
		waitFor(t, 10*time.Second, "the Tracker to forget every reset connection",
			func() bool { return closedConns(t, mp) == total && tr.Len() == 0 })
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	heapAfter() // warm up pools and maps
	first := heapAfter()
	second := heapAfter()
	growth := int64(second) - int64(first)
	t.Logf("live heap after %d reset connections: %d KiB, after %d more: %d KiB (%+d bytes per connection)",
		batch, first>>10, batch, second>>10, growth/batch)
	if growth > batch*128 {
		t.Fatalf("live heap grew by %d bytes over %d reset connections (%d per connection), want < 128 per connection",
			growth, batch, growth/batch)
	}
}

// connectThenReset opens a connection to addr, completes the TLS handshake
// when tlsCfg is set, waits for the server's handshake to finish, resets
// the connection (SO_LINGER 0, so the close sends RST) and only then lets
// the server go on to set up its HTTP/2 transport.
func connectThenReset(t *testing.T, addr string, tlsCfg *tls.Config, gate *gatedCreds) {
	t.Helper()
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	g := gate.slot(raw.LocalAddr().String())
	if tlsCfg != nil {
		tc := tls.Client(raw, tlsCfg)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-g.handshaken:
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not finish its handshake")
	}
	if err := raw.(*net.TCPConn).SetLinger(0); err != nil {
		t.Fatal(err)
	}
	_ = raw.Close()
	close(g.reset)
}

// gatedCreds holds each server connection after the inner handshake until
// the client says it has reset it.
type gatedCreds struct {
	credentials.TransportCredentials
	mu    sync.Mutex
	slots map[string]*gateSlot // by the client's address
}

type gateSlot struct {
	handshaken chan struct{} // closed by the server
	reset      chan struct{} // closed by the client
}

func newGatedCreds(inner credentials.TransportCredentials) *gatedCreds {
	return &gatedCreds{TransportCredentials: inner, slots: map[string]*gateSlot{}}
}

func (g *gatedCreds) slot(addr string) *gateSlot {
	g.mu.Lock()
	defer g.mu.Unlock()
	s, ok := g.slots[addr]
	if !ok {
		s = &gateSlot{handshaken: make(chan struct{}), reset: make(chan struct{})}
		g.slots[addr] = s
	}
	return s
}

func (g *gatedCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	s := g.slot(raw.RemoteAddr().String())
	nc, ai, err := g.TransportCredentials.ServerHandshake(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("gated: %w", err)
	}
	close(s.handshaken)
	select {
	case <-s.reset:
	case <-time.After(10 * time.Second):
	}
	g.mu.Lock()
	delete(g.slots, raw.RemoteAddr().String())
	g.mu.Unlock()
	return nc, ai, nil
}

// Clone returns g itself: its slots are shared by every copy.
func (g *gatedCreds) Clone() credentials.TransportCredentials { return g }

// closedConns is the number of connections recorded in
// grpcmgmt.goaway.connection_age (one point per closed connection).
func closedConns(t *testing.T, mp *meter) uint64 {
	t.Helper()
	var n uint64
	for _, mt := range mp.collect(t) {
		if h, ok := mt.Data.(metricdata.Histogram[float64]); ok && mt.Name == "grpcmgmt.goaway.connection_age" {
			for _, p := range h.DataPoints {
				n += p.Count
			}
		}
	}
	return n
}
