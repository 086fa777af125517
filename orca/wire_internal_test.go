package orca

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	v3orcapb "github.com/cncf/xds/go/xds/data/orca/v3"
	grpcorca "google.golang.org/grpc/orca"
	"google.golang.org/protobuf/proto"
)

// TestAppendLoadReport holds the per-call trailer's hand-built encoding to
// the generated message's: for every report, the bytes are those
// proto.Marshal gives loadReport's message (deterministic), and they decode
// back to it.
func TestAppendLoadReport(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 2026))
	value := func() float64 {
		switch rng.IntN(6) {
		case 0:
			return -1 // unset
		case 1:
			return 0
		case 2:
			return math.Copysign(0, -1)
		case 3:
			return math.Inf(1)
		default:
			return rng.Float64() * math.Pow(10, float64(rng.IntN(12)-4))
		}
	}
	metrics := func(n int) map[string]float64 {
		m := map[string]float64{}
		for i := range rng.IntN(n + 1) {
			key := "m" + strconv.Itoa(rng.IntN(1000))
			if i == 0 && rng.IntN(4) == 0 {
				key = "" // an empty key is still an entry
			}
			m[key] = value()
		}
		return m
	}
	cases := []*grpcorca.ServerMetrics{
		emptyMetrics(),
		{CPUUtilization: 0.5, MemUtilization: 0.25, AppUtilization: 0.75, QPS: 1200, EPS: 3},
		{CPUUtilization: 0, MemUtilization: -1, AppUtilization: 1, QPS: 0, EPS: -1,
			Utilization: map[string]float64{"queue": 0}, NamedMetrics: map[string]float64{"b": 2, "a": 1}},
		{CPUUtilization: math.NaN(), MemUtilization: 1e-300, AppUtilization: 1e300, QPS: math.MaxFloat64, EPS: 5e-324},
	}
	for range 500 {
		cases = append(cases, &grpcorca.ServerMetrics{
			CPUUtilization: value(), MemUtilization: value(), AppUtilization: value(),
			QPS: value(), EPS: value(),
			Utilization: metrics(3), RequestCost: metrics(3), NamedMetrics: metrics(8),
		})
	}
	for i, sm := range cases {
		want, err := proto.MarshalOptions{Deterministic: true}.Marshal(loadReport(sm))
		if err != nil {
			t.Fatalf("case %d: proto.Marshal: %v", i, err)
		}
		got := appendLoadReport(nil, sm)
		if !bytes.Equal(got, want) {
			t.Fatalf("case %d (%+v):\nappendLoadReport: %x\nproto.Marshal:    %x", i, sm, got, want)
		}
		var back v3orcapb.OrcaLoadReport
		if err := proto.Unmarshal(got, &back); err != nil {
			t.Fatalf("case %d: the encoding does not decode: %v", i, err)
		}
		if !proto.Equal(&back, loadReport(sm)) && !hasNaN(sm) {
			t.Fatalf("case %d: decodes to %v, want %v", i, &back, loadReport(sm))
		}
	}
}

// hasNaN reports whether sm carries a NaN, which no message equals.
func hasNaN(sm *grpcorca.ServerMetrics) bool {
	for _, v := range []float64{sm.CPUUtilization, sm.MemUtilization, sm.AppUtilization, sm.QPS, sm.EPS} {
		if math.IsNaN(v) {
			return true
		}
	}
	return false
}
