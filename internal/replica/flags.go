package replica

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// Flags registers the capacity flags of a replica on fs (-work, -workers,
// -wait, -wait-mix, -downstream) and returns a function that builds the
// Config (with name) once fs is parsed.
func Flags(fs *flag.FlagSet) func(name string) (Config, error) {
	work := fs.Duration("work", 0, "CPU burned per UnaryCall (capacity = workers / (work + wait))")
	workers := fs.Int("workers", 0, "calls holding a worker slot at once (0: unbounded)")
	wait := fs.Duration("wait", 0, "time waited per UnaryCall without CPU, inside the worker slot (a lock held across a slow disk)")
	mix := fs.String("wait-mix", "", "comma-separated waits, one chosen at random per call, replacing -wait (two methods: 0ms,49ms)")
	downstream := fs.Duration("downstream", 0, "time waited per UnaryCall before taking a worker slot, without limit (a call to another service)")
	return func(name string) (Config, error) {
		cfg := Config{Name: name, Work: *work, Workers: *workers, Wait: *wait, Downstream: *downstream}
		if err := checkDuration("-work", *work); err != nil {
			return Config{}, err
		}
		if *workers < 0 || *workers > 1<<20 {
			return Config{}, fmt.Errorf("-workers must be within 0..%d (0: unbounded), got %d", 1<<20, *workers)
		}
		if err := checkDuration("-wait", *wait); err != nil {
			return Config{}, err
		}
		if err := checkDuration("-downstream", *downstream); err != nil {
			return Config{}, err
		}
		if *mix != "" {
			for _, f := range strings.Split(*mix, ",") {
				d, err := time.ParseDuration(strings.TrimSpace(f))
				if err != nil {
					return Config{}, fmt.Errorf("-wait-mix: %w", err)
				}
				if err := checkDuration("-wait-mix", d); err != nil {
					return Config{}, err
				}
				cfg.WaitMix = append(cfg.WaitMix, d)
			}
		}
		return cfg, nil
	}
}

// checkDuration checks a per-call duration flag: within 0..1m.
func checkDuration(flag string, d time.Duration) error {
	if d < 0 || d > time.Minute {
		return fmt.Errorf("%s must be within 0..1m (0: none), got %v", flag, d)
	}
	return nil
}

// DriftOnSignal makes SIGUSR1 double the CPU burned per call, and the next
// SIGUSR1 restore it, and so on: a service whose calls get slower and
// faster again while it serves (the adaptive scenario's drift profile). It
// returns a function that stops listening.
func DriftOnSignal(s *Service) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR1)
	done := make(chan struct{})
	base := s.Work()
	go func() {
		doubled := false
		for {
			select {
			case <-ch:
				doubled = !doubled
				if doubled {
					s.SetWork(2 * base)
				} else {
					s.SetWork(base)
				}
			case <-done:
				return
			}
		}
	}()
	return func() { signal.Stop(ch); close(done) }
}
