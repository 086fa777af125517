package grpcmgmt_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

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
			m, err := grpcmgmt.New(tc.opt)
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
		m, err := grpcmgmt.New(grpcmgmt.WithMaxAge(cfg))
		if err != nil {
			t.Errorf("New(%+v): %v", cfg, err)
			continue
		}
		_ = m.Shutdown(context.Background())
	}
}

// The one-line form cannot return an error. With an invalid option it must
// not run silently unprotected: every call fails with codes.Internal naming
// the option, and the error is logged.
func TestServerOptionsWithInvalidOptionFailsCallsLoudly(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	srv := grpc.NewServer(grpcmgmt.ServerOptions(
		grpcmgmt.WithLogger(logger),
		grpcmgmt.WithMaxAge(maxage.Config{MaxConnectionAge: -time.Second}),
	)...)
	defer srv.Stop()
	s := serve(t, srv)
	_, err := testpb.NewTestServiceClient(dial(t, s)).EmptyCall(context.Background(), &testpb.Empty{})
	if status.Code(err) != codes.Internal || !strings.Contains(status.Convert(err).Message(), "MaxConnectionAge") {
		t.Errorf("call error = %v, want Internal naming MaxConnectionAge", err)
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "MaxConnectionAge") {
		t.Errorf("log = %q, want an ERROR line naming MaxConnectionAge", logs.String())
	}
}
