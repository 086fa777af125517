package leakcheck

import (
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMain(m *testing.M) { VerifyTestMain(m) }

// leakyWorker blocks until stop is closed: the goroutine a test forgot.
func leakyWorker(stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	<-stop
}

func TestCatchesALeakedGoroutine(t *testing.T) {
	before := running()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go leakyWorker(stop, &wg)

	start := time.Now()
	leaked := wait(before, 200*time.Millisecond)
	if len(leaked) != 1 || !strings.Contains(leaked[0], "leakyWorker") {
		t.Fatalf("got %d leaked goroutine(s), want the one running leakyWorker:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
	}
	if waited := time.Since(start); waited < 200*time.Millisecond {
		t.Errorf("reported after %v, want after retrying until the 200ms deadline", waited)
	}

	close(stop)
	wg.Wait()
	if leaked := wait(before, time.Second); len(leaked) != 0 {
		t.Fatalf("after the goroutine returned, got %d leaked:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
	}
}

func TestWaitsForAGoroutineThatIsStopping(t *testing.T) {
	before := running()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go leakyWorker(stop, &wg)
	time.AfterFunc(50*time.Millisecond, func() { close(stop) })
	if leaked := wait(before, 5*time.Second); len(leaked) != 0 {
		t.Fatalf("a goroutine that exits 50ms later was reported:\n%s", strings.Join(leaked, "\n\n"))
	}
	wg.Wait()
}

func TestIgnoresGoroutinesRunningBefore(t *testing.T) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go leakyWorker(stop, &wg)
	defer func() { close(stop); wg.Wait() }()
	time.Sleep(time.Millisecond) // let it start, so the snapshot lists it
	before := running()
	if leaked := wait(before, 0); len(leaked) != 0 {
		t.Fatalf("a goroutine in the snapshot was reported:\n%s", strings.Join(leaked, "\n\n"))
	}
}

func TestGoroutineID(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		ok   bool
	}{
		{"goroutine 42 [chan receive]:\nmain.f()", 42, true},
		{"goroutine 1 [running]:", 1, true},
		{"goroutine x [running]:", 0, false},
		{"something else", 0, false},
	} {
		got, ok := goroutineID(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("goroutineID(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
