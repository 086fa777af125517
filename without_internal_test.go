package grpcmgmt

import (
	"context"
	"strings"
	"testing"

	"github.com/grpcmgmt/grpcmgmt/goaway"
	"github.com/grpcmgmt/grpcmgmt/health"
	"github.com/grpcmgmt/grpcmgmt/loadshed"
	"github.com/grpcmgmt/grpcmgmt/maxage"
	"github.com/grpcmgmt/grpcmgmt/orca"
)

// levers reports which levers m built.
func levers(m *Manager) map[Feature]bool {
	return map[Feature]bool{
		MaxAge:    m.keepalive != nil,
		GoAway:    m.tracker != nil && m.policy != nil,
		Rebalance: m.rebalancer != nil,
		LoadShed:  m.shedder != nil,
		Health:    m.health != nil,
		ORCA:      m.orca != nil,
	}
}

// withOption is each lever's With* option (rebalance with a Watcher, so
// that it starts no DNS lookups).
func withOption(f Feature) Option {
	switch f {
	case MaxAge:
		return WithMaxAge(maxage.Config{})
	case GoAway:
		return WithGoAway(goaway.Config{}, goaway.PolicyConfig{})
	case Rebalance:
		return WithRebalance(goaway.RebalanceConfig{Watcher: idleWatcher{}})
	case LoadShed:
		return WithLoadShed(loadshed.Config{})
	case Health:
		return WithHealth(health.Config{})
	case ORCA:
		return WithORCA(orca.Config{})
	}
	panic(f)
}

// idleWatcher never reports a lookup.
type idleWatcher struct{}

func (idleWatcher) Watch(func(goaway.Lookup)) error { return nil }
func (idleWatcher) Close() error                    { return nil }

// TestWithoutEveryFeatureInAnyOrder: Without accepts every lever its doc
// lists and turns it off whether it stands before or after the lever's
// With* option; the other levers keep their defaults.
func TestWithoutEveryFeatureInAnyOrder(t *testing.T) {
	defaults := map[Feature]bool{MaxAge: true, GoAway: true, Health: true, ORCA: true}
	for _, f := range features {
		for _, order := range []string{"without first", "without last", "without alone"} {
			t.Run(string(f)+"/"+order, func(t *testing.T) {
				opts := []Option{WithInsecure()}
				switch order {
				case "without first":
					opts = append(opts, Without(f), withOption(f))
				case "without last":
					opts = append(opts, withOption(f), Without(f))
				default:
					opts = append(opts, Without(f))
				}
				if f == GoAway {
					// Nothing else may need goaway's Tracker.
					opts = append(opts, Without(Rebalance))
				}
				m, err := New(opts...)
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				defer func() { _ = m.Shutdown(context.Background()) }()
				got := levers(m)
				for _, g := range features {
					want := defaults[g] && g != f
					if got[g] != want {
						t.Errorf("lever %s on = %v, want %v", g, got[g], want)
					}
				}
			})
		}
	}
}

// TestWithTurnsOptionalLeversOn: the levers that are off by default are on
// once their With* option is given, in any order with the others.
func TestWithTurnsOptionalLeversOn(t *testing.T) {
	m, err := New(withOption(Rebalance), WithInsecure(), withOption(LoadShed))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Shutdown(context.Background()) }()
	for f, on := range levers(m) {
		if !on {
			t.Errorf("lever %s is off, want every lever on", f)
		}
	}
}

func TestWithoutRejects(t *testing.T) {
	for _, tc := range []struct {
		name Feature
		want string
	}{
		{"nosuch", `Without("nosuch"): unknown feature; known features are [goaway health loadshed maxage orca rebalance]`},
		{"load", `Without("load"): the load sampler is shared by every lever and is always on`},
		{"", `Without(""): unknown feature`},
		{"Health", `Without("Health"): unknown feature`},
	} {
		m, err := New(WithInsecure(), Without(tc.name))
		if err == nil {
			_ = m.Shutdown(context.Background())
			t.Errorf("Without(%q): New succeeded", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Without(%q): %v, want %q", tc.name, err, tc.want)
		}
	}
}
