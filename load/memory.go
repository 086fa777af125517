package load

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
)

// cgroupMemory reads memory utilization of a cgroup v2 memory limit: the
// working set of the limited cgroup over memory.max. The working set is
// memory.current less inactive_file (memory.stat), as the kubelet computes
// it for eviction: inactive page cache is reclaimed before the OOM killer
// runs, so counting it would report a busy file cache as memory pressure.
// memory.max is re-read every time, so an in-place resize is followed.
type cgroupMemory struct {
	fsys fs.FS
	dir  string // cgroup directory holding the limit
}

func (c cgroupMemory) Read() (float64, error) {
	name := path.Join(c.dir, "memory.max")
	data, err := fs.ReadFile(c.fsys, name)
	if err != nil {
		return 0, err
	}
	limit, limited, err := parseMemoryMax(data)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	if !limited {
		return 0, fmt.Errorf("load: %s: the limit was removed", name)
	}
	name = path.Join(c.dir, "memory.current")
	if data, err = fs.ReadFile(c.fsys, name); err != nil {
		return 0, err
	}
	current, err := parseSingleUint(name, data)
	if err != nil {
		return 0, err
	}
	var inactive uint64
	name = path.Join(c.dir, "memory.stat")
	if data, err = fs.ReadFile(c.fsys, name); err == nil {
		inactive, _ = parseKeyedUint(name, data, "inactive_file")
	} else if !errors.Is(err, fs.ErrNotExist) {
		return 0, err
	}
	ws := current - min(inactive, current)
	return float64(ws) / float64(limit), nil
}

func (c cgroupMemory) String() string {
	return fmt.Sprintf("cgroup v2 %s (memory.current - inactive_file over memory.max)", "/"+path.Clean(c.dir))
}

// defaultMemory picks the production memory reading: the cgroup v2 limit
// if the process has one, else the host's memory.
func defaultMemory(fsys fs.FS, log *slog.Logger) Source {
	if cg, err := findCgroupV2(fsys); err == nil {
		dir, _, limited, err := cg.memoryLimit()
		if err != nil {
			log.Warn("load: cannot read the cgroup v2 memory limit; using host memory", "err", err)
		} else if limited {
			return cgroupMemory{fsys: fsys, dir: dir}
		}
	}
	return newHostMemory()
}
