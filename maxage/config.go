package maxage

import (
	"fmt"
	"math"
	"time"

	"google.golang.org/grpc/keepalive"
)

// Off disables a timer (MaxConnectionAge, MaxConnectionAgeGrace,
// MaxConnectionIdle or Time). It is the value grpc-go itself uses for
// "infinity".
const Off = time.Duration(math.MaxInt64)

// Defaults; see the package documentation for the reasoning.
const (
	DefaultMaxConnectionAge      = 2 * time.Minute
	DefaultMaxConnectionAgeGrace = 30 * time.Second
	DefaultMaxConnectionIdle     = 10 * time.Minute
	DefaultTime                  = time.Minute
	DefaultTimeout               = 20 * time.Second
	DefaultMinPingInterval       = 5 * time.Second
)

// Config sets the connection age policy. The zero value means every default.
type Config struct {
	// MaxConnectionAge is how long a connection may live before the server
	// sends a graceful GOAWAY. grpc-go adds ±10 % jitter. Default 2m; allowed
	// 1s..Off.
	MaxConnectionAge time.Duration
	// MaxConnectionAgeGrace is how long calls in flight may continue after
	// that GOAWAY before the connection is closed. Default 30s; allowed
	// 1ms..Off.
	MaxConnectionAgeGrace time.Duration
	// MaxConnectionIdle closes a connection that has had no call for this
	// long. Default 10m; allowed 1s..Off.
	MaxConnectionIdle time.Duration
	// Time is how long a connection may be quiet before the server pings the
	// client. Default 1m; allowed 1s..Off.
	Time time.Duration
	// Timeout is how long the server waits for the ping's answer before
	// closing the connection. Default 20s; allowed 1s..10m.
	Timeout time.Duration
	// MinPingInterval is the shortest interval between client keepalive pings
	// the server accepts; a client that pings more often is closed with
	// "too_many_pings". Default 5s; allowed 1s..1h.
	MinPingInterval time.Duration
	// ForbidPingsWithoutStream makes the server close clients that ping while
	// they have no call in flight. Default false: such pings are accepted,
	// because standard clients configured with keepalive send them.
	ForbidPingsWithoutStream bool
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.MaxConnectionAge, DefaultMaxConnectionAge)
	def(&c.MaxConnectionAgeGrace, DefaultMaxConnectionAgeGrace)
	def(&c.MaxConnectionIdle, DefaultMaxConnectionIdle)
	def(&c.Time, DefaultTime)
	def(&c.Timeout, DefaultTimeout)
	def(&c.MinPingInterval, DefaultMinPingInterval)
	return c
}

// Validate reports the first field outside its allowed range, after
// defaults are applied. The error names the field and the range.
func (c Config) Validate() error {
	c = c.WithDefaults()
	checks := []struct {
		name     string
		v        time.Duration
		min, max time.Duration
	}{
		{"MaxConnectionAge", c.MaxConnectionAge, time.Second, Off},
		{"MaxConnectionAgeGrace", c.MaxConnectionAgeGrace, time.Millisecond, Off},
		{"MaxConnectionIdle", c.MaxConnectionIdle, time.Second, Off},
		{"Time", c.Time, time.Second, Off},
		{"Timeout", c.Timeout, time.Second, 10 * time.Minute},
		{"MinPingInterval", c.MinPingInterval, time.Second, time.Hour},
	}
	for _, k := range checks {
		if k.v < k.min || k.v > k.max {
			return fmt.Errorf("maxage: %s must be within %s, got %v", k.name, span(k.min, k.max), k.v)
		}
	}
	return nil
}

func span(lo, hi time.Duration) string {
	if hi == Off {
		return fmt.Sprintf("%v..maxage.Off (0 means the default)", lo)
	}
	return fmt.Sprintf("%v..%v (0 means the default)", lo, hi)
}

// ServerParameters returns the keepalive server parameters for c, with
// defaults applied. Call Validate first.
func (c Config) ServerParameters() keepalive.ServerParameters {
	c = c.WithDefaults()
	return keepalive.ServerParameters{
		MaxConnectionIdle:     c.MaxConnectionIdle,
		MaxConnectionAge:      c.MaxConnectionAge,
		MaxConnectionAgeGrace: c.MaxConnectionAgeGrace,
		Time:                  c.Time,
		Timeout:               c.Timeout,
	}
}

// EnforcementPolicy returns the keepalive enforcement policy for c, with
// defaults applied.
func (c Config) EnforcementPolicy() keepalive.EnforcementPolicy {
	c = c.WithDefaults()
	return keepalive.EnforcementPolicy{
		MinTime:             c.MinPingInterval,
		PermitWithoutStream: !c.ForbidPingsWithoutStream,
	}
}
