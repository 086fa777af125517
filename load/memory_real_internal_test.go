package load

import (
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// TestHostMemoryReading: the host memory reading is a utilization in
// (0, 1) and, on Linux, agrees with 1 - MemAvailable/MemTotal read from
// /proc/meminfo directly.
func TestHostMemoryReading(t *testing.T) {
	v, err := newHostMemory().Read()
	if err != nil {
		t.Fatal(err)
	}
	if v <= 0 || v >= 1 {
		t.Fatalf("host memory utilization = %v, want within (0, 1)", v)
	}
	if runtime.GOOS != "linux" {
		return
	}
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	kb := map[string]float64{}
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) >= 2 {
			n, _ := strconv.ParseFloat(f[1], 64)
			kb[strings.TrimSuffix(f[0], ":")] = n
		}
	}
	want := 1 - kb["MemAvailable"]/kb["MemTotal"]
	if math.Abs(v-want) > 0.02 {
		t.Errorf("host memory utilization = %.4f, /proc/meminfo says %.4f", v, want)
	}
}
