package orca

import (
	"testing"
	"unsafe"
)

// What every unary call reads of the Reporter (whether per-call reports
// are off, the current epoch) shares its first cache line.
func TestReporterHotFieldsFirst(t *testing.T) {
	var r Reporter
	if end := unsafe.Offsetof(r.conns) + unsafe.Offsetof(r.conns.epoch) + 8; unsafe.Offsetof(r.noPerCall) >= 64 || end > 64 {
		t.Errorf("noPerCall at byte %d and the epoch ending at byte %d of the Reporter, want both within its first 64", unsafe.Offsetof(r.noPerCall), end)
	}
}
