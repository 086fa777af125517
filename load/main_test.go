package load_test

import (
	"testing"

	"github.com/grpcmgmt/grpcmgmt/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.VerifyTestMain(m) }
