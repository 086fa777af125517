package grpcmgmt

import (
	"fmt"
	"log/slog"

	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/tap"

	"github.com/grpcmgmt/grpcmgmt/internal/component"
	"github.com/grpcmgmt/grpcmgmt/load"
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
	// features maps a feature name to its factory; nil means disabled.
	features map[string]*component.Factory
	// loadConfig configures the shared sampler.
	loadConfig load.Config
	// errs are errors found while applying options (a nil argument).
	errs []error
}

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

// Without disables the named features ("maxage", "load", ...), including
// defaults. Unknown names are an error from New.
func Without(features ...string) Option {
	return func(s *settings) {
		for _, f := range features {
			if _, ok := s.features[f]; !ok {
				s.errs = append(s.errs, errUnknownFeature(f))
				continue
			}
			s.features[f] = nil
		}
	}
}

// setFeature is used by the per-feature With* options.
func setFeature(f *component.Factory) Option {
	return func(s *settings) { s.features[f.Name] = f }
}
