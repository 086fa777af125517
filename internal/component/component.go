// Package component is the contract between the grpcmgmt Manager and the
// levers that plug into it (maxage, goaway, loadshed, health, orca, load).
//
// A lever is built once by the Manager from a Factory, receives the shared
// Host (logger, meter, load sampler), and contributes Parts of the server
// configuration. The Manager merges the Parts of every lever into one set of
// grpc.ServerOptions, so that options grpc-go allows only once (credentials,
// keepalive, the tap handle) are set exactly once, and interceptors are
// chained in a fixed order whatever order the user passed options in.
//
// Optional behaviour is discovered through small interfaces (Registrar,
// Drainer, Closer), so a new lever never edits another one.
package component

import (
	"context"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/tap"

	"github.com/grpcmgmt/grpcmgmt/load"
)

// Host is what the Manager shares with every component. Every field is set
// (never nil) when a Factory is called.
type Host struct {
	// Logger is the Manager's logger; components add their own "component"
	// attribute.
	Logger *slog.Logger
	// MeterProvider is where components create their instruments. It is the
	// global provider unless the user passed one.
	MeterProvider metric.MeterProvider
	// Load is the one sampler shared by every component. Components read
	// Load.Snapshot() on the call path and subscribe with Load.OnSample for
	// periodic decisions, instead of starting goroutines of their own.
	Load *load.Sampler
	// Insecure is true when the server's credentials are plaintext
	// (grpcmgmt.WithInsecure): a component that dials the server's peers
	// (the health guard) may then do so in plaintext too.
	Insecure bool
	// MaxAgeGrace is the grace the maxage component applies after a
	// GOAWAY (0 when maxage is off). Other components that send GOAWAY use it
	// as their default hard-close grace.
	MaxAgeGrace time.Duration
	// Find returns the component of the named feature if it is enabled and
	// already built (features build in Order), for a component that acts
	// through another one (rebalancing sends its GOAWAYs through the goaway
	// component's Tracker).
	Find func(name string) (Component, bool)
}

// Parts are the pieces of server configuration one component contributes.
// Zero fields contribute nothing.
type Parts struct {
	// Keepalive and Enforcement are set by at most one component (maxage).
	Keepalive   *keepalive.ServerParameters
	Enforcement *keepalive.EnforcementPolicy
	// WrapCredentials wraps the server's transport credentials (goaway).
	WrapCredentials func(credentials.TransportCredentials) credentials.TransportCredentials
	// Tap runs before a stream's request is read. The Manager composes the
	// taps of all components into the one grpc.InTapHandle a server allows.
	Tap tap.ServerInHandle
	// Unary and Stream are chained with grpc.ChainUnaryInterceptor and
	// grpc.ChainStreamInterceptor in component order.
	Unary  grpc.UnaryServerInterceptor
	Stream grpc.StreamServerInterceptor
	// StatsHandler is added with grpc.StatsHandler.
	StatsHandler stats.Handler
	// ServerOptions are appended as they are, for anything else.
	ServerOptions []grpc.ServerOption
}

// Component is one lever, built by the Manager.
type Component interface {
	// Parts returns the component's contribution to the server options. It
	// is called once per Manager.ServerOptions call and must be cheap.
	Parts() Parts
}

// Registrar is implemented by components that serve gRPC services of their
// own (health, ORCA out-of-band reporting).
type Registrar interface {
	Register(s grpc.ServiceRegistrar) error
}

// Drainer is implemented by components that take part in lame-duck
// shutdown. BeginDrain is called first in Manager.Shutdown; the returned
// duration is how long clients need to notice (the Manager waits for the
// longest one, or until its context ends, before stopping the servers).
type Drainer interface {
	BeginDrain(ctx context.Context) time.Duration
}

// ConnDrainer is implemented by components that can send GOAWAY to every
// connection (goaway). Manager.Shutdown calls DrainConnections after the
// propagation delay, just before GracefulStop; it returns how many
// connections were sent one.
type ConnDrainer interface {
	DrainConnections() int
}

// Closer is implemented by components with background work or resources.
// The Manager closes components in reverse build order.
type Closer interface {
	Close() error
}

// Factory builds one component. It validates its configuration and returns
// an error naming the invalid field and its allowed range.
type Factory struct {
	// Name identifies the feature in errors and logs ("maxage", "goaway").
	Name string
	// Order fixes the position of the component's interceptors in the chain
	// and its build order; lower runs first.
	Order int
	// New builds the component.
	New func(h *Host) (Component, error)
	// Config is the feature's configuration, for other features that read
	// it (the goaway grace defaults to the maxage grace). May be nil.
	Config any
}
