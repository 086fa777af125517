package grpcmgmt_test

import (
	"context"
	"sync"
	"testing"
	"time"

	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"go.opentelemetry.io/otel/sdk/metric"

	"github.com/grpcmgmt/grpcmgmt"
	"github.com/grpcmgmt/grpcmgmt/internal/replica"
	"github.com/grpcmgmt/grpcmgmt/load"
	"github.com/grpcmgmt/grpcmgmt/loadshed"
	"github.com/grpcmgmt/grpcmgmt/orca"
)

// TestORCAFollowsTheShedderLimit: with shedding on, the ORCA
// application_utilization a weighted_round_robin client weighs replicas by
// is the calls in flight over the Shedder's limit (2 of 4 = 0.5), not the
// CPU utilization (0.9 here), so clients see the capacity the Shedder
// protects.
func TestORCAFollowsTheShedderLimit(t *testing.T) {
	reader := metric.NewManualReader()
	mp := metric.NewMeterProvider(metric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	_, client := serveReplica(t, replica.Config{Name: "r1", Work: 2 * time.Second, Workers: 2},
		grpcmgmt.WithMeterProvider(mp),
		grpcmgmt.WithLoad(load.Config{Period: 10 * time.Millisecond, TimeConstant: 10 * time.Millisecond,
			CPU: load.SourceFunc(func() (float64, error) { return 0.9, nil })}),
		grpcmgmt.WithLoadShed(loadshed.Config{MaxInFlight: 4, CPUThreshold: loadshed.Off}),
		grpcmgmt.WithORCA(orca.Config{TimeConstant: 10 * time.Millisecond}))

	appUtil := func() float64 {
		if v, ok := gauges(t, reader, "github.com/grpcmgmt/grpcmgmt/orca")["grpcmgmt.orca.application_utilization"]; ok {
			return v
		}
		return -1 // no report yet
	}
	waitUntil(t, "a report at CPU 0.9 with nothing in flight", func() bool { return appUtil() == 0 })

	var wg sync.WaitGroup
	defer wg.Wait()
	for range 2 {
		wg.Go(func() {
			if _, err := client.UnaryCall(context.Background(), &testgrpc.SimpleRequest{}); err != nil {
				t.Errorf("UnaryCall: %v", err)
			}
		})
	}
	waitUntil(t, "application_utilization 2 in flight / limit 4", func() bool {
		v := appUtil()
		return v > 0.45 && v < 0.55
	})
}
