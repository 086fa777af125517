package cluster

import (
	"context"
	"testing"
	"time"
)

// scaleUpL4Rebalance is the scaleup_l4 setup of the rebalancing tests: 3 → 4
// replicas behind HAProxy (TCP, round-robin per connection), 24 client
// connections (8 per replica: 3/4 of 8 is a whole number, so the new
// replica's fair share is reachable exactly; see docs/rebalancing.md for
// what rounding does with fewer).
func scaleUpL4Rebalance(bin string) ScaleUpL4 {
	return ScaleUpL4{ServerBin: bin, Replicas: 3, Conns: 24, Callers: 48,
		AddAt: 3 * time.Second, For: 11 * time.Second, CallTimeout: 2 * time.Second}
}

// TestScaleUpL4Rebalance: behind HAProxy in TCP mode, the replicas watch
// their replica set in a real dnsmasq; at the scale-out HAProxy's rotation
// and the DNS answer grow together. With rebalancing the new replica holds
// its fair share within 5 s, with no failed call; without the library it
// gets (almost) nothing.
func TestScaleUpL4Rebalance(t *testing.T) {
	c := newCluster(t)
	bin := serverBin(t, c)

	lib := scaleUpL4Rebalance(bin)
	lib.ServerArgs = append(RebalanceArgs(), "-log-level", "info")
	lib.ReplicaSetDNS = "svc.l4.test"
	res, err := lib.Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	t.Logf("rebalance: seconds to fair share %.0f, end share %.2f of fair, %d calls, %d failed, per second %v",
		res.SecondsToFairShare, res.EndShare, res.Calls, res.Failed, res.PerSec)
	if res.Failed != 0 {
		t.Errorf("%d of %d calls failed during the scale-out", res.Failed, res.Calls)
	}
	if res.SecondsToFairShare < 0 || res.SecondsToFairShare > 5 {
		t.Errorf("new replica reached 90%% of its fair share after %.0f s, want within 5 s", res.SecondsToFairShare)
	}

	base := scaleUpL4Rebalance(bin)
	base.For = 8 * time.Second
	base.ServerArgs = append(BaselineArgs(), "-log-level", "warn")
	bres, err := base.Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("baseline: end share %.2f of fair, %d calls, %d failed", bres.EndShare, bres.Calls, bres.Failed)
	if bres.EndShare > 0.1 {
		t.Errorf("baseline: new replica got %.2f of its fair share without the library, want ≈ 0", bres.EndShare)
	}
}

// TestScaleUpDNSRebalance is scaleup_dns (about 45 s, part of make test):
// standard grpc-go clients on
// real DNS reach the new replica's fair share within 35 s (their
// re-resolution floor is 30 s), with no failed call.
func TestScaleUpDNSRebalance(t *testing.T) {
	c := newCluster(t)
	bin := serverBin(t, c)
	res, err := ScaleUpDNS{ServerBin: bin, ServerArgs: append(RebalanceArgs(), "-log-level", "info"), Replicas: 3, Conns: 8, Callers: 32,
		AddAt: 5 * time.Second, For: 42 * time.Second, CallTimeout: 2 * time.Second}.Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("scaleup_dns: seconds to fair share %.0f, end share %.2f of fair, %d calls, %d failed",
		res.SecondsToFairShare, res.EndShare, res.Calls, res.Failed)
	if res.Failed != 0 {
		t.Errorf("%d of %d calls failed during the scale-out", res.Failed, res.Calls)
	}
	if res.SecondsToFairShare < 0 || res.SecondsToFairShare > 35 {
		t.Errorf("new replica reached 90%% of its fair share after %.0f s, want within 35 s", res.SecondsToFairShare)
	}
}
