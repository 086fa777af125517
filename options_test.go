package grpcmgmt_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/grpcmgmt/grpcmgmt"
	"github.com/grpcmgmt/grpcmgmt/maxage"
)

// The invalid values of every option are in invalid_config_test.go.

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
