package goaway_test

import (
	"bytes"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/grpcmgmt/grpcmgmt/goaway"
	"github.com/grpcmgmt/grpcmgmt/internal/replica"
	"github.com/grpcmgmt/grpcmgmt/internal/testcert"
)

// transport is one way of securing a connection: the tests run over each.
type transport struct {
	name   string
	server credentials.TransportCredentials
	client credentials.TransportCredentials
}

func transports(t testing.TB) []transport {
	s, c := tlsCreds(t, false)
	ms, mc := tlsCreds(t, true)
	return []transport{
		{"insecure", insecure.NewCredentials(), insecure.NewCredentials()},
		{"tls", s, c},
		{"mtls", ms, mc},
	}
}

// tlsCreds returns server and client credentials from a fresh self-signed
// certificate for 127.0.0.1; with mutual, the client presents one too.
func tlsCreds(t testing.TB, mutual bool) (server, client credentials.TransportCredentials) {
	return testcert.Creds(t, mutual)
}

// startServer serves the replica test service on 127.0.0.1:0 and stops the
// server when the test ends.
func startServer(t testing.TB, opts ...grpc.ServerOption) (addr string, srv *grpc.Server) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv = grpc.NewServer(opts...)
	replica.New(replica.Config{Name: "r1"}).Register(srv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return lis.Addr().String(), srv
}

func newTracker(t testing.TB, cfg goaway.Config) *goaway.Tracker {
	t.Helper()
	tr, err := goaway.NewTracker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func dial(t testing.TB, addr string, creds credentials.TransportCredentials, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(creds)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// recorder wraps server credentials and records, per connection, every byte
// the server writes after the handshake: the tests decode it with an HTTP/2
// framer. It sits below the GOAWAY wrapper, so it sees the frames exactly as
// they go on the wire.
type recorder struct {
	credentials.TransportCredentials
	mu    sync.Mutex
	conns []*recConn
}

type recConn struct {
	net.Conn
	mu  sync.Mutex
	out bytes.Buffer
}

func (r *recorder) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	c, ai, err := r.TransportCredentials.ServerHandshake(raw)
	if err != nil {
		return nil, nil, err
	}
	rc := &recConn{Conn: c}
	r.mu.Lock()
	r.conns = append(r.conns, rc)
	r.mu.Unlock()
	return rc, ai, nil
}

func (r *recorder) Clone() credentials.TransportCredentials {
	return &recorder{TransportCredentials: r.TransportCredentials.Clone()}
}

func (r *recorder) streams() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([][]byte, len(r.conns))
	for i, c := range r.conns {
		c.mu.Lock()
		out[i] = bytes.Clone(c.out.Bytes())
		c.mu.Unlock()
	}
	return out
}

func (c *recConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.mu.Lock()
	c.out.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
