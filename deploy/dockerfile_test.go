package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// dockerStage is one FROM ... stage of a Dockerfile.
type dockerStage struct {
	from, name string
	lines      []string // instructions after FROM, continuation lines joined
}

// readDockerfile splits the Dockerfile into its global ARGs and stages.
func readDockerfile(t testing.TB) (globalArgs []string, stages []dockerStage) {
	t.Helper()
	data, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	return parseDockerfile(t, string(data))
}

// parseDockerfile splits Dockerfile text into its global ARGs and stages.
func parseDockerfile(t testing.TB, data string) (globalArgs []string, stages []dockerStage) {
	t.Helper()
	var logical []string
	cur := ""
	for _, l := range strings.Split(data, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasSuffix(l, "\\") {
			cur += strings.TrimSuffix(l, "\\") + " "
			continue
		}
		logical = append(logical, cur+l)
		cur = ""
	}
	for _, l := range logical {
		instr, rest, _ := strings.Cut(l, " ")
		switch strings.ToUpper(instr) {
		case "FROM":
			f := strings.Fields(rest)
			s := dockerStage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			}
			stages = append(stages, s)
		default:
			if len(stages) == 0 {
				globalArgs = append(globalArgs, l)
			} else {
				stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, l)
			}
		}
	}
	if len(stages) < 2 {
		t.Fatalf("%s: %d stages, want a multi-stage build", dockerfile, len(stages))
	}
	return globalArgs, stages
}

// instruction returns the arguments of the last instr in stage s.
func (s dockerStage) instruction(instr string) (string, bool) {
	val, ok := "", false
	for _, l := range s.lines {
		if i, rest, _ := strings.Cut(l, " "); strings.EqualFold(i, instr) {
			val, ok = strings.TrimSpace(rest), true
		}
	}
	return val, ok
}

// dockerfileUser returns the numeric uid the final image runs as.
func dockerfileUser(t testing.TB) int64 {
	t.Helper()
	_, stages := readDockerfile(t)
	return finalUser(t, stages)
}

func finalUser(t testing.TB, stages []dockerStage) int64 {
	t.Helper()
	final := stages[len(stages)-1]
	user, ok := final.instruction("USER")
	if !ok {
		t.Fatal("the final stage has no USER: the image would run as root")
	}
	uid, err := strconv.ParseInt(strings.Split(user, ":")[0], 10, 64)
	if err != nil {
		t.Fatalf("USER %s: use a numeric uid so the kubelet can verify runAsNonRoot", user)
	}
	if uid == 0 {
		t.Fatal("USER is root")
	}
	return uid
}

func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	checkDockerfile(t, string(data), loadFleet(t))
}

func checkDockerfile(t testing.TB, text string, f *fleet) {
	globalArgs, stages := parseDockerfile(t, text)
	build, final := stages[0], stages[len(stages)-1]

	if !strings.HasPrefix(final.from, "gcr.io/distroless/static") && final.from != "scratch" {
		t.Errorf("final stage FROM %s: want distroless static or scratch", final.from)
	}
	entry, ok := final.instruction("ENTRYPOINT")
	if !ok || !strings.HasPrefix(entry, "[") {
		t.Errorf("final stage ENTRYPOINT %q: want the exec form [\"/app\"] (there is no shell to run the other form)", entry)
	}
	finalUser(t, stages)

	// The build stage compiles examples/${CMD} statically, in the examples
	// module (examples/go.mod), after downloading both modules' dependencies.
	run := strings.Join(build.lines, "\n")
	for _, want := range []string{"CGO_ENABLED=0", "cd examples && CGO_ENABLED=0 go build", "./${CMD}",
		"COPY go.mod go.sum", "COPY examples/go.mod examples/go.sum"} {
		if !strings.Contains(run, want) {
			t.Errorf("build stage does not contain %q", want)
		}
	}

	// The Go version of the build image must be at least the module's.
	goVersion := ""
	for _, a := range globalArgs {
		if v, ok := strings.CutPrefix(a, "ARG GO_VERSION="); ok {
			goVersion = v
		}
	}
	mod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+)\.(\d+)`).FindStringSubmatch(string(mod))
	if m == nil {
		t.Fatal("no go directive in the module's go.mod")
	}
	if goVersion == "" || !versionAtLeast(goVersion, m[1]+"."+m[2]) {
		t.Errorf("ARG GO_VERSION=%q: want >= %s.%s (go.mod)", goVersion, m[1], m[2])
	}

	// Every image a manifest runs is one CMD of this Dockerfile:
	// grpcmgmt-<cmd>:<tag> built from examples/<cmd>.
	for _, d := range []string{serverDeployment, clientDeployment} {
		dep := f.server
		if d == clientDeployment {
			dep = f.client
		}
		for _, c := range dep.Spec.Template.Spec.Containers {
			name, _, _ := strings.Cut(c.Image, ":")
			cmd, ok := strings.CutPrefix(name, "grpcmgmt-")
			if !ok {
				t.Errorf("%s/%s: image %s is not one this Dockerfile builds (grpcmgmt-<server|client>)", d, c.Name, c.Image)
				continue
			}
			if _, err := os.Stat(filepath.Join(repoRoot, "examples", cmd, "main.go")); err != nil {
				t.Errorf("%s/%s: image %s: no examples/%s to build it from", d, c.Name, c.Image, cmd)
			}
		}
	}

	ignore, err := os.ReadFile(dockerignore)
	if err != nil {
		t.Fatalf("%v (BuildKit reads it for %s)", err, dockerfile)
	}
	for _, want := range []string{".git", "test/node/node_modules"} {
		if !strings.Contains(string(ignore), want) {
			t.Errorf("%s does not exclude %s from the build context", dockerignore, want)
		}
	}
}

func versionAtLeast(have, want string) bool {
	h, w := strings.Split(have, "."), strings.Split(want, ".")
	for i := range w {
		if i >= len(h) {
			return false
		}
		hn, err1 := strconv.Atoi(h[i])
		wn, err2 := strconv.Atoi(w[i])
		if err1 != nil || err2 != nil {
			return false
		}
		if hn != wn {
			return hn > wn
		}
	}
	return true
}

// TestGuideNamesEveryManifest keeps docs/kubernetes.md's file table in step
// with the directory.
func TestGuideNamesEveryManifest(t *testing.T) {
	guide, err := os.ReadFile(kubernetesDoc)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(manifestDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.Contains(string(guide), "`"+e.Name()+"`") {
			t.Errorf("%s does not describe %s", kubernetesDoc, filepath.Join(manifestDir, e.Name()))
		}
	}
}
