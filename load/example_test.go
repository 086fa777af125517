package load_test

import (
	"fmt"

	"github.com/grpcmgmt/grpcmgmt/load"
)

// A Sampler with an injected CPU reading (as a test would inject 95 %) and
// a custom signal, read from the first sample.
func ExampleNewSampler() {
	queued := 30.0
	s, err := load.NewSampler(load.Config{
		CPU:    load.SourceFunc(func() (float64, error) { return 0.95, nil }),
		Memory: load.SourceFunc(func() (float64, error) { return 0.40, nil }),
		Sources: map[string]load.Source{
			// Queue depth as a utilization of its capacity of 100.
			"queue": load.SourceFunc(func() (float64, error) { return queued / 100, nil }),
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	first := make(chan load.Snapshot, 1)
	cancel := s.OnSample(func(sn load.Snapshot) {
		select {
		case first <- sn:
		default:
		}
	})
	defer cancel()
	sn := <-first
	fmt.Printf("cpu=%.2f memory=%.2f queue=%.2f\n", sn.CPU, sn.Memory, sn.Custom["queue"])
	// Output: cpu=0.95 memory=0.40 queue=0.30
}

// Validation errors name the field and its allowed range.
func ExampleConfig_Validate() {
	fmt.Println(load.Config{Period: 1}.Validate())
	// Output: load: Period must be within 10ms..10s, got 1ns
}

// The call path counts each call with Begin and a deferred End.
func ExampleCalls() {
	var c load.Calls
	handle := func(fail bool) (err error) {
		c.Begin()
		defer func() { c.End(err != nil) }()
		if fail {
			return fmt.Errorf("unavailable")
		}
		return nil
	}
	_ = handle(false)
	_ = handle(true)
	fmt.Println("in flight:", c.InFlight(), "started:", c.Started(), "failed:", c.Failed())
	// Output: in flight: 0 started: 2 failed: 1
}

// A unary call is timed with BeginUnary and the End of the Call it returns;
// its latency feeds Snapshot.Latency, NoLoadLatency and Queueing. A stream
// is counted with Begin and End: its lifetime is not a latency.
func ExampleCalls_BeginUnary() {
	var c load.Calls
	handle := func() (err error) {
		call := c.BeginUnary()
		defer func() { call.End(err != nil) }()
		return nil
	}
	_ = handle()
	fmt.Println("in flight:", c.InFlight(), "started:", c.Started())
	// Output: in flight: 0 started: 1
}

// The queueing thresholds are validated like every other field.
func ExampleConfig_Validate_queueing() {
	fmt.Println(load.Config{QueueingEnter: 0.4, QueueingExit: 0.5}.Validate())
	// Output: load: QueueingExit must be above 0 and below QueueingEnter (0.4) (0 means two thirds of it), got 0.5
}
