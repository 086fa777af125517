package cluster

import (
	"path/filepath"
	"testing"
)

// The library, examples/ and bench/ are three modules (issue 14): a
// package path from the repository root runs in its own module's
// directory.
func TestModuleOf(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ pkg, dir, rel string }{
		{"./loadshed/", ".", "./loadshed/"},
		{"./examples/server", "examples", "./server"},
		{"./bench/cmd/peerserver", "bench", "./cmd/peerserver"},
		{"./bench/overhead", "bench", "./overhead"},
		{"./bench/peers/", "bench", "./peers/"},
	} {
		dir, rel, err := moduleOf(root, tc.pkg)
		if err != nil {
			t.Errorf("moduleOf(%q): %v", tc.pkg, err)
			continue
		}
		if want := filepath.Join(root, tc.dir); dir != want || rel != tc.rel {
			t.Errorf("moduleOf(%q) = %s, %s; want %s, %s", tc.pkg, dir, rel, want, tc.rel)
		}
	}
}
