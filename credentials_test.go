package grpcmgmt_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"

	"github.com/grpcmgmt/grpcmgmt"
	"github.com/grpcmgmt/grpcmgmt/health"
	"github.com/grpcmgmt/grpcmgmt/internal/testcert"
	"github.com/grpcmgmt/grpcmgmt/load"
	"github.com/grpcmgmt/grpcmgmt/loadshed"
)

// TestNewRequiresAChoiceOfCredentials: plaintext is never chosen by
// default, and a contradictory choice is an error naming both options.
func TestNewRequiresAChoiceOfCredentials(t *testing.T) {
	_, err := grpcmgmt.New()
	if err == nil || !strings.Contains(err.Error(), "WithCredentials(creds)") || !strings.Contains(err.Error(), "WithInsecure()") {
		t.Errorf("New() = %v, want an error asking for WithCredentials or WithInsecure", err)
	}
	tlsCreds, _ := testcert.Creds(t, false)
	_, err = grpcmgmt.New(grpcmgmt.WithCredentials(tlsCreds), grpcmgmt.WithInsecure())
	if err == nil || !strings.Contains(err.Error(), "WithCredentials and WithInsecure both given") {
		t.Errorf("New(WithCredentials, WithInsecure) = %v, want an error naming both", err)
	}
}

// syncBuffer is a log sink the sampler goroutine and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// counterSum reads an int64 counter, summed over its attributes, from reader.
func counterSum(t *testing.T, reader *sdkmetric.ManualReader, name string) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, mt := range sm.Metrics {
			if mt.Name != name {
				continue
			}
			for _, dp := range mt.Data.(metricdata.Sum[int64]).DataPoints {
				n += dp.Value
			}
		}
	}
	return n
}

// tlsServer serves a Manager built from opts (with fast sampling, logs to
// logs, metrics to reader) on a server built from before, the Manager's
// options, then after, and returns its address.
func tlsServer(t *testing.T, logs *syncBuffer, reader *sdkmetric.ManualReader, before, after []grpc.ServerOption, opts ...grpcmgmt.Option) (*grpcmgmt.Manager, string) {
	t.Helper()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	m, err := grpcmgmt.New(append([]grpcmgmt.Option{
		grpcmgmt.WithLogger(slog.New(slog.NewTextHandler(logs, nil))),
		grpcmgmt.WithMeterProvider(mp),
		grpcmgmt.WithLoad(load.Config{Period: 10 * time.Millisecond}),
		grpcmgmt.WithHealth(health.Config{PropagationDelay: time.Millisecond, DisableLoad: true}),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(append(append(before, m.ServerOptions()...), after...)...)
	if err := m.Register(srv); err != nil {
		t.Fatal(err)
	}
	addr := serve(t, srv)
	t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
	return m, addr
}

func healthCheck(t *testing.T, addr string, creds credentials.TransportCredentials) error {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

// awaitSamples waits until the sampler has delivered n more samples: every
// subscriber registered before (the levers') has then seen n-1 samples
// taken after the call to awaitSamples.
func awaitSamples(t *testing.T, m *grpcmgmt.Manager, n int) {
	t.Helper()
	ch := make(chan struct{}, n)
	cancel := m.Load().OnSample(func(load.Snapshot) {
		select {
		case ch <- struct{}{}:
		default:
		}
	})
	defer cancel()
	for range n {
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatal("timed out waiting for load samples")
		}
	}
}

// TestTLSSurvivesGrpcCredsBeforeTheOptions is the trap of grpc.Creds keeping
// the last value: a user who passes grpc.Creds(tls) before the Manager's
// options keeps TLS (the Manager's own credentials are the same TLS, given
// with WithCredentials), plaintext clients are refused, and the Tracker sees
// the connection, so GOAWAY reaches it.
func TestTLSSurvivesGrpcCredsBeforeTheOptions(t *testing.T) {
	serverCreds, clientCreds := testcert.Creds(t, false)
	logs, reader := &syncBuffer{}, sdkmetric.NewManualReader()
	m, addr := tlsServer(t, logs, reader, []grpc.ServerOption{grpc.Creds(serverCreds)}, nil,
		grpcmgmt.WithCredentials(serverCreds))
	if err := healthCheck(t, addr, insecure.NewCredentials()); status.Code(err) != codes.Unavailable {
		t.Errorf("plaintext health Check = %v, want Unavailable (the TLS handshake refuses it)", err)
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(clientCreds))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if _, err := healthpb.NewHealthClient(cc).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("TLS health Check: %v", err)
	}
	if n := m.GoAwayTracker().Len(); n != 1 {
		t.Fatalf("Tracker holds %d connections with one TLS client connected, want 1", n)
	}
	awaitSamples(t, m, 3)
	if n := counterSum(t, reader, "grpcmgmt.goaway.untracked_calls"); n != 0 {
		t.Errorf("grpcmgmt.goaway.untracked_calls = %d with every connection wrapped, want 0", n)
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("error logged with every connection wrapped:\n%s", logs)
	}
}

// TestGrpcCredsAfterTheOptionsIsDetected: a grpc.Creds after the Manager's
// options replaces the wrapped credentials, so GOAWAY cannot reach the
// server's connections. The calls served on them are counted, and one
// error names the cause and the fix.
func TestGrpcCredsAfterTheOptionsIsDetected(t *testing.T) {
	serverCreds, clientCreds := testcert.Creds(t, false)
	logs, reader := &syncBuffer{}, sdkmetric.NewManualReader()
	m, addr := tlsServer(t, logs, reader, nil, []grpc.ServerOption{grpc.Creds(serverCreds)},
		grpcmgmt.WithCredentials(serverCreds))
	const calls = 5
	for range calls {
		if err := healthCheck(t, addr, clientCreds); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "the untracked calls counted", func() bool {
		return counterSum(t, reader, "grpcmgmt.goaway.untracked_calls") >= calls
	})
	if n := m.GoAwayTracker().Len(); n != 0 {
		t.Errorf("Tracker holds %d connections, want 0 (they bypassed it)", n)
	}
	awaitSamples(t, m, 3)
	if got := strings.Count(logs.String(), "level=ERROR"); got != 1 || !strings.Contains(logs.String(), "grpcmgmt.WithCredentials") {
		t.Errorf("%d ERROR lines, want exactly 1 naming grpcmgmt.WithCredentials:\n%s", got, logs)
	}
}

// TestServerOptionsOneLiner: the one-line form builds one process-wide
// Manager, whatever the number of servers; Default reaches it to Register
// and Shutdown; and Shutdown stops everything it started (the goroutine
// leak check of TestMain would fail otherwise).
func TestServerOptionsOneLiner(t *testing.T) {
	logs := &syncBuffer{}
	first := grpc.NewServer(grpcmgmt.ServerOptions(grpcmgmt.WithInsecure(),
		grpcmgmt.WithLogger(slog.New(slog.NewTextHandler(logs, nil))),
		grpcmgmt.WithHealth(health.Config{PropagationDelay: time.Millisecond, DisableLoad: true}))...)
	m := grpcmgmt.Default()
	if m == nil {
		t.Fatal("Default() = nil after ServerOptions")
	}
	second := grpc.NewServer(grpcmgmt.ServerOptions()...)
	if grpcmgmt.Default() != m {
		t.Error("a second ServerOptions() built another Manager")
	}
	func() {
		defer func() {
			if r := recover(); r == nil || !strings.Contains(r.(string), "already built") {
				t.Errorf("ServerOptions with options on a second call: panic %v, want one saying the Manager is already built", r)
			}
		}()
		grpcmgmt.ServerOptions(grpcmgmt.WithInsecure())
	}()
	for _, srv := range []*grpc.Server{first, second} {
		if err := m.Register(srv); err != nil {
			t.Fatal(err)
		}
		if err := healthCheck(t, serve(t, srv), insecure.NewCredentials()); err != nil {
			t.Errorf("health Check through the one-liner's server: %v", err)
		}
	}
	if err := m.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if grpcmgmt.Default() != nil {
		t.Error("Default() still returns the Manager after its Shutdown")
	}
	if strings.Contains(logs.String(), "no server was given to Register") {
		t.Errorf("registration warning logged for registered servers:\n%s", logs)
	}
}

// TestUnregisteredServicesAreReported: a Manager whose health service is
// never registered logs a warning once calls arrive.
func TestUnregisteredServicesAreReported(t *testing.T) {
	logs := &syncBuffer{}
	m, err := grpcmgmt.New(grpcmgmt.WithInsecure(),
		grpcmgmt.WithLogger(slog.New(slog.NewTextHandler(logs, nil))),
		grpcmgmt.WithLoad(load.Config{Period: 10 * time.Millisecond}),
		grpcmgmt.WithHealth(health.Config{PropagationDelay: time.Millisecond, DisableLoad: true}))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Shutdown(context.Background())
	addr := serve(t, grpc.NewServer(m.ServerOptions()...))
	if _, err := testpb.NewTestServiceClient(dial(t, addr)).EmptyCall(context.Background(), &testpb.Empty{}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the registration warning", func() bool {
		return strings.Contains(logs.String(), "level=WARN") && strings.Contains(logs.String(), "no server was given to Register")
	})
	awaitSamples(t, m, 3)
	if n := strings.Count(logs.String(), "no server was given to Register"); n != 1 {
		t.Errorf("registration warning logged %d times, want once", n)
	}
}

// TestWithTapHandle: a tap handle of the user's own runs in the one
// grpc.InTapHandle the Manager sets, after loadshed's, without the panic
// grpc-go raises when InTapHandle is set twice.
func TestWithTapHandle(t *testing.T) {
	var seen sync.Map
	userTap := func(ctx context.Context, info *tap.Info) (context.Context, error) {
		seen.Store(info.FullMethodName, true)
		if info.FullMethodName == "/grpc.testing.TestService/EmptyCall" {
			return ctx, status.Error(codes.PermissionDenied, "denied by the user's tap")
		}
		return ctx, nil
	}
	s := startServer(t, grpcmgmt.WithTapHandle(userTap),
		grpcmgmt.WithLoadShed(loadshed.Config{MaxInFlight: 100, CPUThreshold: loadshed.Off}))
	client := testpb.NewTestServiceClient(dial(t, s.addr))
	if _, err := client.EmptyCall(context.Background(), &testpb.Empty{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("EmptyCall = %v, want PermissionDenied from the user's tap", err)
	}
	if _, err := client.UnaryCall(context.Background(), &testpb.SimpleRequest{}); err != nil {
		t.Errorf("UnaryCall = %v, want OK", err)
	}
	if _, ok := seen.Load("/grpc.testing.TestService/UnaryCall"); !ok {
		t.Error("the user's tap did not see UnaryCall")
	}
	if _, err := grpcmgmt.New(grpcmgmt.WithInsecure(), grpcmgmt.WithTapHandle(nil)); err == nil || !strings.Contains(err.Error(), "WithTapHandle") {
		t.Errorf("WithTapHandle(nil): %v, want an error naming it", err)
	}
}
