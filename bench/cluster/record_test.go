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
