package load

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fixture is the root of a fake file system under testdata/: its
// proc/self/{cgroup,mountinfo} and sys/fs/cgroup (or another mount point).
func fixture(name string) string { return filepath.Join("testdata", name) }

func TestFindCgroupV2(t *testing.T) {
	tests := []struct {
		fixture string
		want    []string // nil: errNoCgroupV2
	}{
		{"v2-parent-limit", []string{"sys/fs/cgroup/kubepods/pod1/ctr", "sys/fs/cgroup/kubepods/pod1", "sys/fs/cgroup/kubepods", "sys/fs/cgroup"}},
		{"v2-namespace-root", []string{"sys/fs/cgroup"}},
		{"v2-no-limit", []string{"sys/fs/cgroup/user.slice/user-1000.slice/session-2.scope", "sys/fs/cgroup/user.slice/user-1000.slice", "sys/fs/cgroup/user.slice", "sys/fs/cgroup"}},
		{"v2-bind-root", []string{"run/my cgroup/my app.service", "run/my cgroup"}},
		{"v1-hybrid", []string{"sys/fs/cgroup/unified"}},
		{"v1-only", nil},
		{"missing", nil},
		{"garbage-proc", nil},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			cg, err := findCgroupV2(os.DirFS(fixture(tt.fixture)))
			if tt.want == nil {
				if !errors.Is(err, errNoCgroupV2) {
					t.Fatalf("findCgroupV2 = %v, %v; want errNoCgroupV2", cg.dirs, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("findCgroupV2: %v", err)
			}
			if diff := cmp.Diff(cg.dirs, tt.want); diff != "" {
				t.Errorf("dirs (-got +want):\n%s", diff)
			}
		})
	}
}

func TestCgroupLimits(t *testing.T) {
	tests := []struct {
		fixture                string
		cpuDir                 string
		cpus                   float64
		cpuLimited             bool
		memDir                 string
		memBytes               uint64
		memLimited             bool
		wantCPUErr, wantMemErr string // substrings; "" means no error
	}{
		// The tightest level wins: 1.5 CPUs on pod1 over 4 on kubepods and
		// none on ctr; 512 MiB on pod1 over 8 GiB on kubepods.
		{fixture: "v2-parent-limit", cpuDir: "sys/fs/cgroup/kubepods/pod1", cpus: 1.5, cpuLimited: true,
			memDir: "sys/fs/cgroup/kubepods/pod1", memBytes: 512 << 20, memLimited: true},
		{fixture: "v2-namespace-root", cpuDir: "sys/fs/cgroup", cpus: 0.5, cpuLimited: true,
			memDir: "sys/fs/cgroup", memBytes: 1 << 30, memLimited: true},
		{fixture: "v2-no-limit"},
		{fixture: "v2-bind-root", cpuDir: "run/my cgroup/my app.service", cpus: 2, cpuLimited: true},
		{fixture: "v1-hybrid"},
		{fixture: "garbage", wantCPUErr: `quota must be "max" or a positive integer, got "lots"`,
			wantMemErr: `memory.max: want "max" or a positive integer, got "-1"`},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			cg, err := findCgroupV2(os.DirFS(fixture(tt.fixture)))
			if err != nil {
				t.Fatalf("findCgroupV2: %v", err)
			}
			dir, cpus, limited, err := cg.cpuLimit()
			if !errMatches(err, tt.wantCPUErr) {
				t.Errorf("cpuLimit error = %v, want %q", err, tt.wantCPUErr)
			}
			if dir != tt.cpuDir || cpus != tt.cpus || limited != tt.cpuLimited {
				t.Errorf("cpuLimit = %q, %v, %v; want %q, %v, %v", dir, cpus, limited, tt.cpuDir, tt.cpus, tt.cpuLimited)
			}
			mdir, bytes, mlimited, err := cg.memoryLimit()
			if !errMatches(err, tt.wantMemErr) {
				t.Errorf("memoryLimit error = %v, want %q", err, tt.wantMemErr)
			}
			if mdir != tt.memDir || bytes != tt.memBytes || mlimited != tt.memLimited {
				t.Errorf("memoryLimit = %q, %v, %v; want %q, %v, %v", mdir, bytes, mlimited, tt.memDir, tt.memBytes, tt.memLimited)
			}
		})
	}
}

func errMatches(err error, want string) bool {
	if want == "" {
		return err == nil
	}
	return err != nil && strings.Contains(err.Error(), want)
}

func TestParseCPUMax(t *testing.T) {
	tests := []struct {
		in      string
		cpus    float64
		limited bool
		err     bool
	}{
		{in: "max 100000\n"},
		{in: "max"},
		{in: "150000 100000\n", cpus: 1.5, limited: true},
		{in: "50000 100000", cpus: 0.5, limited: true},
		{in: "200000", cpus: 2, limited: true}, // period defaults to 100000
		{in: "1000 1000", cpus: 1, limited: true},
		{in: "", err: true},
		{in: "\n", err: true},
		{in: "lots 100000", err: true},
		{in: "0 100000", err: true},
		{in: "-5 100000", err: true},
		{in: "100000 0", err: true},
		{in: "100000 -1", err: true},
		{in: "max abc", err: true},
		{in: "1 2 3", err: true},
		{in: "18446744073709551616 100000", err: true},
		{in: "1.5 100000", err: true},
	}
	for _, tt := range tests {
		cpus, limited, err := parseCPUMax([]byte(tt.in))
		if (err != nil) != tt.err || cpus != tt.cpus || limited != tt.limited {
			t.Errorf("parseCPUMax(%q) = %v, %v, %v; want %v, %v, error %v", tt.in, cpus, limited, err, tt.cpus, tt.limited, tt.err)
		}
	}
}

func TestParseMemoryMax(t *testing.T) {
	tests := []struct {
		in      string
		n       uint64
		limited bool
		err     bool
	}{
		{in: "max\n"},
		{in: "536870912\n", n: 536870912, limited: true},
		{in: "", err: true},
		{in: "-1", err: true},
		{in: "0", err: true},
		{in: "1.5G", err: true},
		{in: "max max", err: true},
	}
	for _, tt := range tests {
		n, limited, err := parseMemoryMax([]byte(tt.in))
		if (err != nil) != tt.err || n != tt.n || limited != tt.limited {
			t.Errorf("parseMemoryMax(%q) = %v, %v, %v; want %v, %v, error %v", tt.in, n, limited, err, tt.n, tt.limited, tt.err)
		}
	}
}

func TestParseKeyedUint(t *testing.T) {
	data := []byte("usage_usec 123456789\nuser_usec 100\nsystem_usec 7\n")
	if n, err := parseKeyedUint("cpu.stat", data, "usage_usec"); err != nil || n != 123456789 {
		t.Errorf("usage_usec = %v, %v; want 123456789", n, err)
	}
	for _, bad := range []string{"", "usage_usec", "usage_usec twelve\n", "usage_usec -3\n", "user_usec 5\n"} {
		if n, err := parseKeyedUint("cpu.stat", []byte(bad), "usage_usec"); err == nil {
			t.Errorf("parseKeyedUint(%q) = %v, nil; want an error", bad, n)
		}
	}
}

// FuzzCgroupParsers checks that no input makes a parser panic; the seeds
// run in every go test.
func FuzzCgroupParsers(f *testing.F) {
	for _, s := range []string{"max 100000", "150000 100000", "", "\x00\xff", "0::/a\n", "usage_usec 1",
		`36 35 98:0 /a /b\040c rw - cgroup2 x rw`, "- cgroup2", `\`, `\04`, `\777`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _, _ = parseCPUMax(data)
		_, _, _ = parseMemoryMax(data)
		_, _ = parseSingleUint("f", data)
		_, _ = parseKeyedUint("f", data, "usage_usec")
		for line := range strings.Lines(string(data)) {
			_, _, _ = parseCgroup2Mount(line)
		}
		_ = unescapeMountinfo(string(data))
	})
}

// TestCgroupCPURead drives the cgroup CPU reading over a directory whose
// cpu.stat and cpu.max the test rewrites, with an injected clock.
func TestCgroupCPURead(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("cpu.max", "100000 100000\n") // 1 CPU
	write("cpu.stat", "usage_usec 1000000\nuser_usec 1\n")
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	c, err := newCgroupCPU(os.DirFS(dir), ".", clock)
	if err != nil {
		t.Fatal(err)
	}
	step := func(d time.Duration, usage string) (float64, error) {
		now = now.Add(d)
		write("cpu.stat", "usage_usec "+usage+"\n")
		return c.Read()
	}
	// 250 ms of wall time, 125 ms of CPU, quota 1 CPU: 0.5.
	if v, err := step(250*time.Millisecond, "1125000"); err != nil || v != 0.5 {
		t.Errorf("1 CPU quota, 125ms over 250ms: %v, %v; want 0.5", v, err)
	}
	// Quota resized in place to 0.25 CPU: the same 125 ms is 2x the allowance.
	write("cpu.max", "25000 100000\n")
	if v, err := step(250*time.Millisecond, "1250000"); err != nil || v != 2 {
		t.Errorf("0.25 CPU quota, 125ms over 250ms: %v, %v; want 2", v, err)
	}
	// A quota above the CPUs the process may use is capped by them.
	write("cpu.max", "100000000 100000\n") // 1000 CPUs
	want := 0.5 / float64(runtime.NumCPU())
	if v, err := step(time.Second, "1750000"); err != nil || v != want {
		t.Errorf("1000 CPU quota: %v, %v; want %v (capped at NumCPU)", v, err, want)
	}
	// Garbage and a counter going backwards are errors, not panics.
	write("cpu.max", "100000 100000\n")
	if v, err := step(time.Second, "twelve"); err == nil {
		t.Errorf("garbage cpu.stat: %v, nil; want an error", v)
	}
	if v, err := step(time.Second, "5"); err == nil {
		t.Errorf("usage going backwards: %v, nil; want an error", v)
	}
	if v, err := step(time.Second, "500005"); err != nil || v != 0.5 {
		t.Errorf("after recovery: %v, %v; want 0.5", v, err)
	}
	write("cpu.max", "garbage\n")
	if v, err := step(time.Second, "600000"); err == nil {
		t.Errorf("garbage cpu.max: %v, nil; want an error", v)
	}
	if err := os.Remove(filepath.Join(dir, "cpu.stat")); err != nil {
		t.Fatal(err)
	}
	write("cpu.max", "max 100000\n")
	if v, err := c.Read(); err == nil {
		t.Errorf("missing cpu.stat: %v, nil; want an error", v)
	}
}

func TestCgroupMemoryRead(t *testing.T) {
	fsys := os.DirFS(fixture("v2-parent-limit"))
	cg, err := findCgroupV2(fsys)
	if err != nil {
		t.Fatal(err)
	}
	dir, _, _, err := cg.memoryLimit()
	if err != nil {
		t.Fatal(err)
	}
	// (256 MiB current - 128 MiB inactive_file) / 512 MiB.
	if v, err := (cgroupMemory{fsys: fsys, dir: dir}).Read(); err != nil || v != 0.25 {
		t.Errorf("working set: %v, %v; want 0.25", v, err)
	}
	// No memory.stat: memory.current as it is.
	fsys = os.DirFS(fixture("v2-namespace-root"))
	if v, err := (cgroupMemory{fsys: fsys, dir: "sys/fs/cgroup"}).Read(); err != nil || v != 1 {
		t.Errorf("namespace root: %v, %v; want 1", v, err)
	}
	fsys = os.DirFS(fixture("garbage"))
	if v, err := (cgroupMemory{fsys: fsys, dir: "sys/fs/cgroup/app"}).Read(); err == nil {
		t.Errorf("garbage: %v, nil; want an error", v)
	}
	fsys = os.DirFS(fixture("missing"))
	if v, err := (cgroupMemory{fsys: fsys, dir: "sys/fs/cgroup"}).Read(); err == nil {
		t.Errorf("missing: %v, nil; want an error", v)
	}
}

// hostMemoryType is the %T of the host memory reading on this platform.
var hostMemoryType = typeName(newHostMemory())

// TestDefaultSources checks which reading production picks for each
// fixture: the cgroup only under a limit, else the process and the host.
func TestDefaultSources(t *testing.T) {
	tests := []struct {
		fixture     string
		cpu, memory string // %T of the Source
	}{
		{"v2-parent-limit", "*load.cgroupCPU", "load.cgroupMemory"},
		{"v2-namespace-root", "*load.cgroupCPU", "load.cgroupMemory"},
		{"v2-no-limit", "*load.processCPU", hostMemoryType},
		{"v1-hybrid", "*load.processCPU", hostMemoryType},
		{"v1-only", "*load.processCPU", hostMemoryType},
		{"missing", "*load.processCPU", hostMemoryType},
		{"garbage", "*load.processCPU", hostMemoryType}, // logged, not fatal
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			fsys := os.DirFS(fixture(tt.fixture))
			cpu, err := defaultCPU(fsys, time.Now, discardLogger())
			if err != nil {
				t.Fatal(err)
			}
			if got := typeName(cpu); got != tt.cpu {
				t.Errorf("CPU source = %s, want %s", got, tt.cpu)
			}
			if got := typeName(defaultMemory(fsys, discardLogger())); got != tt.memory {
				t.Errorf("memory source = %s, want %s", got, tt.memory)
			}
		})
	}
}
