package grpcmgmt

import (
	"fmt"
	"log/slog"
	"slices"

	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/tap"

	"github.com/grpcmgmt/grpcmgmt/goaway"
	"github.com/grpcmgmt/grpcmgmt/health"
	"github.com/grpcmgmt/grpcmgmt/load"
	"github.com/grpcmgmt/grpcmgmt/loadshed"
	"github.com/grpcmgmt/grpcmgmt/maxage"
	"github.com/grpcmgmt/grpcmgmt/orca"
)

// Option configures a Manager. Options are applied in order; a later option
// of the same kind replaces an earlier one.
type Option func(*settings)

// settings is what the options produce; New validates it.
type settings struct {
	logger        *slog.Logger
	meterProvider metric.MeterProvider
	creds         credentials.TransportCredentials
	// credsBy names the option that chose creds ("WithCredentials" or
	// "WithInsecure"), so that giving both is an error.
	credsBy string
	// tap is the user's own tap handle (WithTapHandle).
	tap tap.ServerInHandle
	// loadConfig configures the shared sampler.
	loadConfig load.Config

	// The levers' configurations, set by their With* options.
	maxAge    maxage.Config
	goAway    goaway.Config
	policy    goaway.PolicyConfig
	health    health.Config
	orca      orca.Config
	loadShed  loadshed.Config
	rebalance goaway.RebalanceConfig
	// enabled holds the levers that are on before Without: maxage, goaway,
	// health and orca by default, loadshed and rebalance once their With*
	// option is given.
	enabled map[Feature]bool
	// without holds the levers Without turned off; applied after every
	// option, so it wins wherever it stands.
	without map[Feature]bool

	// errs are errors found while applying options (a nil argument, an
	// unknown feature name).
	errs []error
}

func newSettings() *settings {
	return &settings{
		enabled: map[Feature]bool{MaxAge: true, GoAway: true, Health: true, ORCA: true},
		without: map[Feature]bool{},
	}
}

// on reports whether lever f is on: enabled by default or by its With*
// option, and not turned off by Without.
func (s *settings) on(f Feature) bool { return s.enabled[f] && !s.without[f] }

// WithLogger sets the logger for every decision the library logs. Default
// slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(s *settings) {
		if l == nil {
			s.errs = append(s.errs, errNil("WithLogger"))
			return
		}
		s.logger = l
	}
}

// WithMeterProvider sets the OpenTelemetry meter provider for the library's
// metrics. Default: the global provider (otel.GetMeterProvider()).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(s *settings) {
		if mp == nil {
			s.errs = append(s.errs, errNil("WithMeterProvider"))
			return
		}
		s.meterProvider = mp
	}
}

// WithCredentials sets the server's transport credentials (TLS, mTLS, or
// any other credentials.TransportCredentials). Use it instead of grpc.Creds:
// the Manager passes them to grpc.Creds once, after the levers that need to
// see each connection (per-connection GOAWAY) have wrapped them.
//
// New requires either WithCredentials or WithInsecure, so that plaintext is
// never chosen by default: grpc.Creds keeps only the last value set, so a
// grpc.Creds(tls) placed before the Manager's options would be replaced by
// them, and the server would accept plaintext without a word. A
// grpc.Creds placed after them is detected instead: the Tracker never sees
// its connections, and the goaway lever logs an error and counts the calls
// in grpcmgmt.goaway.untracked_calls.
func WithCredentials(c credentials.TransportCredentials) Option {
	return func(s *settings) {
		if c == nil {
			s.errs = append(s.errs, errNil("WithCredentials"))
			return
		}
		s.setCreds("WithCredentials", c)
	}
}

// WithInsecure declares that the server accepts plaintext connections
// (insecure.NewCredentials()): for a server behind a TLS-terminating proxy,
// inside a mesh that encrypts for it, or for tests. It is the explicit
// alternative to WithCredentials; New requires one of the two.
func WithInsecure() Option {
	return func(s *settings) { s.setCreds("WithInsecure", insecure.NewCredentials()) }
}

func (s *settings) setCreds(by string, c credentials.TransportCredentials) {
	if s.credsBy != "" && s.credsBy != by {
		s.errs = append(s.errs, fmt.Errorf("grpcmgmt: %s and %s both given: choose one", s.credsBy, by))
		return
	}
	s.credsBy, s.creds = by, c
}

// WithTapHandle adds a tap handle of your own (grpc.InTapHandle allows only
// one per server, and panics when set twice). The Manager runs it after the
// levers' own taps (so a call shed by loadshed never reaches it), in the one
// grpc.InTapHandle that ServerOptions sets. Do not pass grpc.InTapHandle to
// grpc.NewServer as well when a lever sets one (loadshed does).
func WithTapHandle(h tap.ServerInHandle) Option {
	return func(s *settings) {
		if h == nil {
			s.errs = append(s.errs, errNil("WithTapHandle"))
			return
		}
		s.tap = h
	}
}

// Feature names a lever, for Without.
type Feature string

// The levers. Each has its With* option; Without turns it off.
const (
	MaxAge    Feature = "maxage"    // WithMaxAge; on by default
	GoAway    Feature = "goaway"    // WithGoAway; on by default (Tracker and load policy)
	Health    Feature = "health"    // WithHealth; on by default
	ORCA      Feature = "orca"      // WithORCA; on by default
	LoadShed  Feature = "loadshed"  // WithLoadShed; off by default
	Rebalance Feature = "rebalance" // WithRebalance; off by default (needs a replica-set name)
)

// features lists every Feature, in the order the Manager builds them.
var features = []Feature{MaxAge, GoAway, Rebalance, LoadShed, Health, ORCA}

// Without turns the named levers off, defaults included: "maxage",
// "goaway", "health", "orca", "loadshed", "rebalance" (the Feature
// constants). It wins over the lever's With* option wherever either
// stands among the options, so the result does not depend on their order.
// The shared load sampler is not a lever and cannot be turned off. An
// unknown name is an error from New.
func Without(fs ...Feature) Option {
	return func(s *settings) {
		for _, f := range fs {
			if !slices.Contains(features, f) {
				s.errs = append(s.errs, errUnknownFeature(f))
				continue
			}
			s.without[f] = true
		}
	}
}
