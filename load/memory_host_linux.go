package load

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
)

// hostMemory reads the host's memory in use, 1 - MemAvailable/MemTotal,
// from /proc/meminfo. MemAvailable is the kernel's estimate of memory that
// can be given to new work without swapping, so like the cgroup working set
// it leaves reclaimable cache out. On Linux this is all gopsutil's
// mem.VirtualMemory would read for it, so Linux binaries do not link
// gopsutil (issue 14); other platforms use it (memory_host_other.go).
type hostMemory struct{}

func (hostMemory) Read() (float64, error) {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	return parseMeminfo(data)
}

func (hostMemory) String() string { return "host memory (/proc/meminfo: 1 - MemAvailable/MemTotal)" }

// parseMeminfo returns 1 - available/total from /proc/meminfo's text. A
// kernel older than 3.14 has no MemAvailable: available is then MemFree +
// Buffers + Cached, as gopsutil estimates it.
func parseMeminfo(data []byte) (float64, error) {
	kb := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		key, rest, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseUint(string(f[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("load: /proc/meminfo %s: %v", key, err)
		}
		kb[string(key)] = n
	}
	total := kb["MemTotal"]
	if total == 0 {
		return 0, errors.New("load: /proc/meminfo has no MemTotal")
	}
	avail, ok := kb["MemAvailable"]
	if !ok {
		avail = kb["MemFree"] + kb["Buffers"] + kb["Cached"]
	}
	return 1 - float64(min(avail, total))/float64(total), nil
}
