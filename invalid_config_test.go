package grpcmgmt_test

import (
	"context"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/grpcmgmt/grpcmgmt"
	"github.com/grpcmgmt/grpcmgmt/goaway"
	"github.com/grpcmgmt/grpcmgmt/health"
	"github.com/grpcmgmt/grpcmgmt/load"
	"github.com/grpcmgmt/grpcmgmt/loadshed"
	"github.com/grpcmgmt/grpcmgmt/maxage"
	"github.com/grpcmgmt/grpcmgmt/orca"
)

var (
	nan  = math.NaN()
	inf  = math.Inf(1)
	ninf = math.Inf(-1)
)

func policy(p goaway.PolicyConfig) grpcmgmt.Option       { return grpcmgmt.WithGoAway(goaway.Config{}, p) }
func rebalance(r goaway.RebalanceConfig) grpcmgmt.Option { return grpcmgmt.WithRebalance(r) }
func adaptive(a loadshed.AdaptiveConfig) grpcmgmt.Option {
	return grpcmgmt.WithLoadShed(loadshed.Config{Adaptive: &a})
}

// nopWatcher is a replica-set Watcher that never reports.
type nopWatcher struct{}

func (nopWatcher) Watch(func(goaway.Lookup)) error { return nil }
func (nopWatcher) Close() error                    { return nil }

// invalidConfigs are invalid values of every field of every lever's
// configuration, each with the text the error must contain: the field that
// was set (not one derived from it), and "must", which starts the allowed
// range or form.
var invalidConfigs = []struct {
	opt  grpcmgmt.Option
	want string
}{
	// maxage
	{grpcmgmt.WithMaxAge(maxage.Config{MaxConnectionAge: -time.Second}), "maxage: MaxConnectionAge must be within 1s..maxage.Off"},
	{grpcmgmt.WithMaxAge(maxage.Config{MaxConnectionAge: time.Millisecond}), "maxage: MaxConnectionAge must be within"},
	{grpcmgmt.WithMaxAge(maxage.Config{MaxConnectionAge: math.MinInt64}), "maxage: MaxConnectionAge must be within"},
	{grpcmgmt.WithMaxAge(maxage.Config{MaxConnectionAgeGrace: -1}), "maxage: MaxConnectionAgeGrace must be within"},
	{grpcmgmt.WithMaxAge(maxage.Config{MaxConnectionAgeGrace: time.Microsecond}), "maxage: MaxConnectionAgeGrace must be within"},
	{grpcmgmt.WithMaxAge(maxage.Config{MaxConnectionIdle: -time.Minute}), "maxage: MaxConnectionIdle must be within"},
	{grpcmgmt.WithMaxAge(maxage.Config{MaxConnectionIdle: 999 * time.Millisecond}), "maxage: MaxConnectionIdle must be within"},
	{grpcmgmt.WithMaxAge(maxage.Config{Time: -time.Second}), "maxage: Time must be within"},
	{grpcmgmt.WithMaxAge(maxage.Config{Time: 10 * time.Millisecond}), "maxage: Time must be within"},
	{grpcmgmt.WithMaxAge(maxage.Config{Timeout: -1}), "maxage: Timeout must be within"},
	{grpcmgmt.WithMaxAge(maxage.Config{Timeout: time.Hour}), "maxage: Timeout must be within 1s..10m0s"},
	{grpcmgmt.WithMaxAge(maxage.Config{Timeout: 500 * time.Millisecond}), "maxage: Timeout must be within"},
	{grpcmgmt.WithMaxAge(maxage.Config{MinPingInterval: time.Millisecond}), "maxage: MinPingInterval must be within"},
	{grpcmgmt.WithMaxAge(maxage.Config{MinPingInterval: 2 * time.Hour}), "maxage: MinPingInterval must be within"},
	{grpcmgmt.WithMaxAge(maxage.Config{MinPingInterval: -time.Second}), "maxage: MinPingInterval must be within"},

	// goaway.Config
	{grpcmgmt.WithGoAway(goaway.Config{Grace: -1}, goaway.PolicyConfig{}), "goaway: Config.Grace must be at least 1ms"},
	{grpcmgmt.WithGoAway(goaway.Config{Grace: time.Microsecond}, goaway.PolicyConfig{}), "goaway: Config.Grace must be"},
	{grpcmgmt.WithGoAway(goaway.Config{Grace: -time.Hour}, goaway.PolicyConfig{}), "goaway: Config.Grace must be"},

	// goaway.PolicyConfig
	{policy(goaway.PolicyConfig{CPUEnter: nan}), "PolicyConfig.CPUEnter must be within"},
	{policy(goaway.PolicyConfig{CPUEnter: inf}), "PolicyConfig.CPUEnter must be within"},
	{policy(goaway.PolicyConfig{CPUEnter: ninf}), "PolicyConfig.CPUEnter must be within"},
	{policy(goaway.PolicyConfig{CPUEnter: -0.5}), "PolicyConfig.CPUEnter must be within"},
	{policy(goaway.PolicyConfig{CPUEnter: 0.001}), "PolicyConfig.CPUEnter must be within"},
	{policy(goaway.PolicyConfig{CPUEnter: 5}), "PolicyConfig.CPUEnter must be within"},
	{policy(goaway.PolicyConfig{CPUExit: nan}), "PolicyConfig.CPUExit must be within"},
	{policy(goaway.PolicyConfig{CPUExit: inf}), "PolicyConfig.CPUExit must be within"},
	{policy(goaway.PolicyConfig{CPUExit: -0.1}), "PolicyConfig.CPUExit must be within"},
	{policy(goaway.PolicyConfig{CPUExit: 0.95}), "PolicyConfig.CPUExit must be within"},
	{policy(goaway.PolicyConfig{CPUEnter: 0.5, CPUExit: 0.5}), "PolicyConfig.CPUExit must be within"},
	{policy(goaway.PolicyConfig{InFlightEnter: -1}), "PolicyConfig.InFlightEnter must be within"},
	{policy(goaway.PolicyConfig{InFlightEnter: 2e9}), "PolicyConfig.InFlightEnter must be within"},
	{policy(goaway.PolicyConfig{InFlightExit: 5}), "PolicyConfig.InFlightExit must be 0 while InFlightEnter is 0"},
	{policy(goaway.PolicyConfig{InFlightExit: -1}), "PolicyConfig.InFlightExit must be 0 while InFlightEnter is 0"},
	{policy(goaway.PolicyConfig{InFlightEnter: 10, InFlightExit: 10}), "PolicyConfig.InFlightExit must be within"},
	{policy(goaway.PolicyConfig{InFlightEnter: 10, InFlightExit: -1}), "PolicyConfig.InFlightExit must be within"},
	{policy(goaway.PolicyConfig{Fraction: nan}), "PolicyConfig.Fraction must be within"},
	{policy(goaway.PolicyConfig{Fraction: inf}), "PolicyConfig.Fraction must be within"},
	{policy(goaway.PolicyConfig{Fraction: 0.9}), "PolicyConfig.Fraction must be within"},
	{policy(goaway.PolicyConfig{Fraction: -0.1}), "PolicyConfig.Fraction must be within"},
	{policy(goaway.PolicyConfig{Fraction: 0.0001}), "PolicyConfig.Fraction must be within"},
	{policy(goaway.PolicyConfig{Interval: -time.Second}), "PolicyConfig.Interval must be within"},
	{policy(goaway.PolicyConfig{Interval: time.Millisecond}), "PolicyConfig.Interval must be within"},
	{policy(goaway.PolicyConfig{Interval: 2 * time.Minute}), "PolicyConfig.Interval must be within"},
	{policy(goaway.PolicyConfig{Cooldown: -1}), "PolicyConfig.Cooldown must be within"},
	{policy(goaway.PolicyConfig{Cooldown: 2 * time.Hour}), "PolicyConfig.Cooldown must be within"},
	{policy(goaway.PolicyConfig{MinAge: -1}), "PolicyConfig.MinAge must be within"},
	{policy(goaway.PolicyConfig{MinAge: 2 * time.Hour}), "PolicyConfig.MinAge must be within"},
	{policy(goaway.PolicyConfig{Selector: 99}), "PolicyConfig.Selector must be"},
	{policy(goaway.PolicyConfig{Selector: -1}), "PolicyConfig.Selector must be"},

	// goaway.RebalanceConfig
	{rebalance(goaway.RebalanceConfig{}), "RebalanceConfig.Name must be set"},
	{rebalance(goaway.RebalanceConfig{Name: "bad name"}), "RebalanceConfig.Name must be a DNS name"},
	{rebalance(goaway.RebalanceConfig{Name: "a..b"}), "RebalanceConfig.Name must be a DNS name"},
	{rebalance(goaway.RebalanceConfig{Name: "-a.example"}), "RebalanceConfig.Name must be a DNS name"},
	{rebalance(goaway.RebalanceConfig{Name: strings.Repeat("a", 64) + ".example"}), "RebalanceConfig.Name must be a DNS name"},
	{rebalance(goaway.RebalanceConfig{Name: "."}), "RebalanceConfig.Name must be a DNS name"},
	{rebalance(goaway.RebalanceConfig{Name: "svc.test", Resolver: "nohost"}), "RebalanceConfig.Resolver must be host:port"},
	{rebalance(goaway.RebalanceConfig{Name: "svc.test", Resolver: "127.0.0.1:0"}), "RebalanceConfig.Resolver must be host:port"},
	{rebalance(goaway.RebalanceConfig{Name: "svc.test", Resolver: "127.0.0.1:70000"}), "RebalanceConfig.Resolver must be host:port"},
	{rebalance(goaway.RebalanceConfig{Name: "svc.test", Resolver: "127.0.0.1:dns"}), "RebalanceConfig.Resolver must be host:port"},
	{rebalance(goaway.RebalanceConfig{Name: "svc.test", Resolver: ":53"}), "RebalanceConfig.Resolver must be host:port"},
	{rebalance(goaway.RebalanceConfig{Name: "svc.test", Interval: time.Millisecond}), "RebalanceConfig.Interval must be within"},
	{rebalance(goaway.RebalanceConfig{Name: "svc.test", Interval: time.Hour}), "RebalanceConfig.Interval must be within"},
	{rebalance(goaway.RebalanceConfig{Name: "svc.test", Interval: -1}), "RebalanceConfig.Interval must be within"},
	{rebalance(goaway.RebalanceConfig{Name: "svc.test", StableFor: -1}), "RebalanceConfig.StableFor must be within"},
	{rebalance(goaway.RebalanceConfig{Name: "svc.test", StableFor: 2 * time.Hour}), "RebalanceConfig.StableFor must be within"},
	{rebalance(goaway.RebalanceConfig{Name: "svc.test", Memory: -1}), "RebalanceConfig.Memory must be within"},
	{rebalance(goaway.RebalanceConfig{Name: "svc.test", Memory: 48 * time.Hour}), "RebalanceConfig.Memory must be within"},
	{rebalance(goaway.RebalanceConfig{Name: "svc.test", Window: time.Millisecond}), "RebalanceConfig.Window must be within"},
	{rebalance(goaway.RebalanceConfig{Name: "svc.test", Window: time.Hour}), "RebalanceConfig.Window must be within"},
	{rebalance(goaway.RebalanceConfig{Name: "svc.test", Settle: time.Microsecond}), "RebalanceConfig.Settle must be within"},
	{rebalance(goaway.RebalanceConfig{Name: "svc.test", Settle: time.Hour}), "RebalanceConfig.Settle must be within"},
	{rebalance(goaway.RebalanceConfig{Name: "svc.test", MaxArrivalRate: -1}), "RebalanceConfig.MaxArrivalRate must be within"},
	{rebalance(goaway.RebalanceConfig{Name: "svc.test", MaxArrivalRate: 1e9}), "RebalanceConfig.MaxArrivalRate must be within"},
	{rebalance(goaway.RebalanceConfig{Name: "svc.test", Selector: 7}), "RebalanceConfig.Selector must be"},
	{rebalance(goaway.RebalanceConfig{Name: "svc.test", Watcher: nopWatcher{}}), "RebalanceConfig: set Name, Resolver and Interval (DNS) or Watcher, not both"},

	// health.Config
	{grpcmgmt.WithHealth(health.Config{CPUEnter: nan}), "health: CPUEnter must be within"},
	{grpcmgmt.WithHealth(health.Config{CPUEnter: inf}), "health: CPUEnter must be within"},
	{grpcmgmt.WithHealth(health.Config{CPUEnter: -1}), "health: CPUEnter must be within"},
	{grpcmgmt.WithHealth(health.Config{CPUEnter: 11}), "health: CPUEnter must be within"},
	{grpcmgmt.WithHealth(health.Config{CPUExit: nan}), "health: CPUExit must be within"},
	{grpcmgmt.WithHealth(health.Config{CPUExit: ninf}), "health: CPUExit must be within"},
	{grpcmgmt.WithHealth(health.Config{CPUExit: 0.95}), "health: CPUExit must be within"},
	{grpcmgmt.WithHealth(health.Config{CPUEnter: 0.5, CPUExit: 0.6}), "health: CPUExit must be within"},
	{grpcmgmt.WithHealth(health.Config{InFlightEnter: -1}), "health: InFlightEnter must be within"},
	{grpcmgmt.WithHealth(health.Config{InFlightEnter: 1 << 31}), "health: InFlightEnter must be within"},
	{grpcmgmt.WithHealth(health.Config{InFlightExit: 3}), "health: InFlightExit must be within 0..0 while InFlightEnter is 0"},
	{grpcmgmt.WithHealth(health.Config{InFlightEnter: 4, InFlightExit: 4}), "health: InFlightExit must be within"},
	{grpcmgmt.WithHealth(health.Config{InFlightEnter: 4, InFlightExit: -1}), "health: InFlightExit must be within"},
	{grpcmgmt.WithHealth(health.Config{ShedEnter: nan}), "health: ShedEnter must be within"},
	{grpcmgmt.WithHealth(health.Config{ShedEnter: -0.01}), "health: ShedEnter must be within"},
	{grpcmgmt.WithHealth(health.Config{ShedEnter: 1.5}), "health: ShedEnter must be within"},
	{grpcmgmt.WithHealth(health.Config{ShedExit: nan}), "health: ShedExit must be within"},
	{grpcmgmt.WithHealth(health.Config{ShedExit: -0.001}), "health: ShedExit must be within"},
	{grpcmgmt.WithHealth(health.Config{ShedExit: 0.01}), "health: ShedExit must be within"},
	{grpcmgmt.WithHealth(health.Config{ShedEnter: 0.05, ShedExit: 0.06}), "health: ShedExit must be within"},
	{grpcmgmt.WithHealth(health.Config{Hold: -1}), "health: Hold must be within"},
	{grpcmgmt.WithHealth(health.Config{Hold: time.Hour}), "health: Hold must be within"},
	{grpcmgmt.WithHealth(health.Config{MinDwell: 2 * time.Hour}), "health: MinDwell must be within 1ms..MaxNotServing=5s"},
	{grpcmgmt.WithHealth(health.Config{MinDwell: 10 * time.Second}), "health: MinDwell must be within 1ms..MaxNotServing=5s"},
	{grpcmgmt.WithHealth(health.Config{MinDwell: -1}), "health: MinDwell must be within"},
	{grpcmgmt.WithHealth(health.Config{MaxNotServing: time.Second, MinDwell: 2 * time.Second}), "health: MinDwell must be within 1ms..MaxNotServing=1s"},
	{grpcmgmt.WithHealth(health.Config{MaxNotServing: -1}), "health: MaxNotServing must be within"},
	{grpcmgmt.WithHealth(health.Config{MaxNotServing: 2 * time.Hour}), "health: MaxNotServing must be within"},
	{grpcmgmt.WithHealth(health.Config{Cooldown: -1}), "health: Cooldown must be within"},
	{grpcmgmt.WithHealth(health.Config{Cooldown: 2 * time.Hour}), "health: Cooldown must be within"},
	{grpcmgmt.WithHealth(health.Config{MaxCooldown: time.Millisecond}), "health: MaxCooldown must be within"},
	{grpcmgmt.WithHealth(health.Config{MaxCooldown: 48 * time.Hour}), "health: MaxCooldown must be within"},
	{grpcmgmt.WithHealth(health.Config{PropagationDelay: -1}), "health: PropagationDelay must be within"},
	{grpcmgmt.WithHealth(health.Config{Peers: health.Peers{Addrs: []string{"127.0.0.1:1"}, LatencyEnter: nan}}), "health: Peers.LatencyEnter must be within 1.01..100"},
	{grpcmgmt.WithHealth(health.Config{Peers: health.Peers{Addrs: []string{"127.0.0.1:1"}, LatencyEnter: 1}}), "health: Peers.LatencyEnter must be within 1.01..100"},
	{grpcmgmt.WithHealth(health.Config{Peers: health.Peers{Addrs: []string{"127.0.0.1:1"}, LatencyEnter: 2, LatencyExit: 2}}), "health: Peers.LatencyExit must be within 1..LatencyEnter=2"},
	{grpcmgmt.WithHealth(health.Config{Peers: health.Peers{Addrs: []string{"127.0.0.1:1"}, LatencyExit: 0.5}}), "health: Peers.LatencyExit must be within"},
	{grpcmgmt.WithHealth(health.Config{Peers: health.Peers{LatencyEnter: 2}}), "health: Peers.LatencyEnter is set but no replica set is"},
	{grpcmgmt.WithHealth(health.Config{PropagationDelay: time.Hour}), "health: PropagationDelay must be within"},

	// orca.Config
	{grpcmgmt.WithORCA(orca.Config{PerCallInterval: -1}), "orca: PerCallInterval must be within 10ms..1m0s"},
	{grpcmgmt.WithORCA(orca.Config{PerCallInterval: time.Hour}), "orca: PerCallInterval must be within"},
	{grpcmgmt.WithORCA(orca.Config{Capacity: -1}), "orca: Capacity must be within"},
	{grpcmgmt.WithORCA(orca.Config{Capacity: orca.MaxCapacity + 1}), "orca: Capacity must be within"},
	{grpcmgmt.WithORCA(orca.Config{MinReportingInterval: time.Millisecond}), "orca: MinReportingInterval must be within"},
	{grpcmgmt.WithORCA(orca.Config{MinReportingInterval: 2 * time.Hour}), "orca: MinReportingInterval must be within"},
	{grpcmgmt.WithORCA(orca.Config{MinReportingInterval: -1}), "orca: MinReportingInterval must be within"},
	{grpcmgmt.WithORCA(orca.Config{TimeConstant: time.Millisecond}), "orca: TimeConstant must be within"},
	{grpcmgmt.WithORCA(orca.Config{TimeConstant: 2 * time.Minute}), "orca: TimeConstant must be within"},
	{grpcmgmt.WithORCA(orca.Config{TimeConstant: -1}), "orca: TimeConstant must be within"},

	// loadshed.Config
	{grpcmgmt.WithLoadShed(loadshed.Config{MaxInFlight: -1}), "loadshed: MaxInFlight must be within"},
	{grpcmgmt.WithLoadShed(loadshed.Config{MaxInFlight: 1 << 31}), "loadshed: MaxInFlight must be within"},
	{grpcmgmt.WithLoadShed(loadshed.Config{CPUThreshold: nan}), "loadshed: CPUThreshold must be within"},
	{grpcmgmt.WithLoadShed(loadshed.Config{CPUThreshold: inf}), "loadshed: CPUThreshold must be within"},
	{grpcmgmt.WithLoadShed(loadshed.Config{CPUThreshold: ninf}), "loadshed: CPUThreshold must be within"},
	{grpcmgmt.WithLoadShed(loadshed.Config{CPUThreshold: 0.01}), "loadshed: CPUThreshold must be within"},
	{grpcmgmt.WithLoadShed(loadshed.Config{CPUThreshold: 1.5}), "loadshed: CPUThreshold must be within"},
	{grpcmgmt.WithLoadShed(loadshed.Config{CPUThreshold: -0.5}), "loadshed: CPUThreshold must be within"},
	{grpcmgmt.WithLoadShed(loadshed.Config{DefaultPriority: ptr(loadshed.Priority(9))}), "loadshed: DefaultPriority must be"},
	{grpcmgmt.WithLoadShed(loadshed.Config{PriorityHeader: "Bad Header:\n"}), "loadshed: PriorityHeader must be a metadata key"},
	{grpcmgmt.WithLoadShed(loadshed.Config{PriorityHeader: ":authority"}), "loadshed: PriorityHeader must be a metadata key"},
	{grpcmgmt.WithLoadShed(loadshed.Config{PriorityHeader: "grpc-timeout"}), "loadshed: PriorityHeader must be a metadata key"},
	{grpcmgmt.WithLoadShed(loadshed.Config{PriorityHeader: "x-priority-bin"}), "loadshed: PriorityHeader must be a metadata key"},
	{grpcmgmt.WithLoadShed(loadshed.Config{PriorityHeader: "te"}), "loadshed: PriorityHeader must be a metadata key"},
	{grpcmgmt.WithLoadShed(loadshed.Config{PriorityHeader: "a b"}), "loadshed: PriorityHeader must be a metadata key"},
	{grpcmgmt.WithLoadShed(loadshed.Config{PriorityHeader: "x-prio\x00"}), "loadshed: PriorityHeader must be a metadata key"},
	{grpcmgmt.WithLoadShed(loadshed.Config{Methods: map[string]loadshed.Priority{"nosuch": loadshed.Critical}}), "loadshed: Methods key"},
	{grpcmgmt.WithLoadShed(loadshed.Config{Methods: map[string]loadshed.Priority{"/a.B/C": 9}}), `loadshed: Methods["/a.B/C"] must be`},
	{grpcmgmt.WithLoadShed(loadshed.Config{Exempt: []string{"bad"}}), `loadshed: Exempt entry "bad" must be`},
	{grpcmgmt.WithLoadShed(loadshed.Config{Code: codes.Internal}), "loadshed: Code must be"},
	{grpcmgmt.WithLoadShed(loadshed.Config{Pushback: -5 * time.Millisecond}), "loadshed: Pushback must be within"},
	{grpcmgmt.WithLoadShed(loadshed.Config{Pushback: 2 * time.Minute}), "loadshed: Pushback must be within"},
	{grpcmgmt.WithLoadShed(loadshed.Config{Pushback: time.Microsecond}), "loadshed: Pushback must be within"},

	// loadshed.AdaptiveConfig
	{adaptive(loadshed.AdaptiveConfig{MaxLimit: -1}), "loadshed: Adaptive.MaxLimit must be within 1..1073741824"},
	{adaptive(loadshed.AdaptiveConfig{MinLimit: 3, MaxLimit: 2}), "loadshed: Adaptive.MinLimit must be within 1..MaxLimit=2"},
	{adaptive(loadshed.AdaptiveConfig{MinLimit: -1}), "loadshed: Adaptive.MinLimit must be within"},
	{adaptive(loadshed.AdaptiveConfig{MinLimit: 5000}), "loadshed: Adaptive.MinLimit must be within 1..MaxLimit=1000"},
	{adaptive(loadshed.AdaptiveConfig{MinLimit: 10, MaxLimit: 5}), "loadshed: Adaptive.MinLimit must be within 1..MaxLimit=5"},
	{adaptive(loadshed.AdaptiveConfig{InitialLimit: 2000}), "loadshed: Adaptive.InitialLimit must be within MinLimit=1..MaxLimit=1000"},
	{adaptive(loadshed.AdaptiveConfig{InitialLimit: -3}), "loadshed: Adaptive.InitialLimit must be within"},
	{adaptive(loadshed.AdaptiveConfig{MinSamples: -1}), "loadshed: Adaptive.MinSamples must be within"},
	{adaptive(loadshed.AdaptiveConfig{MinSamples: 20000}), "loadshed: Adaptive.MinSamples must be within"},
	{adaptive(loadshed.AdaptiveConfig{ProbeSamples: -1}), "loadshed: Adaptive.ProbeSamples must be within"},
	{adaptive(loadshed.AdaptiveConfig{Window: time.Millisecond}), "loadshed: Adaptive.Window must be within"},
	{adaptive(loadshed.AdaptiveConfig{Window: time.Minute}), "loadshed: Adaptive.Window must be within"},
	{adaptive(loadshed.AdaptiveConfig{Tolerance: nan}), "loadshed: Adaptive.Tolerance must be within"},
	{adaptive(loadshed.AdaptiveConfig{Tolerance: inf}), "loadshed: Adaptive.Tolerance must be within"},
	{adaptive(loadshed.AdaptiveConfig{Tolerance: 0.001}), "loadshed: Adaptive.Tolerance must be within"},
	{adaptive(loadshed.AdaptiveConfig{Tolerance: 3}), "loadshed: Adaptive.Tolerance must be within"},
	{adaptive(loadshed.AdaptiveConfig{ProbeInterval: 10 * time.Millisecond}), "loadshed: Adaptive.ProbeInterval must be within"},
	{adaptive(loadshed.AdaptiveConfig{ProbeInterval: 2 * time.Hour}), "loadshed: Adaptive.ProbeInterval must be within"},

	// load.Config
	{grpcmgmt.WithLoad(load.Config{Period: -1}), "load: Period must be within"},
	{grpcmgmt.WithLoad(load.Config{Period: time.Nanosecond}), "load: Period must be within"},
	{grpcmgmt.WithLoad(load.Config{Period: time.Minute}), "load: Period must be within"},
	{grpcmgmt.WithLoad(load.Config{TimeConstant: time.Millisecond}), "load: TimeConstant must be within"},
	{grpcmgmt.WithLoad(load.Config{TimeConstant: 2 * time.Minute}), "load: TimeConstant must be within"},
	{grpcmgmt.WithLoad(load.Config{Sources: map[string]load.Source{"": load.SourceFunc(func() (float64, error) { return 0, nil })}}), "load: Sources: name must not be empty"},
	{grpcmgmt.WithLoad(load.Config{Sources: map[string]load.Source{"x": nil}}), `load: Sources["x"] must not be nil`},

	// Manager options
	{grpcmgmt.WithLogger(nil), "WithLogger: argument must not be nil"},
	{grpcmgmt.WithMeterProvider(nil), "WithMeterProvider: argument must not be nil"},
	{grpcmgmt.WithCredentials(nil), "WithCredentials: argument must not be nil"},
	{grpcmgmt.WithCredentials(insecure.NewCredentials()), "WithInsecure and WithCredentials both given"},
	{grpcmgmt.WithTapHandle(nil), "WithTapHandle: argument must not be nil"},
	{grpcmgmt.Without("nosuch"), `Without("nosuch"): unknown feature`},
	{grpcmgmt.Without("load"), `Without("load"): the load sampler is shared`},
	{nil, "nil Option"},
}

func ptr[T any](v T) *T { return &v }

// TestNewRejectsEveryInvalidValue: each invalid value makes New fail with
// an error naming the field set, and leaves nothing running (leakcheck checks
// at the end of the package's tests).
func TestNewRejectsEveryInvalidValue(t *testing.T) {
	if len(invalidConfigs) < 150 {
		t.Fatalf("%d invalid values, want at least 150", len(invalidConfigs))
	}
	for i, tc := range invalidConfigs {
		m, err := grpcmgmt.New(grpcmgmt.WithInsecure(), grpcmgmt.WithLogger(slog.New(slog.DiscardHandler)), tc.opt)
		if err == nil {
			_ = m.Shutdown(context.Background())
			t.Errorf("#%d: New succeeded, want an error containing %q", i, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("#%d: New error = %q, want it to contain %q", i, err, tc.want)
		}
	}
}

// TestRebalanceWithoutGoAway: rebalancing sends through goaway's Tracker.
func TestRebalanceWithoutGoAway(t *testing.T) {
	_, err := grpcmgmt.New(grpcmgmt.WithInsecure(), grpcmgmt.Without(grpcmgmt.GoAway),
		grpcmgmt.WithRebalance(goaway.RebalanceConfig{Name: "svc.test"}))
	if err == nil || !strings.Contains(err.Error(), `Without("goaway")`) {
		t.Fatalf("New = %v, want an error naming Without(\"goaway\")", err)
	}
}
