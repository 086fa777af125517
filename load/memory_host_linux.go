package load

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// hostMemory reads the host's memory in use, 1 - MemAvailable/MemTotal,
// from /proc/meminfo. MemAvailable is the kernel's estimate of memory that
// can be given to new work without swapping, so like the cgroup working set
// it leaves reclaimable cache out. On Linux this is all gopsutil's
// mem.VirtualMemory would read for it, so Linux binaries do not link
// gopsutil (issue 14); other platforms use it (memory_host_other.go).
//
// It keeps /proc/meminfo open and reads it again from offset 0 each time
// (the kernel writes the text afresh for every read from the start), into
// a buffer it keeps, and parses the few fields it needs in place. With
// os.ReadFile (open, stat, read, close) and a map of every line, a whole
// sample cost 22 µs and 126 allocations on the machine this was written on
// (BenchmarkSampleDefaultSources), 94 % of it here, four times a second
// for the life of the process; now 4 µs and 1 allocation (the Snapshot).
// The Sampler that made it closes it.
type hostMemory struct {
	mu     sync.Mutex
	f      *os.File // nil until the first Read, and after a failed one
	buf    []byte
	closed bool
}

func newHostMemory() *hostMemory { return &hostMemory{} }

func (h *hostMemory) Read() (float64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return 0, errors.New("load: host memory reading closed")
	}
	if h.f == nil {
		f, err := os.Open("/proc/meminfo")
		if err != nil {
			return 0, err
		}
		h.f = f
		if h.buf == nil {
			h.buf = make([]byte, 4096)
		}
	}
	for {
		n, err := h.f.ReadAt(h.buf, 0)
		if err != nil && err != io.EOF {
			_ = h.f.Close()
			h.f = nil
			return 0, err
		}
		if n < len(h.buf) {
			return parseMeminfo(h.buf[:n])
		}
		// The text may not have fitted: read it again with room to spare.
		h.buf = make([]byte, 2*len(h.buf))
	}
}

// Close closes /proc/meminfo; Read fails after it.
func (h *hostMemory) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	if h.f == nil {
		return nil
	}
	err := h.f.Close()
	h.f = nil
	return err
}

func (*hostMemory) String() string { return "host memory (/proc/meminfo: 1 - MemAvailable/MemTotal)" }

// parseMeminfo returns 1 - available/total from /proc/meminfo's text. A
// kernel older than 3.14 has no MemAvailable: available is then MemFree +
// Buffers + Cached, as gopsutil estimates it. It allocates only for an
// error.
func parseMeminfo(data []byte) (float64, error) {
	var total, avail, free, buffers, cached uint64
	haveTotal, haveAvail := false, false
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		key, rest, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		var dst *uint64
		switch string(key) { // compared without a conversion
		case "MemTotal":
			dst, haveTotal = &total, true
		case "MemAvailable":
			dst, haveAvail = &avail, true
		case "MemFree":
			dst = &free
		case "Buffers":
			dst = &buffers
		case "Cached":
			dst = &cached
		default:
			continue
		}
		n, ok := parseKB(rest)
		if !ok {
			return 0, fmt.Errorf("load: /proc/meminfo %s: not a number: %q", key, bytes.TrimSpace(rest))
		}
		*dst = n
	}
	if !haveTotal || total == 0 {
		return 0, errors.New("load: /proc/meminfo has no MemTotal")
	}
	if !haveAvail {
		avail = free + buffers + cached
	}
	return 1 - float64(min(avail, total))/float64(total), nil
}

// parseKB parses the number that starts a /proc/meminfo value ("  1234 kB").
func parseKB(b []byte) (uint64, bool) {
	b = bytes.TrimLeft(b, " \t")
	var n uint64
	i := 0
	for ; i < len(b) && '0' <= b[i] && b[i] <= '9'; i++ {
		if n > (1<<64-1)/10 {
			return 0, false
		}
		n = n*10 + uint64(b[i]-'0')
	}
	if i == 0 || (i < len(b) && b[i] != ' ' && b[i] != '\t') {
		return 0, false
	}
	return n, true
}
