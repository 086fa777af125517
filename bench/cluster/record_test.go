package cluster

import (
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/grpcmgmt/grpcmgmt/internal/replica"
)

// A call that fails because the only replica is NOT_SERVING, through a
// standard grpc-go client with health checking, counts in
// Window.NoServing; a call the server itself fails with UNAVAILABLE (as a
// shedder does) does not.
func TestRecordCallNoServing(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	replica.New(replica.Config{Name: "r1"}).Register(srv)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	defer func() { srv.Stop(); <-done }()

	client, err := Dial(lis.Addr().String(), `{"loadBalancingConfig":[{"round_robin":{}}],"healthCheckConfig":{"serviceName":""}}`, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	rec := NewRecorder()
	client.call(0, 5*time.Second, nil, rec) // SERVING: served
	rec.RecordCall("r1", time.Millisecond, status.Error(codes.Unavailable, "shed: retry elsewhere"))
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	deadline := time.Now().Add(5 * time.Second)
	for rec.Window(0, time.Hour).NoServing == 0 && time.Now().Before(deadline) {
		client.call(0, time.Second, nil, rec)
	}
	w := rec.Window(0, time.Hour)
	if w.OK < 1 || w.NoServing != 1 || w.Codes[codes.Unavailable] < 2 {
		t.Fatalf("window %+v: want 1+ served, one failure for no replica SERVING, and the shed call not counted as one", w)
	}
}

// Two replicas NOT_SERVING one after the other, sampled at different
// instants, do not count as out together; overlapping runs do.
func TestMaxNotServing(t *testing.T) {
	ms := time.Millisecond
	run := FleetRun{Health: map[string][]HealthSample{
		"a": {{At: 0, NotServing: true}, {At: 250 * ms, NotServing: true}, {At: 500 * ms}, {At: 750 * ms}},
		"b": {{At: 100 * ms}, {At: 350 * ms, NotServing: true}, {At: 600 * ms, NotServing: true}, {At: 850 * ms}},
	}}
	if got := run.MaxNotServing(0, time.Second); got != 1 {
		t.Errorf("handover sampled at different instants: MaxNotServing = %d, want 1", got)
	}
	run.Health["c"] = []HealthSample{{At: 400 * ms, NotServing: true}, {At: 650 * ms, NotServing: true}}
	if got := run.MaxNotServing(0, time.Second); got != 2 {
		t.Errorf("b and c both out over 400–600ms: MaxNotServing = %d, want 2", got)
	}
}
