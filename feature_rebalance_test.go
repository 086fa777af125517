package grpcmgmt_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/grpcmgmt/grpcmgmt"
	"github.com/grpcmgmt/grpcmgmt/goaway"
	"github.com/grpcmgmt/grpcmgmt/internal/dnsmasq"
)

// TestRebalanceThroughManager: WithRebalance watches a real dnsmasq; when
// the set grows from 3 to 4 and stays, the Manager's server sends GOAWAY to
// a quarter of its 12 connections.
func TestRebalanceThroughManager(t *testing.T) {
	dns, err := dnsmasq.Start(t.TempDir(), "svc.manager.test", 0, "127.0.0.2", "127.0.0.3", "127.0.0.4")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dns.Close)
	s := startServer(t, grpcmgmt.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		grpcmgmt.WithRebalance(goaway.RebalanceConfig{Name: dns.Name, Resolver: dns.Addr,
			Interval: 100 * time.Millisecond, StableFor: 300 * time.Millisecond, Window: 200 * time.Millisecond,
			Settle: 300 * time.Millisecond})) // Settle is also the start-up grace: the set grows within a second
	for range 12 {
		cl := testpb.NewTestServiceClient(dial(t, s.addr))
		if _, err := cl.EmptyCall(context.Background(), &testpb.Empty{}); err != nil {
			t.Fatal(err)
		}
	}
	tr := s.m.GoAwayTracker()
	waitUntil(t, "12 connections", func() bool { return tr.Active() == 12 })
	time.Sleep(300 * time.Millisecond) // several lookups of the unchanged set: nothing happens
	if got := tr.Active(); got != 12 {
		t.Fatalf("%d of 12 connections active before any change, want all", got)
	}
	if err := dns.Set("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "9 connections without GOAWAY", func() bool { return tr.Active() == 9 })
}

func TestWithRebalanceErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []grpcmgmt.Option
		want string
	}{
		{"no name", []grpcmgmt.Option{grpcmgmt.WithRebalance(goaway.RebalanceConfig{})}, "Name"},
		{"bad window", []grpcmgmt.Option{grpcmgmt.WithRebalance(goaway.RebalanceConfig{Name: "svc.test", Window: time.Hour})}, "Window"},
		{"goaway off", []grpcmgmt.Option{grpcmgmt.Without("goaway"), grpcmgmt.WithRebalance(goaway.RebalanceConfig{Name: "svc.test"})}, `Without("goaway")`},
	} {
		m, err := grpcmgmt.New(tc.opts...)
		if err == nil {
			_ = m.Shutdown(context.Background())
			t.Errorf("%s: New succeeded, want an error naming %s", tc.name, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New = %v, want an error naming %s", tc.name, err, tc.want)
		}
	}
}
