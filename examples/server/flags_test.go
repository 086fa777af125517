package main

import (
	"net"
	"strings"
	"testing"
)

// invalidFlags are command lines the server must refuse at start-up, each
// with the text the error must contain: the flag, and what it must be.
var invalidFlags = []struct {
	args []string
	want string
}{
	{[]string{"-workers", "-5"}, "-workers must be within 0..1048576"},
	{[]string{"-workers", "-1"}, "-workers must be within"},
	{[]string{"-workers", "2000000"}, "-workers must be within"},
	{[]string{"-work", "-1s"}, "-work must be within 0..1m"},
	{[]string{"-work", "-1ns"}, "-work must be within"},
	{[]string{"-work", "2m"}, "-work must be within"},
	{[]string{"-wait", "-1ms"}, "-wait must be within 0..1m"},
	{[]string{"-downstream", "2m"}, "-downstream must be within 0..1m"},
	{[]string{"-wait-mix", "0ms,-5ms"}, "-wait-mix must be within 0..1m"},
	{[]string{"-wait-mix", "0ms,x"}, "-wait-mix: time: invalid duration"},
	{[]string{"-shutdown-timeout", "-1s"}, "-shutdown-timeout must be within 1s..1h"},
	{[]string{"-shutdown-timeout", "0"}, "-shutdown-timeout must be within"},
	{[]string{"-shutdown-timeout", "2h"}, "-shutdown-timeout must be within"},
	{[]string{"-name", ""}, "-name must not be empty"},
	{[]string{"-listen", ""}, "-listen must be host:port"},
	{[]string{"-listen", "nocolon"}, "-listen must be host:port"},
	{[]string{"-metrics-listen", "nocolon"}, "-metrics-listen must be host:port"},
	{[]string{"-log-level", "loud"}, "-log-level"},
	{[]string{"-tls-cert", "cert.pem"}, "-tls-cert and -tls-key go together"},
	{[]string{"-max-connection-age", "-1s"}, "-max-connection-age: maxage: MaxConnectionAge must be within"},
	{[]string{"-max-connection-age-grace", "-5s"}, "-max-connection-age-grace: maxage: MaxConnectionAgeGrace must be within"},
	{[]string{"-max-connection-idle", "1ms"}, "-max-connection-idle: maxage: MaxConnectionIdle must be within"},
	{[]string{"-goaway-cpu-enter", "NaN"}, "-goaway-cpu-enter: goaway: PolicyConfig.CPUEnter must be within"},
	{[]string{"-goaway-cpu-enter", "+Inf"}, "-goaway-cpu-enter: goaway: PolicyConfig.CPUEnter must be within"},
	{[]string{"-goaway-cpu-exit", "2"}, "-goaway-cpu-exit: goaway: PolicyConfig.CPUExit must be within"},
	{[]string{"-goaway-inflight-enter", "-1"}, "-goaway-inflight-enter: goaway: PolicyConfig.InFlightEnter must be within"},
	{[]string{"-goaway-fraction", "2"}, "-goaway-fraction: goaway: PolicyConfig.Fraction must be within"},
	{[]string{"-lame-duck-delay", "-1s"}, "-lame-duck-delay: health: PropagationDelay must be within"},
	{[]string{"-health-cpu-enter", "NaN"}, "-health-cpu-enter: health: CPUEnter must be within"},
	{[]string{"-health-in-flight-enter", "-3"}, "-health-in-flight-enter: health: InFlightEnter must be within"},
	{[]string{"-health-shed-enter", "2"}, "-health-shed-enter: health: ShedEnter must be within"},
	{[]string{"-health-hold", "-1s"}, "-health-hold: health: Hold must be within"},
	{[]string{"-health-max-not-serving", "2h"}, "-health-max-not-serving: health: MaxNotServing must be within"},
	{[]string{"-health-cooldown", "-1s"}, "-health-cooldown: health: Cooldown must be within"},
	{[]string{"-health-peers-addrs", "127.0.0.1:1,127.0.0.1:2", "-health-peers-latency-enter", "1"}, "-health-peers-latency-enter: health: Peers.LatencyEnter must be within"},
	{[]string{"-health-peers-latency-enter", "2"}, "need -health-peers or -health-peers-addrs"},
	{[]string{"-orca-capacity", "-1"}, "-orca-capacity: orca: Capacity must be within"},
	{[]string{"-orca-min-reporting-interval", "1ms"}, "-orca-min-reporting-interval: orca: MinReportingInterval must be within"},
	{[]string{"-shed", "-shed-max-inflight", "-1"}, "-shed-max-inflight: loadshed: MaxInFlight must be within"},
	{[]string{"-shed", "-shed-cpu", "7"}, "-shed-cpu: loadshed: CPUThreshold must be within"},
	{[]string{"-shed", "-shed-cpu", "NaN"}, "-shed-cpu: loadshed: CPUThreshold must be within"},
	{[]string{"-shed-max-inflight", "5"}, "need -shed"},
	{[]string{"-replica-set-name", "bad name"}, "-replica-set-name: goaway: RebalanceConfig.Name must be a DNS name"},
	{[]string{"-replica-set-name", "svc.test", "-replica-set-resolver", "nohost"}, "-replica-set-resolver: goaway: RebalanceConfig.Resolver must be host:port"},
	{[]string{"-replica-set-name", "svc.test", "-replica-set-interval", "1ms"}, "-replica-set-interval: goaway: RebalanceConfig.Interval must be within"},
	{[]string{"-replica-set-name", "svc.test", "-replica-set-stable-for", "-1s"}, "-replica-set-stable-for: goaway: RebalanceConfig.StableFor must be within"},
	{[]string{"-replica-set-name", "svc.test", "-rebalance-window", "1h"}, "-rebalance-window: goaway: RebalanceConfig.Window must be within"},
	{[]string{"-replica-set-name", "svc.test", "-rebalance-settle", "1h"}, "-rebalance-settle: goaway: RebalanceConfig.Settle must be within"},
	{[]string{"-replica-set-name", "svc.test", "-rebalance-max-arrival-rate", "-1"}, "-rebalance-max-arrival-rate: goaway: RebalanceConfig.MaxArrivalRate must be within"},
	{[]string{"-replica-set-resolver", "127.0.0.1:53"}, "need -replica-set-name"},
}

// TestInvalidFlagsRefused: every invalid command line is an error from run
// (main exits 1 with it) before anything starts serving.
func TestInvalidFlagsRefused(t *testing.T) {
	for _, tc := range invalidFlags {
		// An address no interface has (TEST-NET-1): if run accepted the
		// flags, it would fail to listen instead of serving.
		args := append([]string{"-listen", "192.0.2.1:0", "-log-level", "error"}, tc.args...)
		err := run(args)
		if err == nil {
			t.Errorf("run(%q) succeeded, want an error containing %q", tc.args, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run(%q) = %q, want it to contain %q", tc.args, err, tc.want)
		}
	}
}

// TestMetricsListenFailureIsFatal: a -metrics-listen address that cannot be
// listened on (here, taken) stops the server at start-up instead of leaving
// it running without metrics.
func TestMetricsListenFailureIsFatal(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	err = run([]string{"-listen", "127.0.0.1:0", "-log-level", "error", "-metrics-listen", taken.Addr().String()})
	if err == nil || !strings.Contains(err.Error(), "-metrics-listen") {
		t.Fatalf("run with a taken -metrics-listen = %v, want an error naming -metrics-listen", err)
	}
}
