package grpcmgmt_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestGoModRequiresOnlyTheLibrarysDependencies: with module graph pruning
// every module the library's go.mod requires, test-only ones included,
// shows in a consumer's `go list -m all` and takes part in its minimum
// version selection (issue 14). What only examples/ and bench/ use belongs
// in their own go.mod. make check-deps checks the same from a consumer's
// side (scripts/check-consumer-deps.sh).
func TestGoModRequiresOnlyTheLibrarysDependencies(t *testing.T) {
	b, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	forbidden := regexp.MustCompile(`prometheus|go-kratos/aegis|miekg/dns|go\.uber\.org/goleak|failsafe-go|shirou/gopsutil/v3`)
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "//") {
			continue
		}
		if m := forbidden.FindString(line); m != "" {
			t.Errorf("go.mod:%d: %q: the library must not require %s (move what needs it to examples/ or bench/)", i+1, line, m)
		}
	}
}
