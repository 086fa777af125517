package load

import (
	"fmt"
	"math"

	"go.opentelemetry.io/otel/metric"
)

// Source is one signal, read as a utilization: 0 is idle, 1 is the whole
// allowance in use, and values above 1 mean over the allowance. The default
// CPU and memory readings are Sources too, so a Source given in Config
// takes exactly the place of the production reading.
//
// Read is called on the sampler goroutine only, once per Period, never
// concurrently with itself. It should return quickly: Close does not wait
// for a Read in progress, but the next sample does.
//
// A Read that returns an error, NaN, an infinity or a negative value is a
// failed reading: the Snapshot keeps the source's last good value, the
// failure is counted in the grpcmgmt.load.source.errors metric, and the
// sampler logs when the source starts failing and when it recovers.
type Source interface {
	Read() (float64, error)
}

// SourceFunc adapts a function to Source.
type SourceFunc func() (float64, error)

// Read calls f.
func (f SourceFunc) Read() (float64, error) { return f() }

// reading is one Source with the state the sampler keeps for it. It is
// owned by the sampler goroutine.
type reading struct {
	name    string // "cpu", "memory", or the Sources key
	src     Source
	last    float64 // last good value
	ok      bool    // last is set
	failing bool    // the last Read failed
	avg     float64 // smoothed value, valid when hasAvg
	hasAvg  bool
	// observeOpt and addOpt carry the "source" attribute for metrics.
	observeOpt metric.ObserveOption
	addOpt     metric.AddOption
}

// read calls the source and validates its value. It returns the error of a
// failed reading; r.last holds the value to publish either way.
func (r *reading) read() error {
	v, err := r.src.Read()
	if err == nil && (math.IsNaN(v) || math.IsInf(v, 0) || v < 0) {
		err = fmt.Errorf("load: source %q: invalid value %v (want a finite value >= 0)", r.name, v)
	}
	if err != nil {
		return err
	}
	r.last, r.ok = v, true
	return nil
}

// smooth folds the last good value into the average.
func (r *reading) smooth(e ewma) {
	if !r.ok {
		return
	}
	if !r.hasAvg {
		r.avg, r.hasAvg = r.last, true
		return
	}
	r.avg = e.next(r.avg, r.last)
}
