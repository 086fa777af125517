package goaway_test

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/grpcmgmt/grpcmgmt/goaway"
)

// staticSet is a Watcher that reports a fixed replica set once: the
// smallest custom source (a Kubernetes API watch, a registry) looks alike.
type staticSet []string

func (s staticSet) Watch(report func(goaway.Lookup)) error {
	report(goaway.Lookup{At: time.Now(), Members: s})
	return nil
}

func (staticSet) Close() error { return nil }

// A Rebalancer on a Tracker, fed by a custom Watcher. In production, set
// RebalanceConfig.Name to the headless Service's DNS name instead (or use
// grpcmgmt.WithRebalance, which does all of this).
func ExampleNewRebalancer() {
	tr, err := goaway.NewTracker(goaway.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	// srv := grpc.NewServer(grpc.Creds(tr.WrapCredentials(creds)))
	rb, err := goaway.NewRebalancer(tr, goaway.RebalanceConfig{
		Watcher: staticSet{"10.0.0.1", "10.0.0.2", "10.0.0.3"},
		Window:  5 * time.Second, // spread a scale-out's GOAWAYs over 5 s
	})
	if err != nil {
		panic(err)
	}
	defer rb.Close()
	fmt.Println("replica set:", rb.ReplicaSetSize())
	// Output: replica set: 3
}

// The configuration errors name the field and its allowed range.
func ExampleRebalanceConfig_Validate() {
	fmt.Println(goaway.RebalanceConfig{Name: "svc.ns.svc.cluster.local.", Interval: time.Millisecond}.Validate())
	// Output: goaway: RebalanceConfig.Interval must be within 100ms..10m (0 means 1s), got 1ms
}
