package load

import (
	"math"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric/noop"
)

// TestRealCPUReading burns one core for 2 s on this machine and checks the
// production CPU reading (NewSampler's default Source) against the
// process's CPU time as gopsutil reads it from /proc (a different mechanism
// from the getrusage the production reading uses on Unix, and from a cgroup's
// cpu.stat). The expected value is measured because on a shared machine the
// burner may get less than a whole core.
//
// It checks that the burn reads clearly higher than idle, and that the
// time-weighted mean of the raw readings over the burn is within ±15 % of
// the measured fraction of the allowance.
func TestRealCPUReading(t *testing.T) {
	allowance := productionAllowance(t)
	cpuTime, err := gopsutilCPUTime()
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSampler(Config{Period: 100 * time.Millisecond, MeterProvider: noop.NewMeterProvider(), Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	type record struct {
		at   time.Time     // Snapshot.At
		raw  float64       // Snapshot.CPURaw
		cpu  time.Duration // process CPU time, read right after the sample
		wall time.Time
	}
	var (
		mu      sync.Mutex
		records []record
		readErr error
	)
	s.OnSample(func(sn Snapshot) {
		c, err := cpuTime()
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			readErr = err
		}
		records = append(records, record{at: sn.At, raw: sn.CPURaw, cpu: c, wall: time.Now()})
	})
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(records)
	}
	waitSamples := func(n int) int {
		start := count()
		deadline := time.Now().Add(time.Duration(n)*time.Second + 10*time.Second)
		for count() < start+n {
			if time.Now().After(deadline) {
				t.Fatalf("sampler delivered %d of %d samples", count()-start, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
		return count() - 1
	}
	// got is the time-weighted mean of the raw readings of samples i+1..j
	// (which together cover the interval from sample i to sample j); want
	// is the process's CPU time over the same interval, as a fraction of
	// the allowance.
	measure := func(i, j int) (got, want float64) {
		mu.Lock()
		defer mu.Unlock()
		var sum float64
		for k := i + 1; k <= j; k++ {
			sum += records[k].raw * records[k].at.Sub(records[k-1].at).Seconds()
		}
		got = sum / records[j].at.Sub(records[i].at).Seconds()
		want = (records[j].cpu - records[i].cpu).Seconds() / records[j].wall.Sub(records[i].wall).Seconds() / allowance
		return got, want
	}

	idleFrom := waitSamples(1)
	idleTo := waitSamples(10)

	var stop atomic.Bool
	burned := make(chan struct{})
	go func() {
		defer close(burned)
		x := uint64(1)
		for !stop.Load() {
			for range 10000 {
				x = x*6364136223846793005 + 1442695040888963407
			}
		}
		sink.Store(x)
	}()
	burnFrom := waitSamples(1) // the burner runs during every later interval
	burnTo := waitSamples(20)
	stop.Store(true)
	<-burned

	mu.Lock()
	if readErr != nil {
		t.Fatalf("gopsutil CPU time: %v", readErr)
	}
	mu.Unlock()
	idleGot, idleWant := measure(idleFrom, idleTo)
	burnGot, burnWant := measure(burnFrom, burnTo)
	t.Logf("allowance %.2f CPUs (%d CPUs, GOMAXPROCS %d); idle: read %.3f, process CPU %.3f; burning one core: read %.3f, process CPU %.3f",
		allowance, runtime.NumCPU(), runtime.GOMAXPROCS(0), idleGot, idleWant, burnGot, burnWant)

	if burnWant < 0.1/allowance {
		t.Fatalf("the burner got %.2f of a core: machine too busy for this measurement", burnWant*allowance)
	}
	if burnGot < idleGot+0.5*(burnWant-idleWant) {
		t.Errorf("burning one core reads %.3f, idle %.3f: not clearly higher (process CPU says +%.3f)", burnGot, idleGot, burnWant-idleWant)
	}
	if math.Abs(burnGot-burnWant) > 0.15*burnWant {
		t.Errorf("burning one core reads %.3f of the allowance; the process's CPU time says %.3f (off by %.0f %%, limit ±15 %%)",
			burnGot, burnWant, 100*math.Abs(burnGot-burnWant)/burnWant)
	}
}

var sink atomic.Uint64

// productionAllowance is the denominator the production CPU reading uses
// on this machine, in CPUs.
func productionAllowance(t *testing.T) float64 {
	src, err := defaultCPU(os.DirFS("/"), time.Now, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	switch c := src.(type) {
	case *processCPU:
		return c.procs()
	case *cgroupCPU:
		a, err := c.allowance()
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	t.Fatalf("unknown production CPU source %T", src)
	return 0
}

// TestProcessCPUTimeReaders: getrusage and gopsutil agree on this
// process's CPU time (within gopsutil's clock-tick resolution and the time
// between the two reads).
func TestProcessCPUTimeReaders(t *testing.T) {
	g, err := gopsutilCPUTime()
	if err != nil {
		t.Fatal(err)
	}
	p, err := processCPUTime()
	if err != nil {
		t.Fatal(err)
	}
	end := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(end) {
	}
	a, err := p()
	if err != nil {
		t.Fatal(err)
	}
	b, err := g()
	if err != nil {
		t.Fatal(err)
	}
	if d := (a - b).Abs(); d > 50*time.Millisecond || a < 100*time.Millisecond {
		t.Errorf("process CPU time: %v from processCPUTime, %v from gopsutil", a, b)
	}
}
