package load

import (
	"os"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric/noop"
)

// BenchmarkSampleDefaultSources is what one tick of the sampler goroutine
// costs with this machine's production CPU and memory readings and four
// subscribers: at the default 250 ms period it runs 4 times a second.
func BenchmarkSampleDefaultSources(b *testing.B) {
	s, err := newSampler(Config{MeterProvider: noop.NewMeterProvider(), Logger: discardLogger()}, os.DirFS("/"))
	if err != nil {
		b.Fatal(err)
	}
	var sink float64
	for range 4 {
		s.OnSample(func(sn Snapshot) { sink += sn.CPU })
	}
	at := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		at = at.Add(s.period)
		s.sample(at)
	}
	_ = sink
}
