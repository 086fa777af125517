package goaway_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"

	"github.com/grpcmgmt/grpcmgmt/goaway"
)

// rawClient is an HTTP/2 client that speaks just enough to hold a
// connection open and read what the server sends, and ignores GOAWAY.
type rawClient struct {
	conn net.Conn
	fr   *http2.Framer
}

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return &rawClient{conn: c, fr: fr}
}

// readUntilClosed reads frames, acknowledging SETTINGS and PINGs and
// ignoring everything else, until the server closes the connection. It
// returns the GOAWAY frames seen and when each arrived.
func (r *rawClient) readUntilClosed() (gas []*http2.GoAwayFrame, at []time.Time) {
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			return gas, at
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = r.fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				_ = r.fr.WritePing(true, f.Data)
			}
		case *http2.GoAwayFrame:
			cp := *f
			gas = append(gas, &cp)
			at = append(at, time.Now())
		}
	}
}

// TestIgnoringClientClosedAfterGrace: a client that ignores GOAWAY is
// closed at the end of the grace, and everything the server held for it is
// released. The connection is idle, so the GOAWAY is written directly.
func TestIgnoringClientClosedAfterGrace(t *testing.T) {
	const grace = 400 * time.Millisecond
	m := newMeter()
	tr := newTracker(t, goaway.Config{Grace: grace, MeterProvider: m})
	addr, _ := startServer(t, grpc.Creds(tr.WrapCredentials(insecure.NewCredentials())))
	before := runtime.NumGoroutine()

	const n = 20
	clients := make([]*rawClient, n)
	for i := range clients {
		clients[i] = dialRaw(t, addr)
	}
	waitFor(t, 5*time.Second, "connections tracked", func() bool { return tr.Len() == n })
	if got := m.sum(t, "grpcmgmt.goaway.connections"); got != n {
		t.Fatalf("connections metric = %d, want %d", got, n)
	}
	type result struct {
		gas     []*http2.GoAwayFrame
		elapsed time.Duration
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gas, _ := c.readUntilClosed()
			results[i] = result{gas, time.Since(start)}
		}()
	}
	if got := tr.GoAwayAll(goaway.ReasonManual); got != n {
		t.Fatalf("GoAwayAll = %d, want %d", got, n)
	}
	wg.Wait()
	for i, r := range results {
		if len(r.gas) != 1 || r.gas[0].LastStreamID != 1<<31-1 || !strings.HasPrefix(string(r.gas[0].DebugData()), "grpcmgmt: manual") {
			t.Fatalf("client %d: GOAWAYs %v, want one of ours", i, r.gas)
		}
		if r.elapsed < grace-20*time.Millisecond {
			t.Fatalf("client %d closed after %v, before the grace %v", i, r.elapsed, grace)
		}
	}
	waitFor(t, 5*time.Second, "connections released", func() bool { return tr.Len() == 0 })
	if got := m.sum(t, "grpcmgmt.goaway.hard_closes"); got != n {
		t.Errorf("hard_closes = %d, want %d", got, n)
	}
	if got := m.sum(t, "grpcmgmt.goaway.sent", attribute.String("reason", "manual")); got != n {
		t.Errorf("sent{manual} = %d, want %d", got, n)
	}
	if got := m.sum(t, "grpcmgmt.goaway.connections"); got != 0 {
		t.Errorf("connections metric = %d after close, want 0", got)
	}
	if got := m.histCount(t, "grpcmgmt.goaway.connection_age"); got != n {
		t.Errorf("connection_age recorded %d times, want %d", got, n)
	}
	// Server memory for the ignoring clients is bounded: their transports
	// and goroutines are gone.
	waitFor(t, 5*time.Second, "server goroutines back to baseline", func() bool {
		return runtime.NumGoroutine() <= before
	})
}

// TestMaxCallsPerConn: after MaxCallsPerConn calls a connection gets a
// GOAWAY; the client moves to a new connection and no call fails.
func TestMaxCallsPerConn(t *testing.T) {
	m := newMeter()
	tr := newTracker(t, goaway.Config{MaxCallsPerConn: 10, MeterProvider: m})
	addr, _ := startServer(t, grpc.Creds(tr.WrapCredentials(insecure.NewCredentials())))
	client := testgrpc.NewTestServiceClient(dial(t, addr, insecure.NewCredentials()))
	for i := range 100 {
		if _, err := client.UnaryCall(context.Background(), &testgrpc.SimpleRequest{ResponseSize: 10}); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	// 100 calls at 10 per connection: about 10 connections (a call or two
	// may still land on a connection after its GOAWAY was written).
	if got := m.sum(t, "grpcmgmt.goaway.sent", attribute.String("reason", "max_calls")); got < 8 || got > 10 {
		t.Fatalf("sent{max_calls} = %d, want 8..10", got)
	}
	for _, c := range tr.Conns() {
		if c.Calls > 12 {
			t.Fatalf("connection %d carried %d calls", c.ID, c.Calls)
		}
	}
}

// TestGoAwayNSelectors: GoAwayN picks the oldest, the busiest, or random
// connections, skips draining ones, and the clients reconnect.
func TestGoAwayNSelectors(t *testing.T) {
	tr := newTracker(t, goaway.Config{})
	addr, _ := startServer(t, grpc.Creds(tr.WrapCredentials(insecure.NewCredentials())))
	var clients []testgrpc.TestServiceClient
	for i := range 4 {
		c := testgrpc.NewTestServiceClient(dial(t, addr, insecure.NewCredentials()))
		for range 1 + 10*(i%2) { // clients 1 and 3 are busy
			if _, err := c.EmptyCall(context.Background(), &testgrpc.Empty{}); err != nil {
				t.Fatal(err)
			}
		}
		clients = append(clients, c)
		waitFor(t, 5*time.Second, "connection", func() bool { return tr.Len() == i+1 })
	}
	conns := tr.Conns()
	// draining: the connections sent a GOAWAY, still open or already
	// closed by their client (an idle grpc-go client closes at once, so a
	// drained connection may be gone by the time it is looked for).
	draining := func() map[uint64]bool {
		live := map[uint64]goaway.ConnInfo{}
		for _, c := range tr.Conns() {
			live[c.ID] = c
		}
		out := map[uint64]bool{}
		for _, c := range conns {
			if l, ok := live[c.ID]; !ok || l.Draining {
				out[c.ID] = true
			}
		}
		return out
	}
	if got := tr.GoAwayN(1, goaway.OldestFirst, goaway.ReasonRebalance); got != 1 {
		t.Fatalf("GoAwayN(oldest) = %d", got)
	}
	if d := draining(); !d[conns[0].ID] || len(d) != 1 {
		t.Fatalf("oldest-first drained %v, want conn %d", d, conns[0].ID)
	}
	if got := tr.GoAwayN(1, goaway.BusiestFirst, goaway.ReasonRebalance); got != 1 {
		t.Fatalf("GoAwayN(busiest) = %d", got)
	}
	// Connections 2 and 4 both carried 11 calls; 4 is younger, so busier
	// per second.
	if d := draining(); !d[conns[3].ID] || len(d) != 2 {
		t.Fatalf("busiest-first drained %v, want conn %d (11 calls, youngest) too", d, conns[3].ID)
	}
	if got := tr.GoAwayN(5, goaway.Random, goaway.ReasonRebalance); got != 2 {
		t.Fatalf("GoAwayN(5, random) with 2 left = %d, want 2", got)
	}
	if tr.GoAway(conns[0].ID, goaway.ReasonManual) {
		t.Fatal("GoAway on a draining connection = true")
	}
	if tr.GoAway(1<<40, goaway.ReasonManual) {
		t.Fatal("GoAway on an unknown connection = true")
	}
	// Every client reconnects and its calls succeed. (A call made before
	// the client has read the GOAWAY is still served on the old
	// connection, so call until every client has a new one.)
	waitFor(t, 5*time.Second, "4 fresh connections", func() bool {
		for i, c := range clients {
			if _, err := c.EmptyCall(context.Background(), &testgrpc.Empty{}); err != nil {
				t.Fatalf("client %d after GOAWAY: %v", i, err)
			}
		}
		return tr.Active() == 4
	})
}

// TestCredentialsUnchanged: with TLS and mTLS the handler sees the same
// AuthInfo (protocol, ALPN, peer certificates) and peer address with and
// without the wrapper.
func TestCredentialsUnchanged(t *testing.T) {
	for _, tp := range transports(t) {
		t.Run(tp.name, func(t *testing.T) {
			see := func(wrap bool) *peer.Peer {
				var mu sync.Mutex
				var got *peer.Peer
				creds := tp.server
				if wrap {
					creds = newTracker(t, goaway.Config{}).WrapCredentials(creds)
				}
				addr, _ := startServer(t, grpc.Creds(creds), grpc.UnaryInterceptor(
					func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
						p, _ := peer.FromContext(ctx)
						mu.Lock()
						got = p
						mu.Unlock()
						return h(ctx, req)
					}))
				if _, err := testgrpc.NewTestServiceClient(dial(t, addr, tp.client)).EmptyCall(context.Background(), &testgrpc.Empty{}); err != nil {
					t.Fatal(err)
				}
				mu.Lock()
				defer mu.Unlock()
				return got
			}
			bare, wrapped := see(false), see(true)
			if bare.AuthInfo == nil {
				if wrapped.AuthInfo != nil {
					t.Fatalf("wrapped AuthInfo %v, bare nil", wrapped.AuthInfo)
				}
			} else {
				if bare.AuthInfo.AuthType() != wrapped.AuthInfo.AuthType() {
					t.Fatalf("AuthType %q, want %q", wrapped.AuthInfo.AuthType(), bare.AuthInfo.AuthType())
				}
				if b, ok := bare.AuthInfo.(credentials.TLSInfo); ok {
					w := wrapped.AuthInfo.(credentials.TLSInfo)
					if w.State.NegotiatedProtocol != "h2" || b.State.NegotiatedProtocol != "h2" {
						t.Fatalf("ALPN %q (bare %q), want h2", w.State.NegotiatedProtocol, b.State.NegotiatedProtocol)
					}
					if len(w.State.PeerCertificates) != len(b.State.PeerCertificates) || w.State.Version != b.State.Version ||
						w.CommonAuthInfo.SecurityLevel != b.CommonAuthInfo.SecurityLevel {
						t.Fatalf("TLS state differs: %+v vs %+v", w.State, b.State)
					}
					if tp.name == "mtls" && len(w.State.PeerCertificates) == 0 {
						t.Fatal("mTLS: no client certificate")
					}
				}
			}
			if wrapped.Addr.Network() != "tcp" || !strings.HasPrefix(wrapped.Addr.String(), "127.0.0.1:") {
				t.Fatalf("peer address %v", wrapped.Addr)
			}
		})
	}
}

// TestStalledClientClosedAtGrace: a client that stops reading in the
// middle of a large response blocks grpc-go's writer inside the wrapper's
// Write. GoAway must not block on it, and the grace close must still end
// the connection and release everything.
func TestStalledClientClosedAtGrace(t *testing.T) {
	const grace = 300 * time.Millisecond
	m := newMeter()
	tr := newTracker(t, goaway.Config{Grace: grace, MeterProvider: m})
	addr, _ := startServer(t, grpc.Creds(tr.WrapCredentials(insecure.NewCredentials())))

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	// Open the flow-control windows wide, so the server writes until the
	// socket buffers are full.
	if err := fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1}); err != nil {
		t.Fatal(err)
	}
	if err := fr.WriteWindowUpdate(0, 1<<31-1-65535); err != nil {
		t.Fatal(err)
	}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":path", "/grpc.testing.TestService/UnaryCall"},
		{":authority", addr}, {"content-type", "application/grpc"}, {"te", "trailers"},
	} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	msg, err := proto.Marshal(&testgrpc.SimpleRequest{ResponseSize: 48 << 20})
	if err != nil {
		t.Fatal(err)
	}
	grpcMsg := append([]byte{0, byte(len(msg) >> 24), byte(len(msg) >> 16), byte(len(msg) >> 8), byte(len(msg))}, msg...)
	if err := fr.WriteData(1, true, grpcMsg); err != nil {
		t.Fatal(err)
	}
	// Read the first MiB of the response, then stop reading: the server is
	// now in the middle of a 48 MiB response that cannot fit in the socket
	// buffers.
	got := 0
	for got < 1<<20 {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := f.(*http2.DataFrame); ok {
			got += len(d.Data())
		}
	}
	conns := tr.Conns()
	if len(conns) != 1 {
		t.Fatalf("%d connections tracked", len(conns))
	}
	start := time.Now()
	if !tr.GoAway(conns[0].ID, goaway.ReasonManual) {
		t.Fatal("GoAway refused")
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("GoAway blocked for %v on a stalled connection", d)
	}
	// After the grace the server closes: draining the socket ends in EOF
	// (or a reset), not in a hang.
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	n, err := io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("connection still open 30s after GoAway (read %d bytes)", n)
	}
	if d := time.Since(start); d < grace-20*time.Millisecond {
		t.Fatalf("closed after %v, before the grace %v", d, grace)
	}
	waitFor(t, 5*time.Second, "connection released", func() bool { return tr.Len() == 0 })
	if got := m.sum(t, "grpcmgmt.goaway.hard_closes"); got != 1 {
		t.Fatalf("hard_closes = %d, want 1", got)
	}
}
