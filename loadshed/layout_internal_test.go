package loadshed

import (
	"testing"
	"unsafe"
)

// What every call reads of the Shedder stays within its first two cache
// lines (see the struct's first comment): a field added among them, or one
// of them moved, shows here.
func TestShedderHotFieldsFirst(t *testing.T) {
	var s Shedder
	end := unsafe.Offsetof(s.exemptList) + unsafe.Sizeof(s.exemptList)
	for _, f := range []uintptr{unsafe.Offsetof(s.loadLimits), unsafe.Offsetof(s.defPrio), unsafe.Offsetof(s.sawHeader),
		unsafe.Offsetof(s.header), unsafe.Offsetof(s.adaptive), unsafe.Offsetof(s.calls), unsafe.Offsetof(s.exempt),
		unsafe.Offsetof(s.static), unsafe.Offsetof(s.methods)} {
		end = max(end, f+8)
	}
	if end > 128 {
		t.Errorf("the fields every call reads end at byte %d of the Shedder, want within its first 128 (two cache lines)", end)
	}
}
