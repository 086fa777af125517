package loadshed

import (
	"log/slog"
	"testing"
	"unsafe"

	"go.opentelemetry.io/otel/metric/noop"
)

// What every call reads of the Shedder is on one cache line (see the
// struct's first comment), where New's Shedder lies in memory: a field
// added among them, one of them moved, or an allocator that places the
// Shedder differently shows here.
func TestShedderHotFieldsFirst(t *testing.T) {
	var z Shedder
	end := uintptr(0)
	for _, f := range []struct{ off, size uintptr }{
		{unsafe.Offsetof(z.loadLimits), unsafe.Sizeof(z.loadLimits)},
		{unsafe.Offsetof(z.defPrio), unsafe.Sizeof(z.defPrio)},
		{unsafe.Offsetof(z.hasAdaptive), unsafe.Sizeof(z.hasAdaptive)},
		{unsafe.Offsetof(z.hasMethods), unsafe.Sizeof(z.hasMethods)},
		{unsafe.Offsetof(z.flags), unsafe.Sizeof(z.flags)},
		{unsafe.Offsetof(z.nShedding), unsafe.Sizeof(z.nShedding)},
		{unsafe.Offsetof(z.exemptMask), unsafe.Sizeof(z.exemptMask)},
		{unsafe.Offsetof(z.header), unsafe.Sizeof(z.header)},
		{unsafe.Offsetof(z.calls), unsafe.Sizeof(z.calls)},
		{unsafe.Offsetof(z.static), unsafe.Sizeof(z.static)},
	} {
		end = max(end, f.off+f.size)
	}
	if end > 56 {
		t.Errorf("the fields every call reads end at byte %d of the Shedder, want within its first 56", end)
	}
	for range 20 {
		s, err := New(Config{MaxInFlight: 10, MeterProvider: noop.NewMeterProvider(), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		first := uintptr(unsafe.Pointer(s))
		if last := first + end - 1; first/64 != last/64 {
			t.Errorf("a Shedder at %#x (%d bytes into a cache line): the fields every call reads span two lines", first, first%64)
		}
		_ = s.Close()
	}
}
