package orca_test

import (
	"encoding/json"
	"testing"

	"github.com/grpcmgmt/grpcmgmt/clientconfig"
)

// wrrObject returns the weighted_round_robin entry of a service config.
func wrrObject(t *testing.T, sc map[string]any) map[string]any {
	t.Helper()
	list, _ := sc["loadBalancingConfig"].([]any)
	if len(list) == 0 {
		t.Fatalf("no loadBalancingConfig in %v", sc)
	}
	first, _ := list[0].(map[string]any)
	w, ok := first["weighted_round_robin"].(map[string]any)
	if !ok {
		t.Fatalf("first policy is not weighted_round_robin: %v", list[0])
	}
	return w
}

// wrrConfig is clientconfig's weighted_round_robin config (per-call, or
// out-of-band with oob) with periods short enough for a test: reports every
// 50ms, weights used after 100ms and updated every 200ms. Not faster:
// clients rebuild their picker at each update with a random phase per
// endpoint, which pulls the shares towards equal when only a few calls are
// picked between updates (grpc-js at 50 calls/s and updates every 100ms
// measured 0.63 for weights 2:1; at 200ms the pull is about 2 %). Health
// checking is left out: it is the health lever's subject, and these
// servers' health follows this machine's CPU.
func wrrConfig(t *testing.T, oob bool) string { return wrrConfigUpdating(t, oob, "0.2s") }

// wrrConfigUpdating is wrrConfig with the given weight update period.
func wrrConfigUpdating(t *testing.T, oob bool, update string) string {
	t.Helper()
	doc := clientconfig.WeightedRoundRobin
	if oob {
		doc = clientconfig.WeightedRoundRobinOOB
	}
	var sc map[string]any
	if err := json.Unmarshal([]byte(doc), &sc); err != nil {
		t.Fatalf("clientconfig: %v", err)
	}
	delete(sc, "healthCheckConfig")
	w := wrrObject(t, sc)
	set := func(camel, snake string, v any) { w[camel], w[snake] = v, v }
	set("blackoutPeriod", "blackout_period", "0.1s")
	set("weightUpdatePeriod", "weight_update_period", update)
	if oob {
		set("oobReportingPeriod", "oob_load_reporting_period", "0.05s")
	}
	b, err := json.Marshal(sc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
