package grpcmgmt_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/grpcmgmt/grpcmgmt"
	"github.com/grpcmgmt/grpcmgmt/load"
	"github.com/grpcmgmt/grpcmgmt/maxage"
)

var invalidOptions = []struct {
	name string
	opt  grpcmgmt.Option
	want string // in the error text
}{
	{"negative age", grpcmgmt.WithMaxAge(maxage.Config{MaxConnectionAge: -time.Second}), "MaxConnectionAge must be within 1s..maxage.Off"},
	{"tiny age", grpcmgmt.WithMaxAge(maxage.Config{MaxConnectionAge: time.Millisecond}), "MaxConnectionAge"},
	{"negative grace", grpcmgmt.WithMaxAge(maxage.Config{MaxConnectionAgeGrace: -1}), "MaxConnectionAgeGrace must be within"},
	{"negative idle", grpcmgmt.WithMaxAge(maxage.Config{MaxConnectionIdle: -time.Minute}), "MaxConnectionIdle"},
	{"huge timeout", grpcmgmt.WithMaxAge(maxage.Config{Timeout: time.Hour}), "Timeout must be within 1s..10m0s"},
	{"tiny ping interval", grpcmgmt.WithMaxAge(maxage.Config{MinPingInterval: time.Millisecond}), "MinPingInterval"},
	{"nil logger", grpcmgmt.WithLogger(nil), "WithLogger"},
	{"nil meter provider", grpcmgmt.WithMeterProvider(nil), "WithMeterProvider"},
	{"nil credentials", grpcmgmt.WithCredentials(nil), "WithCredentials"},
	{"unknown feature", grpcmgmt.Without("nosuch"), `Without("nosuch")`},
	{"bad sampler period", grpcmgmt.WithLoad(load.Config{Period: time.Nanosecond}), "Period"},
	{"nil option", nil, "nil Option"},
}

func TestNewRejectsInvalidOptions(t *testing.T) {
	for _, tc := range invalidOptions {
		t.Run(tc.name, func(t *testing.T) {
			m, err := grpcmgmt.New(grpcmgmt.WithInsecure(), tc.opt)
			if err == nil {
				_ = m.Shutdown(context.Background())
				t.Fatalf("New succeeded, want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New error = %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestMaxAgeOffAndDefaultsAreValid(t *testing.T) {
	for _, cfg := range []maxage.Config{
		{},
		{MaxConnectionAge: maxage.Off, MaxConnectionAgeGrace: maxage.Off, MaxConnectionIdle: maxage.Off, Time: maxage.Off},
		{MaxConnectionAge: time.Second, MaxConnectionAgeGrace: time.Millisecond},
	} {
		m, err := grpcmgmt.New(grpcmgmt.WithInsecure(), grpcmgmt.WithMaxAge(cfg))
		if err != nil {
			t.Errorf("New(%+v): %v", cfg, err)
			continue
		}
		_ = m.Shutdown(context.Background())
	}
}

// The one-line form cannot return an error: an invalid option panics at
// start-up, naming the option, rather than serving unprotected or failing
// calls at run time. No process-wide Manager is left behind.
func TestServerOptionsPanicsOnInvalidOption(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []grpcmgmt.Option
		want string
	}{
		{"invalid max age", []grpcmgmt.Option{grpcmgmt.WithInsecure(), grpcmgmt.WithMaxAge(maxage.Config{MaxConnectionAge: -time.Second})}, "MaxConnectionAge"},
		{"no credentials", nil, "WithInsecure"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				r := recover()
				msg, _ := r.(string)
				if !strings.HasPrefix(msg, "grpcmgmt.ServerOptions: ") || !strings.Contains(msg, tc.want) {
					t.Errorf("panic = %v, want one naming %s", r, tc.want)
				}
				if m := grpcmgmt.Default(); m != nil {
					t.Errorf("Default() = %p after a failed ServerOptions, want nil", m)
				}
			}()
			grpcmgmt.ServerOptions(tc.opts...)
		})
	}
}
