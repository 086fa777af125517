package load

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// errNoCgroupV2 means this process is not in a cgroup v2 hierarchy this
// code can read (cgroup v1 only, no /proc, not Linux).
var errNoCgroupV2 = errors.New("load: no cgroup v2 hierarchy for this process")

// cgroupV2 is this process's place in the cgroup v2 hierarchy. Paths are
// relative to fsys (os.DirFS("/") in production, a testdata tree in tests).
type cgroupV2 struct {
	fsys fs.FS
	// dirs is the process's cgroup directory first, then each parent up to
	// and including the mount point of the hierarchy.
	dirs []string
}

// findCgroupV2 locates the cgroup v2 directory of this process from
// /proc/self/cgroup (the "0::PATH" line) and /proc/self/mountinfo (the
// cgroup2 mount whose root contains PATH). It reads nothing else.
func findCgroupV2(fsys fs.FS) (cgroupV2, error) {
	data, err := fs.ReadFile(fsys, "proc/self/cgroup")
	if err != nil {
		return cgroupV2{}, fmt.Errorf("%w: %v", errNoCgroupV2, err)
	}
	cgPath, ok := "", false
	for line := range strings.Lines(string(data)) {
		if p, found := strings.CutPrefix(strings.TrimRight(line, "\n"), "0::"); found {
			cgPath, ok = p, true
			break
		}
	}
	if !ok || !strings.HasPrefix(cgPath, "/") {
		return cgroupV2{}, fmt.Errorf("%w: no \"0::/...\" line in /proc/self/cgroup", errNoCgroupV2)
	}
	cgPath = path.Clean(cgPath)

	data, err = fs.ReadFile(fsys, "proc/self/mountinfo")
	if err != nil {
		return cgroupV2{}, fmt.Errorf("%w: %v", errNoCgroupV2, err)
	}
	for line := range strings.Lines(string(data)) {
		root, mountPoint, ok := parseCgroup2Mount(line)
		if !ok {
			continue
		}
		rel, ok := strings.CutPrefix(cgPath, root)
		if !ok || (root != "/" && rel != "" && !strings.HasPrefix(rel, "/")) {
			continue // PATH is outside this mount's root
		}
		top := strings.TrimPrefix(path.Clean(mountPoint), "/")
		if top == "" {
			top = "."
		}
		dir := path.Join(top, rel)
		cg := cgroupV2{fsys: fsys}
		for d := dir; ; d = path.Dir(d) {
			cg.dirs = append(cg.dirs, d)
			if d == top || d == "." || d == "/" {
				break
			}
		}
		return cg, nil
	}
	return cgroupV2{}, fmt.Errorf("%w: no cgroup2 mount in /proc/self/mountinfo", errNoCgroupV2)
}

// parseCgroup2Mount returns the root and mount point of a mountinfo line
// (proc(5)) if its file system type is cgroup2.
//
//	36 35 98:0 /root /mnt/point rw,noatime master:1 - cgroup2 cgroup2 rw
func parseCgroup2Mount(line string) (root, mountPoint string, ok bool) {
	fields := strings.Fields(line)
	sep := -1
	for i, f := range fields {
		if f == "-" && i >= 6 {
			sep = i
			break
		}
	}
	if sep < 0 || sep+1 >= len(fields) || fields[sep+1] != "cgroup2" {
		return "", "", false
	}
	return unescapeMountinfo(fields[3]), unescapeMountinfo(fields[4]), true
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) the kernel
// writes in mountinfo paths.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// cpuLimit is the tightest cpu.max quota on the process's cgroup or any
// parent: the directory that holds it and the CPUs it allows. limited is
// false when no level sets a quota (the root cgroup has no cpu.max, and a
// level without the cpu controller has none either).
func (c cgroupV2) cpuLimit() (dir string, cpus float64, limited bool, err error) {
	for _, d := range c.dirs {
		data, err := fs.ReadFile(c.fsys, path.Join(d, "cpu.max"))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", 0, false, err
		}
		n, lim, err := parseCPUMax(data)
		if err != nil {
			return "", 0, false, fmt.Errorf("%s: %w", path.Join(d, "cpu.max"), err)
		}
		if lim && (!limited || n < cpus) {
			dir, cpus, limited = d, n, true
		}
	}
	return dir, cpus, limited, nil
}

// memoryLimit is the tightest memory.max on the process's cgroup or any
// parent, like cpuLimit.
func (c cgroupV2) memoryLimit() (dir string, bytes uint64, limited bool, err error) {
	for _, d := range c.dirs {
		data, err := fs.ReadFile(c.fsys, path.Join(d, "memory.max"))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", 0, false, err
		}
		n, lim, err := parseMemoryMax(data)
		if err != nil {
			return "", 0, false, fmt.Errorf("%s: %w", path.Join(d, "memory.max"), err)
		}
		if lim && (!limited || n < bytes) {
			dir, bytes, limited = d, n, true
		}
	}
	return dir, bytes, limited, nil
}

// parseCPUMax parses cpu.max, "$MAX $PERIOD" (cgroup-v2.rst): the cgroup
// may use MAX microseconds of CPU per PERIOD microseconds, or any amount
// if MAX is "max". It returns the quota in CPUs.
func parseCPUMax(data []byte) (cpus float64, limited bool, err error) {
	f := strings.Fields(string(data))
	if len(f) < 1 || len(f) > 2 {
		return 0, false, fmt.Errorf("cpu.max: want \"$MAX $PERIOD\", got %q", data)
	}
	period := uint64(100000) // the kernel's default when only MAX was written
	if len(f) == 2 {
		if period, err = strconv.ParseUint(f[1], 10, 64); err != nil || period == 0 {
			return 0, false, fmt.Errorf("cpu.max: period must be a positive integer, got %q", f[1])
		}
	}
	if f[0] == "max" {
		return 0, false, nil
	}
	quota, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil || quota == 0 {
		return 0, false, fmt.Errorf("cpu.max: quota must be \"max\" or a positive integer, got %q", f[0])
	}
	return float64(quota) / float64(period), true, nil
}

// parseMemoryMax parses memory.max: a byte count or "max".
func parseMemoryMax(data []byte) (n uint64, limited bool, err error) {
	s := strings.TrimSpace(string(data))
	if s == "max" {
		return 0, false, nil
	}
	n, err = strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 {
		return 0, false, fmt.Errorf("memory.max: want \"max\" or a positive integer, got %q", s)
	}
	return n, true, nil
}

// parseSingleUint parses a file holding one unsigned integer
// (memory.current).
func parseSingleUint(name string, data []byte) (uint64, error) {
	s := strings.TrimSpace(string(data))
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: want an unsigned integer, got %q", name, s)
	}
	return n, nil
}

// parseKeyedUint returns the value of key in a flat keyed file ("key value"
// lines: cpu.stat, memory.stat).
func parseKeyedUint(name string, data []byte, key string) (uint64, error) {
	for line := range strings.Lines(string(data)) {
		k, v, ok := strings.Cut(strings.TrimRight(line, "\n"), " ")
		if !ok || k != key {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %s: want an unsigned integer, got %q", name, key, v)
		}
		return n, nil
	}
	return 0, fmt.Errorf("%s: no %q line", name, key)
}
