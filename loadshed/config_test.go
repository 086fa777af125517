package loadshed_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/grpcmgmt/grpcmgmt/loadshed"
)

func TestConfigValidation(t *testing.T) {
	bad := loadshed.Priority(7)
	cases := []struct {
		cfg   loadshed.Config
		field string // "" means valid
	}{
		{loadshed.Config{MaxInFlight: 1}, ""},
		{loadshed.Config{Adaptive: &loadshed.AdaptiveConfig{}}, ""},
		{loadshed.Config{MaxInFlight: -1}, "MaxInFlight"},
		{loadshed.Config{MaxInFlight: 1, CPUThreshold: 1.5}, "CPUThreshold"},
		{loadshed.Config{MaxInFlight: 1, CPUThreshold: 0.01}, "CPUThreshold"},
		{loadshed.Config{MaxInFlight: 1, CPUThreshold: loadshed.Off}, ""},
		{loadshed.Config{MaxInFlight: 1, CPUThreshold: math.NaN()}, "CPUThreshold"},
		{loadshed.Config{MaxInFlight: 1, QueueingThreshold: 1.5}, "QueueingThreshold"},
		{loadshed.Config{MaxInFlight: 1, QueueingThreshold: math.NaN()}, "QueueingThreshold"},
		{loadshed.Config{MaxInFlight: 1, QueueingThreshold: math.Inf(1)}, "QueueingThreshold"},
		{loadshed.Config{MaxInFlight: 1, QueueingThreshold: loadshed.Off}, ""},
		{loadshed.Config{Adaptive: &loadshed.AdaptiveConfig{Tolerance: math.NaN()}}, "Adaptive.Tolerance"},
		{loadshed.Config{MaxInFlight: 1, Code: codes.Internal}, "Code"},
		{loadshed.Config{MaxInFlight: 1, Code: codes.ResourceExhausted}, ""},
		{loadshed.Config{MaxInFlight: 1, Pushback: time.Hour}, "Pushback"},
		{loadshed.Config{MaxInFlight: 1, Pushback: time.Microsecond}, "Pushback"},
		{loadshed.Config{MaxInFlight: 1, Pushback: loadshed.Off}, ""},
		{loadshed.Config{MaxInFlight: 1, SharedCount: true}, "SharedCount"},
		{loadshed.Config{MaxInFlight: 1, DefaultPriority: &bad}, "DefaultPriority"},
		{loadshed.Config{MaxInFlight: 1, Methods: map[string]loadshed.Priority{"Method": loadshed.Critical}}, "Methods"},
		{loadshed.Config{MaxInFlight: 1, Methods: map[string]loadshed.Priority{"/a.B/": bad}}, "Methods"},
		{loadshed.Config{MaxInFlight: 1, Methods: map[string]loadshed.Priority{"/a.B/": loadshed.Sheddable, "/a.B/C": loadshed.CriticalPlus}}, ""},
		{loadshed.Config{MaxInFlight: 1, Exempt: []string{"/a.B/C/D"}}, "Exempt"},
		{loadshed.Config{Adaptive: &loadshed.AdaptiveConfig{MinLimit: 5, MaxLimit: 4}}, "Adaptive.MinLimit"},
		{loadshed.Config{Adaptive: &loadshed.AdaptiveConfig{InitialLimit: 2000}}, "Adaptive.InitialLimit"},
		{loadshed.Config{Adaptive: &loadshed.AdaptiveConfig{Window: time.Millisecond}}, "Adaptive.Window"},
		{loadshed.Config{Adaptive: &loadshed.AdaptiveConfig{Tolerance: 3}}, "Adaptive.Tolerance"},
		{loadshed.Config{Adaptive: &loadshed.AdaptiveConfig{ProbeInterval: time.Millisecond}}, "Adaptive.ProbeInterval"},
		{loadshed.Config{Adaptive: &loadshed.AdaptiveConfig{ProbeSamples: -1}}, "Adaptive.ProbeSamples"},
		// No limit at all: no static, no adaptive, no sampler for the CPU.
		{loadshed.Config{}, "no limit"},
	}
	for _, tc := range cases {
		s, err := loadshed.New(tc.cfg)
		if s != nil {
			_ = s.Close()
		}
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("New(%+v) = %v, want no error", tc.cfg, err)
		case tc.field != "" && (err == nil || !strings.Contains(err.Error(), tc.field)):
			t.Errorf("New(%+v) = %v, want an error naming %s", tc.cfg, err, tc.field)
		}
	}
}

func TestParsePriority(t *testing.T) {
	for in, want := range map[string]loadshed.Priority{
		"critical_plus": loadshed.CriticalPlus, "CRITICAL": loadshed.Critical,
		"Sheddable-Plus": loadshed.SheddablePlus, "sheddable": loadshed.Sheddable,
	} {
		if got, ok := loadshed.ParsePriority(in); !ok || got != want {
			t.Errorf("ParsePriority(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "critical_", "high", "sheddable_plus_"} {
		if _, ok := loadshed.ParsePriority(in); ok {
			t.Errorf("ParsePriority(%q) ok, want not", in)
		}
	}
}
