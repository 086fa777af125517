//go:build !unix

package load

import (
	"os"
	"time"

	"github.com/shirou/gopsutil/v4/process"
)

// gopsutilCPUTime returns a reader of this process's CPU time (user +
// system) as gopsutil reads it. It is the reading on platforms without
// getrusage; on Unix the tests build the same reader from
// cputime_gopsutil_unix_test.go, to check getrusage against it, and
// binaries do not link gopsutil's process package.
func gopsutilCPUTime() (func() (time.Duration, error), error) {
	self, err := process.NewProcess(int32(os.Getpid()))
	if err != nil {
		return nil, err
	}
	return func() (time.Duration, error) {
		t, err := self.Times()
		if err != nil {
			return 0, err
		}
		return time.Duration((t.User + t.System) * float64(time.Second)), nil
	}, nil
}
