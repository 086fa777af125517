package loadshed_test

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// github.com/go-kratos/aegis/ratelimit/bbr (a benchmark peer) starts
	// goroutines in init that can never be stopped.
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/go-kratos/aegis/ratelimit/bbr.cpuproc"),
		goleak.IgnoreAnyFunction("github.com/go-kratos/aegis/internal/cpu.init.0.func1"))
}
