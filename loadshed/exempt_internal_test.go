package loadshed

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/metric/noop"
)

// TestIsExempt: the exempt methods and services are exempt and no other
// method is, whether the lengths' mask lets the check through or not (the
// mask's bits repeat every 32 bytes of length) and with the entries in
// the list or, past maxExemptList, in the map.
func TestIsExempt(t *testing.T) {
	for _, extra := range []int{0, maxExemptList} {
		exempt := []string{"/a.B/", "/c.D/Method"}
		for i := range extra {
			exempt = append(exempt, fmt.Sprintf("/filler.S%d/", i))
		}
		s, err := New(Config{MaxInFlight: 10, Exempt: exempt, MeterProvider: noop.NewMeterProvider(), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		pad := strings.Repeat("x", 32) // the same bit of the mask
		for method, want := range map[string]bool{
			"/a.B/Any":                     true,
			"/c.D/Method":                  true,
			"/grpc.health.v1.Health/Check": true,
			"/xds.service.orca.v3.OpenRcaService/StreamCoreMetrics": true,
			"/c.D/Other":          false,
			"/c.D/Methoe":         false, // as long as an entry
			"/c.D/Method" + pad:   false, // its length's bit is an entry's
			"/a.B" + pad + "/Any": false, // its service's length's bit is an entry's
			"/e.F/Method":         false,
			"":                    false,
		} {
			if got := s.isExempt(method); got != want {
				t.Errorf("with %d entries: isExempt(%q) = %v, want %v", len(exempt), method, got, want)
			}
		}
	}
}
