package grpcmgmt

import (
	"log/slog"

	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc/credentials"

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
// insecure). Use it instead of grpc.Creds: the Manager passes the result
// through grpc.Creds once, after levers that need to see the connection
// (per-connection GOAWAY) have wrapped it. Default insecure.NewCredentials().
func WithCredentials(c credentials.TransportCredentials) Option {
	return func(s *settings) {
		if c == nil {
			s.errs = append(s.errs, errNil("WithCredentials"))
			return
		}
		s.creds = c
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
