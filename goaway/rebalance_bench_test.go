package goaway_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/grpcmgmt/grpcmgmt/goaway"
)

// BenchmarkRebalancerLookup is the cost of deciding on one lookup of an
// unchanged 100-replica set (what every replica does every Interval): it
// is off the call path, and small next to the lookup's network round trip.
func BenchmarkRebalancerLookup(b *testing.B) {
	tr := newTracker(b, goaway.Config{Logger: slog.New(slog.DiscardHandler)})
	w := &pushWatcher{}
	rb, err := goaway.NewRebalancer(tr, goaway.RebalanceConfig{Watcher: w})
	if err != nil {
		b.Fatal(err)
	}
	defer rb.Close()
	members := make([]string, 100)
	for i := range members {
		members[i] = "10.0.0.1"
	}
	l := goaway.Lookup{At: time.Now(), Members: members}
	w.send(l)
	b.ReportAllocs()
	for b.Loop() {
		w.send(l)
	}
}
