package orca_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/grpcmgmt/grpcmgmt"
	"github.com/grpcmgmt/grpcmgmt/load"
	"github.com/grpcmgmt/grpcmgmt/orca"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg   orca.Config
		field string // "" = valid
	}{
		{orca.Config{}, ""},
		{orca.Config{Capacity: orca.MaxCapacity, MinReportingInterval: 10 * time.Millisecond, TimeConstant: time.Minute}, ""},
		{orca.Config{PerCallInterval: -time.Second}, "PerCallInterval must be within 10ms..1m0s"},
		{orca.Config{PerCallInterval: time.Millisecond}, "PerCallInterval"},
		{orca.Config{PerCallInterval: 2 * time.Minute}, "PerCallInterval"},
		{orca.Config{PerCallInterval: 10 * time.Millisecond}, ""},
		{orca.Config{PerCallInterval: time.Minute}, ""},
		{orca.Config{Capacity: -1}, "Capacity"},
		{orca.Config{Capacity: orca.MaxCapacity + 1}, "Capacity"},
		{orca.Config{MinReportingInterval: -time.Second}, "MinReportingInterval"},
		{orca.Config{MinReportingInterval: time.Millisecond}, "MinReportingInterval"},
		{orca.Config{MinReportingInterval: 2 * time.Hour}, "MinReportingInterval"},
		{orca.Config{TimeConstant: -1}, "TimeConstant"},
		{orca.Config{TimeConstant: time.Hour}, "TimeConstant"},
	} {
		err := tc.cfg.Validate()
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("Validate(%+v) = %v, want nil", tc.cfg, err)
		case tc.field != "" && (err == nil || !strings.Contains(err.Error(), tc.field)):
			t.Errorf("Validate(%+v) = %v, want an error naming %s", tc.cfg, err, tc.field)
		}
		// The Manager reports the same error.
		if tc.field != "" {
			if _, err := grpcmgmt.New(grpcmgmt.WithInsecure(), grpcmgmt.WithORCA(tc.cfg)); err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("grpcmgmt.New(WithORCA(%+v)) = %v, want an error naming %s", tc.cfg, err, tc.field)
			}
		}
	}
	if d := (orca.Config{}).WithDefaults(); d.MinReportingInterval != 30*time.Second || d.TimeConstant != time.Second {
		t.Errorf("defaults = %+v, want MinReportingInterval 30s, TimeConstant 1s", d)
	}
}

func TestNewBadArguments(t *testing.T) {
	if _, err := orca.New(nil, orca.Config{}); err == nil {
		t.Error("New(nil sampler): nil error")
	}
	s, err := load.NewSampler(load.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for name, opt := range map[string]orca.Option{
		"WithLogger":        orca.WithLogger(nil),
		"WithMeterProvider": orca.WithMeterProvider(nil),
		"nil Option":        nil,
	} {
		if r, err := orca.New(s, orca.Config{}, opt); err == nil {
			_ = r.Close()
			t.Errorf("New with %s: nil error", name)
		}
	}
}
