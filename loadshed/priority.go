package loadshed

import (
	"fmt"
	"strings"
)

// Priority is a call's criticality. Under overload lower priorities are shed
// first: each priority sees every limit scaled by its share (see Share).
//
// The four levels are those of Google's "criticality" (Site Reliability
// Engineering, ch. 21 "Handling Overload"): CRITICAL_PLUS, CRITICAL (the
// default), SHEDDABLE_PLUS and SHEDDABLE.
type Priority uint8

// The priorities, lowest first. The zero value is Sheddable; a call with no
// header and no method entry gets Config.DefaultPriority (Critical unless
// set).
const (
	Sheddable Priority = iota
	SheddablePlus
	Critical
	CriticalPlus

	numPriorities = 4
)

// DefaultPriorityHeader is the metadata key suggested for a client to say
// how critical a call is, with one of the values "critical_plus",
// "critical", "sheddable_plus", "sheddable" (case-insensitive; "-" may stand
// for "_"). It is read only where Config.PriorityHeader names it: a server
// reads no header unless told to, because a header is the client's own
// claim (any client could send critical_plus) and standard clients send
// none. Unknown values are ignored (the call gets its method's or the
// default priority).
const DefaultPriorityHeader = "grpcmgmt-criticality"

// NoHeader as Config.PriorityHeader makes the Shedder ignore request
// metadata and take priorities from Config.Methods only, as the default
// (empty) does; it is kept so that configurations that set it explicitly
// still read as meant.
const NoHeader = "-"

var priorityNames = [numPriorities]string{"sheddable", "sheddable_plus", "critical", "critical_plus"}

// String returns the priority's name as used in the header and in metrics.
func (p Priority) String() string {
	if p < numPriorities {
		return priorityNames[p]
	}
	return fmt.Sprintf("Priority(%d)", uint8(p))
}

// Share is the fraction of every limit a priority may use: a call of
// priority p is admitted while in-flight < limit × Share(p), and the CPU
// limit starts shedding it at CPUThreshold × Share(p) (capped at 1). So when
// a limit is reached, Sheddable calls are shed first (at 80 %), then
// SheddablePlus (90 %), then Critical (100 %); CriticalPlus calls may go 10 %
// beyond a concurrency limit and are shed by the CPU limit only when the CPU
// is saturated.
func (p Priority) Share() float64 {
	switch p {
	case Sheddable:
		return 0.8
	case SheddablePlus:
		return 0.9
	case CriticalPlus:
		return 1.1
	}
	return 1.0
}

// ParsePriority parses a priority name as sent in the priority header
// (Config.PriorityHeader).
func ParsePriority(s string) (Priority, bool) {
	for p, name := range priorityNames {
		if equalName(s, name) {
			return Priority(p), true
		}
	}
	return 0, false
}

// equalName compares case-insensitively, '-' matching '_', without
// allocating.
func equalName(s, name string) bool {
	if len(s) != len(name) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c == '-' {
			c = '_'
		}
		if c != name[i] {
			return false
		}
	}
	return true
}

// Methods never shed and never counted: health checks must answer under
// overload (a failing health check takes the replica out entirely, which is
// worse than shedding), and ORCA out-of-band reports are how clients learn
// that this replica is loaded.
const (
	healthService = "/grpc.health.v1.Health/"
	orcaService   = "/xds.service.orca.v3.OpenRcaService/"
)

// serviceOf returns "/pkg.Service/" for "/pkg.Service/Method" (a substring:
// no allocation), or "" if fullMethod has no second slash.
func serviceOf(fullMethod string) string {
	i := strings.LastIndexByte(fullMethod, '/')
	if i <= 0 {
		return ""
	}
	return fullMethod[:i+1]
}
