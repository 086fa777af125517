package cluster

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newCluster(t *testing.T) *Cluster {
	t.Helper()
	if err := Require("dnsmasq", "haproxy"); err != nil {
		t.Fatal(err)
	}
	c, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func serverBin(t *testing.T, c *Cluster) string {
	t.Helper()
	bin, err := c.Build("./examples/server")
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// Short scaleup_l4: behind HAProxy in TCP mode, 3 → 4 replicas, 16 client
// connections. With connections that end (the library) the new replica gets
// its fair share within seconds, with no failed call; without (the
// baseline) it gets nothing.
func TestScaleUpL4Short(t *testing.T) {
	c := newCluster(t)
	bin := serverBin(t, c)
	base := ScaleUpL4{ServerBin: bin, Replicas: 3, Conns: 16, Callers: 32,
		AddAt: 3 * time.Second, For: 14 * time.Second, CallTimeout: 2 * time.Second}

	lib := base
	lib.ServerArgs = []string{"-max-connection-age", "2s", "-max-connection-age-grace", "5s", "-log-level", "warn"}
	res, err := lib.Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("library: seconds to fair share %.0f, end share %.2f of fair, %d calls, %d failed", res.SecondsToFairShare, res.EndShare, res.Calls, res.Failed)
	if res.Failed != 0 {
		t.Errorf("%d of %d calls failed during the scale-out", res.Failed, res.Calls)
	}
	if res.SecondsToFairShare < 0 || res.SecondsToFairShare > 8 {
		t.Errorf("new replica reached 90%% of its fair share after %.0f s, want within 8 s", res.SecondsToFairShare)
	}
}

// Short drain: a rolling restart of three replicas under load, each through
// SIGTERM → Manager.Shutdown, with standard clients on real DNS: no call
// fails.
func TestDrainShort(t *testing.T) {
	c := newCluster(t)
	bin := serverBin(t, c)
	res, err := Drain{ServerBin: bin, Replicas: 3, Conns: 4, Callers: 16,
		ServerArgs: []string{"-log-level", "warn", "-lame-duck-delay", "1s"},
		Settle:     2 * time.Second, StopTimeout: 20 * time.Second, CallTimeout: 5 * time.Second,
	}.Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("drain: %d calls, %d failed %v, stop seconds %v", res.Calls, res.Failed, res.FailedCodes, res.StopSeconds)
	if res.Failed != 0 {
		t.Errorf("%d of %d calls failed during the rolling restart: %v", res.Failed, res.Calls, res.FailedCodes)
	}
	if res.Calls == 0 {
		t.Error("no call was made")
	}
}

// Short rotation: every connection is rotated about every second, by age
// and by the load policy, for 20 s; neither a grpc-go nor a @grpc/grpc-js
// client sees a failed call.
func TestRotationShort(t *testing.T) {
	if err := Require("node"); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t)
	res, err := Rotation{For: 20 * time.Second, GoCallers: 16, NodeCallers: 8}.Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rotation: go %d calls %d failed, node %d calls %d failed %v, %d connections rotated",
		res.GoCalls, res.GoFailed, res.NodeCalls, res.NodeFailed, res.NodeErrors, res.ConnsRotated)
	if res.GoFailed != 0 || res.NodeFailed != 0 {
		t.Errorf("failed calls: go %d of %d, node %d of %d (%v)", res.GoFailed, res.GoCalls, res.NodeFailed, res.NodeCalls, res.NodeErrors)
	}
	if res.GoCalls == 0 || res.NodeCalls == 0 {
		t.Errorf("a client made no call: go %d, node %d", res.GoCalls, res.NodeCalls)
	}
	// Two clients, each rotated about every second for 20 s.
	if res.ConnsRotated < 20 {
		t.Errorf("only %d connections rotated in 20 s, want >= 20", res.ConnsRotated)
	}
}
