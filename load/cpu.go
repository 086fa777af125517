package load

import (
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"runtime"
	"time"
)

// cgroupCPU reads CPU utilization of a cgroup v2 CPU limit: the CPU time
// the limited cgroup used (cpu.stat usage_usec) over the time its quota
// allows (cpu.max). It re-reads cpu.max every time, so an in-place resize
// of the limit is followed.
//
// It measures the cgroup that holds the tightest quota, not only this
// process: the kernel throttles that whole cgroup when it exceeds the
// quota, so its usage is what says how close this process is to being
// throttled. In a container it is the container itself.
type cgroupCPU struct {
	// Immutable:
	fsys  fs.FS
	dir   string  // cgroup directory holding the limit
	ncpu  float64 // CPUs the process may run on (runtime.NumCPU)
	clock func() time.Time

	// Owned by the sampler goroutine:
	lastUsage uint64 // usage_usec
	lastAt    time.Time
}

func newCgroupCPU(fsys fs.FS, dir string, clock func() time.Time) (*cgroupCPU, error) {
	c := &cgroupCPU{fsys: fsys, dir: dir, ncpu: float64(runtime.NumCPU()), clock: clock}
	u, err := c.usage()
	if err != nil {
		return nil, err
	}
	c.lastUsage, c.lastAt = u, clock()
	return c, nil
}

func (c *cgroupCPU) usage() (uint64, error) {
	name := path.Join(c.dir, "cpu.stat")
	data, err := fs.ReadFile(c.fsys, name)
	if err != nil {
		return 0, err
	}
	return parseKeyedUint(name, data, "usage_usec")
}

// allowance is the quota in CPUs, capped by the CPUs the process may run on
// (a quota of 8 CPUs on a 2-CPU machine allows 2).
func (c *cgroupCPU) allowance() (float64, error) {
	name := path.Join(c.dir, "cpu.max")
	data, err := fs.ReadFile(c.fsys, name)
	if err != nil {
		return 0, err
	}
	cpus, limited, err := parseCPUMax(data)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	if !limited || cpus > c.ncpu {
		return c.ncpu, nil
	}
	return cpus, nil
}

func (c *cgroupCPU) Read() (float64, error) {
	allow, err := c.allowance()
	if err != nil {
		return 0, err
	}
	u, err := c.usage()
	if err != nil {
		return 0, err
	}
	now := c.clock()
	prevUsage, prevAt := c.lastUsage, c.lastAt
	c.lastUsage, c.lastAt = u, now
	if u < prevUsage {
		return 0, fmt.Errorf("load: %s: usage_usec went backwards", path.Join(c.dir, "cpu.stat"))
	}
	dt := now.Sub(prevAt)
	if dt <= 0 {
		return 0, fmt.Errorf("load: cgroup CPU read twice at the same instant")
	}
	usedSec := float64(u-prevUsage) / 1e6
	return usedSec / dt.Seconds() / allow, nil
}

func (c *cgroupCPU) String() string {
	return fmt.Sprintf("cgroup v2 %s (cpu.stat over cpu.max)", "/"+path.Clean(c.dir))
}

// processCPU reads CPU utilization as this process's own CPU time (user +
// system, all threads) over the CPUs it may use: min(runtime.NumCPU(),
// runtime.GOMAXPROCS(0)).
//
// Why those CPUs: NumCPU is the CPUs the OS lets the process run on (its
// affinity mask), and GOMAXPROCS caps how many of them run Go code at once.
// Go 1.25+ sets GOMAXPROCS from the cgroup CPU limit (v1 and v2, rounded up)
// and updates it when the limit changes, so under a limit this code cannot
// read (cgroup v1) the denominator still follows the limit; a GOMAXPROCS
// set lower by the operator is a limit too. It is re-read every time.
type processCPU struct {
	// Immutable:
	cpuTime func() (time.Duration, error)
	clock   func() time.Time
	procs   func() float64

	// Owned by the sampler goroutine:
	lastCPU time.Duration
	lastAt  time.Time
}

func newProcessCPU(cpuTime func() (time.Duration, error), clock func() time.Time) (*processCPU, error) {
	p := &processCPU{cpuTime: cpuTime, clock: clock, procs: processCPUs}
	t, err := cpuTime()
	if err != nil {
		return nil, err
	}
	p.lastCPU, p.lastAt = t, clock()
	return p, nil
}

// processCPUs is min(NumCPU, GOMAXPROCS); see processCPU.
func processCPUs() float64 {
	return float64(min(runtime.NumCPU(), runtime.GOMAXPROCS(0)))
}

func (p *processCPU) Read() (float64, error) {
	t, err := p.cpuTime()
	if err != nil {
		return 0, err
	}
	now := p.clock()
	dc, dt := t-p.lastCPU, now.Sub(p.lastAt)
	p.lastCPU, p.lastAt = t, now
	if dc < 0 {
		return 0, fmt.Errorf("load: process CPU time went backwards")
	}
	if dt <= 0 {
		return 0, fmt.Errorf("load: process CPU read twice at the same instant")
	}
	return float64(dc) / float64(dt) / p.procs(), nil
}

func (p *processCPU) String() string {
	return fmt.Sprintf("process CPU time over min(NumCPU, GOMAXPROCS) = %v CPUs", p.procs())
}

// defaultCPU picks the production CPU reading: the cgroup v2 limit if the
// process has one, else the process's own CPU time. A cgroup v2 hierarchy
// that cannot be read (a malformed cpu.max) is logged and the process's
// CPU time is used instead.
func defaultCPU(fsys fs.FS, clock func() time.Time, log *slog.Logger) (Source, error) {
	if cg, err := findCgroupV2(fsys); err == nil {
		dir, _, limited, err := cg.cpuLimit()
		if err == nil && limited {
			var src Source
			if src, err = newCgroupCPU(fsys, dir, clock); err == nil {
				return src, nil
			}
		}
		if err != nil {
			log.Warn("load: cannot read the cgroup v2 CPU limit; using the process's CPU time", "err", err)
		}
	}
	cpuTime, err := processCPUTime()
	if err != nil {
		return nil, err
	}
	return newProcessCPU(cpuTime, clock)
}
