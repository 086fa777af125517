package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// The example binaries, built once per test run from the parent module.
var built struct {
	once   sync.Once
	dir    string
	err    error
	output string
}

// binary returns the path of examples/<name> built in the examples module
// (examples/go.mod, which uses the library next to it), building both
// examples on first use.
func binary(t testing.TB, name string) string {
	t.Helper()
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "grpcmgmt-deploy-")
		if built.err != nil {
			return
		}
		// Readable by the pods' non-root uid, which the live test runs them as.
		if built.err = os.Chmod(built.dir, 0o755); built.err != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", built.dir+string(filepath.Separator), "./server", "./client")
		cmd.Dir = filepath.Join(repoRoot, "examples")
		out, err := cmd.CombinedOutput()
		built.err, built.output = err, string(out)
	})
	if built.err != nil {
		t.Fatalf("building the examples in %s: %v\n%s", repoRoot, built.err, built.output)
	}
	return filepath.Join(built.dir, name)
}

func removeBuilt() {
	if built.dir != "" {
		_ = os.RemoveAll(built.dir)
	}
}

// usage runs the binary with -h and parses the flags it prints.
func usage(t testing.TB, name string) map[string]Flag {
	t.Helper()
	bin := binary(t, name)
	// -h makes a flag.ContinueOnError program exit 1 and an ExitOnError one
	// exit 0; either way the flag list is on stderr.
	out, _ := exec.Command(bin, "-h").CombinedOutput()
	flags, err := ParseUsage(string(out))
	if err != nil {
		t.Fatalf("%s -h: %v", name, err)
	}
	return flags
}
