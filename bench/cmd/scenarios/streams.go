package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/grpcmgmt/grpcmgmt/bench/cluster"
)

// streams: three replicas on a real DNS name, every connection rotated by
// a 5 s max age with a 10 s grace, 64 long-lived server streams (one
// response every 100 ms) beside unary load, for 60 s. Legs: handlers that
// listen to goaway.Draining (grpc-go clients, then grpc-js clients), and
// handlers that ignore it (today's behaviour without the signal).
func runStreams(ctx context.Context, e *env) error {
	base := cluster.Streams{ServerBin: e.serverBin, Replicas: 3, Streams: 64, Interval: 100 * time.Millisecond,
		MaxAge: 5 * time.Second, Grace: 10 * time.Second, For: 60 * time.Second, UnaryCallers: 8}
	legs := []struct {
		name string
		mod  func(*cluster.Streams)
	}{
		{"signal", func(*cluster.Streams) {}},
		{"node", func(s *cluster.Streams) { s.Node = true }},
		{"baseline", func(s *cluster.Streams) { s.IgnoreDrain = true }},
	}
	for _, leg := range legs {
		s := base
		leg.mod(&s)
		res, err := s.Run(ctx, e.c)
		e.c.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", leg.name, err)
		}
		printStreams(leg.name, s, res)
		switch leg.name {
		case "signal":
			e.results["streams.cut_at_grace"] = float64(res.Cut)
			e.results["streams.failed"] = float64(res.Failed())
			e.results["streams.gap_p99_ms"] = res.GapQuantile(0.99)
			e.results["streams.rotation_share_error"] = res.ShareError(s.Replicas)
			e.results["streams.resumes"] = float64(res.Resumes)
			e.results["streams.unary_failed"] = float64(res.UnaryFailed)
		case "node":
			e.results["streams.node.cut_at_grace"] = float64(res.Cut)
			e.results["streams.node.failed"] = float64(res.Failed())
			e.results["streams.node.gap_p99_ms"] = res.GapQuantile(0.99)
			e.results["streams.node.rotation_share_error"] = res.ShareError(s.Replicas)
		case "baseline":
			e.results["streams.baseline_cut_at_grace"] = float64(res.Cut)
			e.results["streams.baseline_gap_p99_ms"] = res.GapQuantile(0.99)
		}
	}
	return nil
}

// streams_defaults: the streams scenario with the library's own max age
// and grace (2 min ± 10 %, 30 s) for 3 min, so that every connection
// rotates once: what the defaults do to a streaming service. Legs: handlers
// that listen to goaway.Draining, and handlers that ignore it.
func runStreamsDefaults(ctx context.Context, e *env) error {
	base := cluster.Streams{ServerBin: e.serverBin, Replicas: 3, Streams: 64, Interval: 100 * time.Millisecond,
		For: 3 * time.Minute, UnaryCallers: 8} // MaxAge, Grace 0: the library's defaults
	for _, leg := range []string{"signal", "baseline"} {
		s := base
		s.IgnoreDrain = leg == "baseline"
		res, err := s.Run(ctx, e.c)
		e.c.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", leg, err)
		}
		printStreams(leg, s, res)
		p := "streams.defaults." + leg + "."
		e.results[p+"cut_at_grace"] = float64(res.Cut)
		e.results[p+"ended_by_handler"] = float64(res.Handler)
		e.results[p+"resumes"] = float64(res.Resumes)
		e.results[p+"failed"] = float64(res.Failed())
		e.results[p+"gap_p99_ms"] = res.GapQuantile(0.99)
		e.results[p+"unary_failed"] = float64(res.UnaryFailed)
	}
	return nil
}

// printStreams prints one leg's result of a streams scenario.
func printStreams(leg string, s cluster.Streams, res cluster.StreamsResult) {
	fmt.Fprintf(os.Stderr, "   %-8s messages %d resumes %d ends %v  cut %d handler %d  gap p50 %.0f p99 %.0f ms  share error %.2f %v  unary %d failed %d\n",
		leg, res.Messages, res.Resumes, res.Ends, res.Cut, res.Handler, res.GapQuantile(0.5), res.GapQuantile(0.99),
		res.ShareError(s.Replicas), res.PerReplica, res.UnaryCalls, res.UnaryFailed)
}
