package cluster

import (
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Recorder collects the outcome of every call a load generator makes:
// which replica served it, when, how long it took, and how it failed.
type Recorder struct {
	start time.Time

	mu      sync.Mutex
	samples []sample
}

type sample struct {
	at        time.Duration // since start, when the call ended
	lat       time.Duration
	replica   string
	code      codes.Code
	noServing bool // failed because no replica was SERVING (health checking)
}

// maxSamples bounds a Recorder's memory (about 160 MB): a 75 s closed-loop
// leg on loopback records about 1M calls.
const maxSamples = 1 << 22

// NewRecorder starts a recorder's clock.
func NewRecorder() *Recorder { return &Recorder{start: time.Now()} }

// Start returns the recorder's time zero.
func (r *Recorder) Start() time.Time { return r.start }

// Record adds one call that ended now.
func (r *Recorder) Record(replica string, lat time.Duration, code codes.Code) {
	r.RecordAt(time.Since(r.start), replica, lat, code)
}

// RecordAt adds one call that ended at at after the start (for calls an
// external client recorded on its own clock).
func (r *Recorder) RecordAt(at time.Duration, replica string, lat time.Duration, code codes.Code) {
	r.mu.Lock()
	if len(r.samples) < maxSamples {
		r.samples = append(r.samples, sample{at: at, lat: lat, replica: replica, code: code})
	}
	r.mu.Unlock()
}

// RecordCall adds one call that ended now with err (nil: served by
// replica). A failure whose message is grpc-go's for a backend whose health
// check failed ("connection active but health check failed") is counted
// as failed because no replica was SERVING (Window.NoServing): the picker
// had only NOT_SERVING backends to offer.
func (r *Recorder) RecordCall(replica string, lat time.Duration, err error) {
	at := time.Since(r.start)
	code := status.Code(err)
	noServing := code == codes.Unavailable && strings.Contains(status.Convert(err).Message(), "health check failed")
	r.mu.Lock()
	if len(r.samples) < maxSamples {
		r.samples = append(r.samples, sample{at: at, lat: lat, replica: replica, code: code, noServing: noServing})
	}
	r.mu.Unlock()
}

// Window selects the calls that ended in [from, to) after the start.
type Window struct {
	OK, Failed int
	// PerReplica counts successful calls by replica.
	PerReplica map[string]int
	// Codes counts failed calls by status code.
	Codes map[codes.Code]int
	// NoServing counts the failed calls that failed because no replica was
	// SERVING (RecordCall).
	NoServing int
	lats      []time.Duration
}

// Window returns the calls that ended in [from, to).
func (r *Recorder) Window(from, to time.Duration) Window {
	w := Window{PerReplica: map[string]int{}, Codes: map[codes.Code]int{}}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.samples {
		if s.at < from || s.at >= to {
			continue
		}
		if s.code == codes.OK {
			w.OK++
			w.PerReplica[s.replica]++
			w.lats = append(w.lats, s.lat)
		} else {
			w.Failed++
			w.Codes[s.code]++
			if s.noServing {
				w.NoServing++
			}
		}
	}
	return w
}

// Share returns the replica's share of the window's successful calls.
func (w Window) Share(replica string) float64 {
	if w.OK == 0 {
		return 0
	}
	return float64(w.PerReplica[replica]) / float64(w.OK)
}

// Quantile returns the q-quantile latency of the window's successful calls
// (0 if none).
func (w Window) Quantile(q float64) time.Duration {
	if len(w.lats) == 0 {
		return 0
	}
	l := slices.Clone(w.lats)
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	i := int(q * float64(len(l)-1))
	return l[i]
}

// PerSecond returns, for each whole second from 0 to n, the successful calls
// per replica.
func (r *Recorder) PerSecond(n int) []map[string]int {
	out := make([]map[string]int, n)
	for i := range out {
		out[i] = map[string]int{}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.samples {
		i := int(s.at / time.Second)
		if s.code == codes.OK && i >= 0 && i < n {
			out[i][s.replica]++
		}
	}
	return out
}
