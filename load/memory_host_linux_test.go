package load

import (
	"math"
	"strings"
	"testing"

	"github.com/shirou/gopsutil/v4/mem"
)

// TestHostMemoryAgreesWithGopsutil: the /proc/meminfo reading agrees with
// gopsutil's mem.VirtualMemory (what the other platforms use, and what
// Linux used before), read right after.
func TestHostMemoryAgreesWithGopsutil(t *testing.T) {
	h := newHostMemory()
	defer h.Close()
	got, err := h.Read()
	if err != nil {
		t.Fatal(err)
	}
	v, err := mem.VirtualMemory()
	if err != nil {
		t.Fatal(err)
	}
	want := 1 - float64(min(v.Available, v.Total))/float64(v.Total)
	if math.Abs(got-want) > 0.02 {
		t.Errorf("host memory utilization from /proc/meminfo = %.4f, gopsutil says %.4f", got, want)
	}
}

// TestHostMemoryRereads: the reading keeps /proc/meminfo open and reads
// it again from the start, growing its buffer when the text does not fit;
// it fails after Close.
func TestHostMemoryRereads(t *testing.T) {
	h := &hostMemory{buf: make([]byte, 16)} // far too small: grows
	for i := range 3 {
		v, err := h.Read()
		if err != nil || v <= 0 || v >= 1 {
			t.Fatalf("read %d: %v, %v; want a utilization within (0, 1)", i, v, err)
		}
	}
	if len(h.buf) < 64 {
		t.Errorf("buffer of %d bytes after reading /proc/meminfo", len(h.buf))
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Read(); err == nil {
		t.Error("Read after Close: no error")
	}
}

func TestParseMeminfo(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     float64
		err      string
	}{
		{"available", "MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    250 kB\nBuffers:          10 kB\n", 0.75, ""},
		// Before Linux 3.14: no MemAvailable.
		{"old kernel", "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 350 kB\n", 0.5, ""},
		{"available above total", "MemTotal: 1000 kB\nMemAvailable: 2000 kB\n", 0, ""},
		{"no total", "MemFree: 100 kB\n", 0, "no MemTotal"},
		{"garbage", "MemTotal: lots kB\n", 0, "MemTotal"},
		{"garbage in a field not read", "MemTotal: 1000 kB\nHugePages_Total: lots\nMemAvailable: 500 kB\n", 0.5, ""},
		{"no newline at the end", "MemTotal: 1000 kB\nMemAvailable: 100 kB", 0.9, ""},
		{"number run into text", "MemTotal: 1000kB\n", 0, "MemTotal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseMeminfo([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil || math.Abs(got-tc.want) > 1e-9 {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}
