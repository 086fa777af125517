package grpcmgmt

import (
	"github.com/grpcmgmt/grpcmgmt/internal/component"
)

// Interceptor order of the levers: lower runs first. Shedding runs before the
// call counter so that shed calls do not count as load; ORCA runs after it so
// its per-call report sees the call counted.
const (
	orderMaxAge   = 0
	orderGoAway   = 5
	orderLoadShed = 10
	counterOrder  = 20
	orderHealth   = 30
	orderORCA     = 40
)

// defaultFeatures are enabled unless Without names them. One line per lever.
var defaultFeatures = []*component.Factory{
	maxAgeFactory(defaultMaxAge()),
	goAwayFactory(defaultGoAway()),
	healthFactory(defaultHealth()),
	orcaFactory(defaultORCA()),
}
