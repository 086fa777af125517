//go:build !linux

package load

import (
	"errors"

	"github.com/shirou/gopsutil/v4/mem"
)

// hostMemory reads the host's memory in use, 1 - available/total, from
// gopsutil (Linux reads /proc/meminfo itself: memory_host_linux.go).
// "Available" is the kernel's estimate of memory that can be given to new
// work without swapping, so like the cgroup working set it leaves
// reclaimable cache out.
type hostMemory struct{}

func newHostMemory() hostMemory { return hostMemory{} }

func (hostMemory) Read() (float64, error) {
	v, err := mem.VirtualMemory()
	if err != nil {
		return 0, err
	}
	if v.Total == 0 {
		return 0, errors.New("load: host memory total is 0")
	}
	return 1 - float64(min(v.Available, v.Total))/float64(v.Total), nil
}

func (hostMemory) String() string { return "host memory (gopsutil: 1 - available/total)" }
