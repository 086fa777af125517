//go:build !unix

package load

import "time"

// processCPUTime returns a reader of this process's CPU time, from gopsutil
// where getrusage is missing (Windows, Plan 9, wasm).
func processCPUTime() (func() (time.Duration, error), error) { return gopsutilCPUTime() }
