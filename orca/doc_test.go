package orca_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/credentials/insecure"
)

// a58Fields pairs grpc-go's spelling of each weighted_round_robin field with
// @grpc/grpc-js 1.14's.
var a58Fields = [][2]string{
	{"enableOobLoadReport", "enable_oob_load_report"},
	{"oobReportingPeriod", "oob_load_reporting_period"},
	{"blackoutPeriod", "blackout_period"},
	{"weightUpdatePeriod", "weight_update_period"},
	{"weightExpirationPeriod", "weight_expiration_period"},
	{"errorUtilizationPenalty", "error_utilization_penalty"},
}

// documentedConfigs returns the service configs shown in doc.go, in order:
// per-call, then out-of-band.
func documentedConfigs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var (
		out []string
		cur strings.Builder
	)
	for _, line := range strings.Split(string(b), "\n") {
		l, ok := strings.CutPrefix(line, "//\t")
		if !ok {
			continue
		}
		if strings.HasPrefix(l, `{"loadBalancingConfig"`) || cur.Len() > 0 {
			cur.WriteString(l)
			if strings.HasSuffix(l, "]}") {
				out = append(out, cur.String())
				cur.Reset()
			}
		}
	}
	if len(out) != 2 {
		t.Fatalf("found %d service configs in doc.go, want 2 (per-call, out-of-band)", len(out))
	}
	return out
}

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

// wrrConfig is doc.go's service config with periods short enough for a
// test: reports every 50ms, weights used after 100ms and updated every
// 200ms. Not faster: clients rebuild their picker at each update with a
// random phase per endpoint, which pulls the shares towards equal when
// only a few calls are picked between updates (grpc-js at 50 calls/s and
// updates every 100ms measured 0.63 for weights 2:1; at 200ms the pull is
// about 2 %).
func wrrConfig(t *testing.T, oob bool) string { return wrrConfigUpdating(t, oob, "0.2s") }

// wrrConfigUpdating is wrrConfig with the given weight update period.
func wrrConfigUpdating(t *testing.T, oob bool, update string) string {
	t.Helper()
	doc := documentedConfigs(t)[0]
	if oob {
		doc = documentedConfigs(t)[1]
	}
	var sc map[string]any
	if err := json.Unmarshal([]byte(doc), &sc); err != nil {
		t.Fatalf("doc.go config: %v", err)
	}
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

func TestDocumentedServiceConfigs(t *testing.T) {
	for i, doc := range documentedConfigs(t) {
		oob := i == 1
		var sc map[string]any
		if err := json.Unmarshal([]byte(doc), &sc); err != nil {
			t.Fatalf("config %d is not JSON: %v\n%s", i, err, doc)
		}
		w := wrrObject(t, sc)
		for _, f := range a58Fields {
			cv, cok := w[f[0]]
			sv, sok := w[f[1]]
			if f[0] == "oobReportingPeriod" && !oob {
				continue
			}
			if !cok || !sok || cv != sv {
				t.Errorf("config %d: %s=%v (present %t) and %s=%v (present %t) must both be set, equal", i, f[0], cv, cok, f[1], sv, sok)
			}
		}
		if got := w["enableOobLoadReport"]; got != oob {
			t.Errorf("config %d: enableOobLoadReport = %v, want %v", i, got, oob)
		}
		// grpc-go's own parser accepts the policy's fields...
		raw, _ := json.Marshal(w)
		parser, ok := balancer.Get("weighted_round_robin").(balancer.ConfigParser)
		if !ok {
			t.Fatal("weighted_round_robin not registered: the blank import is missing")
		}
		if _, err := parser.ParseConfig(raw); err != nil {
			t.Errorf("config %d: grpc-go weighted_round_robin rejects %s: %v", i, raw, err)
		}
		// ...and the whole service config.
		cc, err := grpc.NewClient("passthrough:///unused", grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultServiceConfig(doc))
		if err != nil {
			t.Errorf("config %d: grpc.NewClient rejects it: %v", i, err)
			continue
		}
		_ = cc.Close()
	}
}
