package orca

import (
	"log/slog"
	"testing"
	"unsafe"

	"go.opentelemetry.io/otel/metric/noop"

	"github.com/grpcmgmt/grpcmgmt/load"
)

// What every unary call reads of the Reporter (whether per-call reports
// are off, the current epoch, the skip's target, generations and tally)
// shares one cache line: its first 56 bytes, as a Reporter is larger than
// 512 bytes and Go's allocator puts it 8 bytes into a 64-byte aligned slot
// (its malloc header first), and where New's Reporter lies in memory.
func TestReporterHotFieldsFirst(t *testing.T) {
	var r Reporter
	at := unsafe.Offsetof(r.conns)
	end := uintptr(0)
	for _, f := range []struct {
		name     string
		from, to uintptr
	}{
		{"noPerCall", unsafe.Offsetof(r.noPerCall), unsafe.Offsetof(r.noPerCall) + 1},
		{"conns.epoch", at + unsafe.Offsetof(r.conns.epoch), at + unsafe.Offsetof(r.conns.epoch) + 8},
		{"conns.target", at + unsafe.Offsetof(r.conns.target), at + unsafe.Offsetof(r.conns.target) + 8},
		{"conns.gen0", at + unsafe.Offsetof(r.conns.gen0), at + unsafe.Offsetof(r.conns.gen0) + 8},
		{"conns.tally", at + unsafe.Offsetof(r.conns.tally), at + unsafe.Offsetof(r.conns.tally) + 8},
		{"conns.gen", at + unsafe.Offsetof(r.conns.gen), at + unsafe.Offsetof(r.conns.gen) + 8},
	} {
		if f.to > 56 {
			t.Errorf("%s at bytes %d..%d of the Reporter, want it within its first 56", f.name, f.from, f.to)
		}
		end = max(end, f.to)
	}
	zero := load.SourceFunc(func() (float64, error) { return 0, nil })
	s, err := load.NewSampler(load.Config{CPU: zero, Memory: zero, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range 10 {
		rep, err := New(s, Config{}, WithLogger(slog.New(slog.DiscardHandler)), WithMeterProvider(noop.NewMeterProvider()))
		if err != nil {
			t.Fatal(err)
		}
		first := uintptr(unsafe.Pointer(rep))
		if last := first + end - 1; first/64 != last/64 {
			t.Errorf("a Reporter at %#x (%d bytes into a cache line): what every call reads spans two lines", first, first%64)
		}
		_ = rep.Close()
	}
}
