package orca

import (
	"testing"
	"unsafe"
)

// What every unary call reads of the Reporter (whether per-call reports
// are off, the skip's target, generation, tally and source, the current epoch) shares
// its first cache line.
func TestReporterHotFieldsFirst(t *testing.T) {
	var r Reporter
	at := unsafe.Offsetof(r.conns)
	for _, f := range []struct {
		name     string
		from, to uintptr
	}{
		{"noPerCall", unsafe.Offsetof(r.noPerCall), unsafe.Offsetof(r.noPerCall) + 1},
		{"conns.epoch", at + unsafe.Offsetof(r.conns.epoch), at + unsafe.Offsetof(r.conns.epoch) + 8},
		{"conns.target", at + unsafe.Offsetof(r.conns.target), at + unsafe.Offsetof(r.conns.target) + 8},
		{"conns.gen0", at + unsafe.Offsetof(r.conns.gen0), at + unsafe.Offsetof(r.conns.gen0) + 8},
		{"conns.tally", at + unsafe.Offsetof(r.conns.tally), at + unsafe.Offsetof(r.conns.tally) + 8},
		{"conns.src", at + unsafe.Offsetof(r.conns.src), at + unsafe.Offsetof(r.conns.src) + unsafe.Sizeof(r.conns.src)},
	} {
		if f.to > 64 {
			t.Errorf("%s at bytes %d..%d of the Reporter, want it within its first 64", f.name, f.from, f.to)
		}
	}
}
