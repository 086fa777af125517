package goaway_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/grpcmgmt/grpcmgmt/goaway"
	"github.com/grpcmgmt/grpcmgmt/internal/dnsmasq"
)

// startDNS starts a real dnsmasq serving name with ips (TTL 1 s), as the
// DNS of a Kubernetes headless Service does.
func startDNS(t *testing.T, name string, ips ...string) *dnsmasq.DNS {
	t.Helper()
	d, err := dnsmasq.Start(t.TempDir(), name, 0, ips...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// TestDNSWatcher: against a real dnsmasq, the watcher reports the set,
// sorted, then the new set after a change, a failed lookup once the name is
// gone, and nothing after Close.
func TestDNSWatcher(t *testing.T) {
	dns := startDNS(t, "svc.watch.test", "127.0.0.4", "127.0.0.2", "127.0.0.3")
	w, err := goaway.NewDNSWatcher(goaway.DNSWatcherConfig{Name: dns.Name, Resolver: dns.Addr, Interval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		got  []goaway.Lookup
		last = func() goaway.Lookup { mu.Lock(); defer mu.Unlock(); return got[len(got)-1] }
	)
	if err := w.Watch(func(l goaway.Lookup) { mu.Lock(); got = append(got, l); mu.Unlock() }); err != nil {
		t.Fatal(err)
	}
	if err := w.Watch(func(goaway.Lookup) {}); err == nil {
		t.Error("a second Watch did not fail")
	}
	n := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }
	waitFor(t, 5*time.Second, "first lookup", func() bool { return n() > 0 })
	if l := last(); l.Err != nil || !slices.Equal(l.Members, []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}) {
		t.Fatalf("first lookup = %+v, want the three addresses, sorted", l)
	}
	if err := dns.Set("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the grown set", func() bool { return len(last().Members) == 4 })
	if err := dns.Set(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "a failed lookup", func() bool { l := last(); return l.Err != nil && len(l.Members) == 0 })
	if err := last().Err; !strings.Contains(err.Error(), " on "+dns.Addr+":") {
		t.Errorf("failed lookup: %v; want it to name the server asked (%s)", err, dns.Addr)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	closedAt := n()
	time.Sleep(300 * time.Millisecond) // three intervals
	if n() != closedAt {
		t.Fatalf("%d lookups reported after Close", n()-closedAt)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestRebalanceRealDNS: a Rebalancer watching a real dnsmasq, with 12 real
// client connections. The answer toggles between 3 and 4 replicas every
// second for 6 s, then the name disappears (every lookup fails) for 2 s:
// no GOAWAY. Then the set grows to 4 and stays: 3 GOAWAYs (12 × 1/4).
func TestRebalanceRealDNS(t *testing.T) {
	three := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}
	four := append(slices.Clone(three), "127.0.0.5")
	dns := startDNS(t, "svc.rebalance.test", three...)

	m, logs := newMeter(), &logRecorder{}
	tr := newTracker(t, goaway.Config{Logger: slog.New(logs), MeterProvider: m, Grace: 5 * time.Second})
	addr, _ := startServer(t, grpc.Creds(tr.WrapCredentials(insecure.NewCredentials())))
	for range 12 {
		c := testpb.NewTestServiceClient(dial(t, addr, insecure.NewCredentials()))
		if _, err := c.EmptyCall(context.Background(), &testpb.Empty{}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "connections", func() bool { return tr.Len() == 12 })
	rb, err := goaway.NewRebalancer(tr, goaway.RebalanceConfig{Name: dns.Name, Resolver: dns.Addr,
		Interval: 250 * time.Millisecond, Window: 200 * time.Millisecond, Settle: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	waitFor(t, 5*time.Second, "the first answer", func() bool { return rb.ReplicaSetSize() == 3 })
	sent := func() int64 { return m.sum(t, "grpcmgmt.goaway.sent", attribute.String("reason", "rebalance")) }
	lookups := func(outcome string) int64 {
		return m.sum(t, "grpcmgmt.goaway.replica_set.lookups", attribute.String("outcome", outcome))
	}

	for i := range 6 {
		set := four
		if i%2 == 1 {
			set = three
		}
		if err := dns.Set(set...); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // the flap's period: the scenario, not synchronisation
	}
	if err := dns.Set(); err != nil {
		t.Fatal(err)
	}
	failedBefore := lookups("error") + lookups("empty")
	waitFor(t, 5*time.Second, "failed lookups", func() bool { return lookups("error")+lookups("empty") >= failedBefore+4 })

	if got := sent(); got != 0 {
		t.Fatalf("sent %d GOAWAYs while the answer flapped or failed, want none", got)
	}
	if got := tr.Active(); got != 12 {
		t.Fatalf("%d of 12 connections active, want all", got)
	}
	// The rebalancer saw the flaps (it waited for the grown set to be
	// stable each time) and made many lookups.
	if waits := len(logs.find("rebalance: replica set grew; waiting")); waits < 2 {
		t.Fatalf("saw the grown set %d times during the flap, want at least 2 (is the watcher looking?)", waits)
	}
	if ok := lookups("ok"); ok < 15 {
		t.Fatalf("%d successful lookups in 6 s at 250 ms, want at least 15", ok)
	}
	if infos := logs.find("rebalance: replica set lookups failing"); len(infos) != 1 {
		t.Fatalf("%d info records for failing lookups, want 1 (state change only)", len(infos))
	}

	if err := dns.Set(four...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "3 GOAWAYs after a stable growth", func() bool { return sent() == 3 })
	if l := logs.find("rebalance: replica set lookups work again"); len(l) != 1 {
		t.Fatalf("%d info records for recovered lookups, want 1", len(l))
	}
	if err := rb.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestDNSWatcherConfigValidate(t *testing.T) {
	bad := []struct {
		field string
		cfg   goaway.DNSWatcherConfig
	}{
		{"Name", goaway.DNSWatcherConfig{}},
		{"Resolver", goaway.DNSWatcherConfig{Name: "svc.test", Resolver: "127.0.0.1"}},
		{"Interval", goaway.DNSWatcherConfig{Name: "svc.test", Interval: time.Hour}},
	}
	for _, b := range bad {
		_, err := goaway.NewDNSWatcher(b.cfg)
		if err == nil || !strings.Contains(err.Error(), b.field) {
			t.Errorf("NewDNSWatcher(%+v) = %v, want an error naming %s", b.cfg, err, b.field)
		}
	}
}

// fakeWatcher is a Watcher the test reports through.
type fakeWatcher struct {
	mu      sync.Mutex
	report  func(goaway.Lookup)
	watches int
	closes  int
}

func (f *fakeWatcher) Watch(report func(goaway.Lookup)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.report = report
	f.watches++
	return nil
}

func (f *fakeWatcher) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closes++
	return nil
}

func (f *fakeWatcher) send(l goaway.Lookup) {
	f.mu.Lock()
	report := f.report
	f.mu.Unlock()
	report(l)
}

// One Watcher serves several views: it is started once, each view gets every
// lookup (a late one the latest at once), a closed view gets nothing more,
// and the last view closed closes the Watcher.
func TestSharedWatcher(t *testing.T) {
	f := &fakeWatcher{}
	s := goaway.NewSharedWatcher(f)
	a, b := s.View(), s.View()
	var gotA, gotB []string
	if err := a.Watch(func(l goaway.Lookup) { gotA = append(gotA, l.Members...) }); err != nil {
		t.Fatal(err)
	}
	if err := a.Watch(func(goaway.Lookup) {}); err == nil {
		t.Error("a second Watch on one view did not fail")
	}
	f.send(goaway.Lookup{Members: []string{"1"}})
	if err := b.Watch(func(l goaway.Lookup) { gotB = append(gotB, l.Members...) }); err != nil {
		t.Fatal(err)
	}
	f.send(goaway.Lookup{Members: []string{"2"}})
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	f.send(goaway.Lookup{Members: []string{"3"}})
	if !slices.Equal(gotA, []string{"1", "2"}) || !slices.Equal(gotB, []string{"1", "2", "3"}) {
		t.Errorf("views got %v and %v, want [1 2] and [1 2 3]", gotA, gotB)
	}
	if f.watches != 1 || f.closes != 0 {
		t.Errorf("underlying Watch called %d times and Close %d times with a view open, want 1 and 0", f.watches, f.closes)
	}
	_ = b.Close()
	_ = b.Close()
	if f.closes != 1 {
		t.Errorf("underlying Close called %d times after the last view closed, want 1", f.closes)
	}
}
