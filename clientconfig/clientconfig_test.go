package clientconfig_test

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/balancer"
	_ "google.golang.org/grpc/balancer/weightedroundrobin" // to parse the weighted configs
	"google.golang.org/grpc/credentials/insecure"

	"github.com/grpcmgmt/grpcmgmt/clientconfig"
	"github.com/grpcmgmt/grpcmgmt/orca"
)

// root is the module root.
const root = ".."

var configs = map[string]string{
	"RoundRobin":            clientconfig.RoundRobin,
	"WeightedRoundRobin":    clientconfig.WeightedRoundRobin,
	"WeightedRoundRobinOOB": clientconfig.WeightedRoundRobinOOB,
}

func parse(t *testing.T, name, js string) map[string]any {
	t.Helper()
	var sc map[string]any
	if err := json.Unmarshal([]byte(js), &sc); err != nil {
		t.Fatalf("%s is not JSON: %v\n%s", name, err, js)
	}
	return sc
}

// TestGRPCAcceptsTheConfigs: grpc-go parses each config whole, and its
// weighted_round_robin balancer parses the policy's own fields.
func TestGRPCAcceptsTheConfigs(t *testing.T) {
	for name, js := range configs {
		cc, err := grpc.NewClient("passthrough:///unused", grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultServiceConfig(js))
		if err != nil {
			t.Errorf("%s: grpc.NewClient rejects it: %v", name, err)
			continue
		}
		_ = cc.Close()
		if w := wrr(t, parse(t, name, js)); w != nil {
			raw, _ := json.Marshal(w)
			if _, err := balancer.Get("weighted_round_robin").(balancer.ConfigParser).ParseConfig(raw); err != nil {
				t.Errorf("%s: grpc-go weighted_round_robin rejects %s: %v", name, raw, err)
			}
		}
	}
}

// wrr returns the weighted_round_robin object of a config, or nil.
func wrr(t *testing.T, sc map[string]any) map[string]any {
	t.Helper()
	list, _ := sc["loadBalancingConfig"].([]any)
	for _, p := range list {
		if w, ok := p.(map[string]any)["weighted_round_robin"].(map[string]any); ok {
			return w
		}
	}
	return nil
}

// TestWeightedConfigs: every weighted_round_robin field is set in both
// spellings with one value (grpc-js reads only snake_case), the policy
// falls back to round_robin, and the out-of-band period is the server's
// default minimum interval (a shorter one would be raised to it).
func TestWeightedConfigs(t *testing.T) {
	pairs := [][2]string{
		{"enableOobLoadReport", "enable_oob_load_report"},
		{"oobReportingPeriod", "oob_load_reporting_period"},
		{"blackoutPeriod", "blackout_period"},
		{"weightUpdatePeriod", "weight_update_period"},
		{"weightExpirationPeriod", "weight_expiration_period"},
		{"errorUtilizationPenalty", "error_utilization_penalty"},
	}
	for name, oob := range map[string]bool{"WeightedRoundRobin": false, "WeightedRoundRobinOOB": true} {
		sc := parse(t, name, configs[name])
		w := wrr(t, sc)
		if w == nil {
			t.Fatalf("%s: no weighted_round_robin", name)
		}
		for _, p := range pairs {
			cv, cok := w[p[0]]
			sv, sok := w[p[1]]
			if p[0] == "oobReportingPeriod" && !oob {
				if cok || sok {
					t.Errorf("%s: %s set without out-of-band reports", name, p[0])
				}
				continue
			}
			if !cok || !sok || cv != sv {
				t.Errorf("%s: %s=%v (set %t) and %s=%v (set %t) must both be set, to one value", name, p[0], cv, cok, p[1], sv, sok)
			}
		}
		if w["enableOobLoadReport"] != oob {
			t.Errorf("%s: enableOobLoadReport = %v, want %v", name, w["enableOobLoadReport"], oob)
		}
		list := sc["loadBalancingConfig"].([]any)
		if len(list) != 2 || !reflect.DeepEqual(list[1], map[string]any{"round_robin": map[string]any{}}) {
			t.Errorf("%s: loadBalancingConfig = %v, want weighted_round_robin then round_robin", name, list)
		}
		if oob {
			d, err := time.ParseDuration(w["oobReportingPeriod"].(string))
			if err != nil || d != orca.DefaultMinReportingInterval {
				t.Errorf("%s: oobReportingPeriod = %v, want orca.DefaultMinReportingInterval (%v)", name, w["oobReportingPeriod"], orca.DefaultMinReportingInterval)
			}
		}
	}
}

// TestHealthAndRetries: every config checks health and retries UNAVAILABLE
// (the status loadshed sheds with by default) with throttling, the same
// way: only the policy differs.
func TestHealthAndRetries(t *testing.T) {
	base := parse(t, "RoundRobin", clientconfig.RoundRobin)
	if !reflect.DeepEqual(base["healthCheckConfig"], map[string]any{"serviceName": ""}) {
		t.Errorf("healthCheckConfig = %v, want the whole server's status", base["healthCheckConfig"])
	}
	mc, _ := base["methodConfig"].([]any)
	if len(mc) != 1 {
		t.Fatalf("methodConfig = %v, want one entry", base["methodConfig"])
	}
	rp, _ := mc[0].(map[string]any)["retryPolicy"].(map[string]any)
	codes, _ := rp["retryableStatusCodes"].([]any)
	if !slices.Contains(codes, any("UNAVAILABLE")) {
		t.Errorf("retryableStatusCodes = %v, want UNAVAILABLE among them", codes)
	}
	if rp["maxAttempts"] != 5.0 {
		t.Errorf("maxAttempts = %v, want 5 (grpc-go's cap)", rp["maxAttempts"])
	}
	if base["retryThrottling"] == nil {
		t.Error("no retryThrottling")
	}
	for name, js := range configs {
		sc := parse(t, name, js)
		delete(sc, "loadBalancingConfig")
		want := maps(base)
		delete(want, "loadBalancingConfig")
		if !reflect.DeepEqual(sc, want) {
			t.Errorf("%s differs from RoundRobin beyond its policy:\n%v\nwant\n%v", name, sc, want)
		}
	}
}

func maps(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// TestTokenRatioHasADecimalPoint: C-core 1.51 misreads an integer
// tokenRatio (and then stops retrying): every config, and every service
// config in the docs, writes it with a decimal point.
func TestTokenRatioHasADecimalPoint(t *testing.T) {
	ratio := regexp.MustCompile(`"tokenRatio"\s*:\s*([0-9.eE+-]+)`)
	check := func(where, js string) {
		for _, m := range ratio.FindAllStringSubmatch(js, -1) {
			if !strings.Contains(m[1], ".") {
				t.Errorf("%s: tokenRatio %s has no decimal point (C-core 1.51 misreads it)", where, m[1])
			}
		}
	}
	for name, js := range configs {
		if !ratio.MatchString(js) {
			t.Errorf("%s: no tokenRatio", name)
		}
		check(name, js)
	}
	docs, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	for _, f := range append(docs, filepath.Join(root, "README.md")) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		check(f, string(b))
	}
}

// serviceConfigKeys are the top-level fields that make a JSON object a gRPC
// service config.
var serviceConfigKeys = []string{"loadBalancingConfig", "loadBalancingPolicy", "methodConfig", "healthCheckConfig", "retryThrottling"}

var fence = regexp.MustCompile("(?s)```json\\s*\\n(.*?)```")

// TestDocsShowTheseConfigs: every service config shown in README.md and
// docs/*.md is one of this package's, exactly (as JSON values), and
// docs/clients.md shows all three.
func TestDocsShowTheseConfigs(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join(root, "README.md"))
	shown := map[string]bool{}
	checked := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range fence.FindAllStringSubmatch(string(b), -1) {
			block := m[1]
			var v any
			if err := json.Unmarshal([]byte(block), &v); err != nil {
				if strings.Contains(block, "Config\"") || strings.Contains(block, "retryPolicy") {
					t.Errorf("%s: a service config that is not valid JSON: %v\n%s", f, err, block)
				}
				continue
			}
			obj, ok := v.(map[string]any)
			if !ok || !slices.ContainsFunc(serviceConfigKeys, func(k string) bool { _, ok := obj[k]; return ok }) {
				continue
			}
			checked++
			match := ""
			for name, js := range configs {
				if reflect.DeepEqual(obj, parse(t, name, js)) {
					match = name
				}
			}
			if match == "" {
				t.Errorf("%s: a service config that is none of clientconfig's (edit the package, then the docs):\n%s", f, block)
				continue
			}
			if filepath.Base(f) == "clients.md" {
				shown[match] = true
			}
		}
	}
	for name := range configs {
		if !shown[name] {
			t.Errorf("docs/clients.md does not show clientconfig.%s", name)
		}
	}
	if checked < len(configs) {
		t.Errorf("checked %d service configs in the docs, want at least %d", checked, len(configs))
	}
}

// TestNoOtherServiceConfigs: the library's packages, their examples and
// examples/ take service configs from this package instead of writing their
// own (tests and benchmarks may shorten periods for speed).
func TestNoOtherServiceConfigs(t *testing.T) {
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			switch {
			case rel != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules" || d.Name() == "testdata"),
				rel == "bench", rel == "deploy", rel == "test", rel == "clientconfig":
				return filepath.SkipDir
			}
			return nil
		}
		name := d.Name()
		if !strings.HasSuffix(name, ".go") || (strings.HasSuffix(name, "_test.go") && !strings.HasPrefix(name, "example")) {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, k := range []string{`"loadBalancingConfig"`, `"retryPolicy"`, `"healthCheckConfig"`} {
			if strings.Contains(string(b), k) {
				t.Errorf("%s writes a service config (%s): use clientconfig's", rel, k)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
