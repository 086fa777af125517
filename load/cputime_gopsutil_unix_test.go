//go:build unix

package load

import (
	"os"
	"time"

	"github.com/shirou/gopsutil/v4/process"
)

// gopsutilCPUTime is cputime_gopsutil.go's reader (the production one where
// getrusage is missing), built for the tests on Unix, where the production
// reading is getrusage: TestProcessCPUTimeReaders and TestRealCPUReading
// check it against this independent one.
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
