package doccheck

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestClientSnippetsAreTheTestedCode: the channel set-up that
// docs/clients.md shows for each language is, line for line, the code of
// the client the tests and scenarios run for that language (the region
// between "[START channel]" and "[END channel]" in its source).
func TestClientSnippetsAreTheTestedCode(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(root, "docs", "clients.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ lang, source string }{
		{"java", "test/java/LoadClient.java"},
		{"python", "test/python/load_client.py"},
	} {
		src, err := os.ReadFile(filepath.Join(root, tc.source))
		if err != nil {
			t.Fatal(err)
		}
		regions := markedRegions(t, string(src), tc.source)
		found := false
		for _, block := range fencedBlocks(string(doc), tc.lang) {
			all := true
			for _, r := range regions {
				all = all && strings.Contains(dedent(block), r)
			}
			found = found || all
		}
		if !found {
			t.Errorf("docs/clients.md has no %s block containing the channel code of %s:\n%s", tc.lang, tc.source, strings.Join(regions, "\n"))
		}
	}
}

// markedRegions returns the dedented lines strictly between each START
// and END channel marker pair of src.
func markedRegions(t *testing.T, src, name string) []string {
	t.Helper()
	var out []string
	start := -1
	lines := strings.Split(src, "\n")
	for i, l := range lines {
		switch {
		case strings.Contains(l, "[START channel]"):
			start = i + 1
		case strings.Contains(l, "[END channel]") && start >= 0:
			out = append(out, dedent(strings.Join(lines[start:i], "\n")))
			start = -1
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s: no [START channel] ... [END channel] region", name)
	}
	return out
}

// fencedBlocks returns the bodies of the ```lang blocks of md.
func fencedBlocks(md, lang string) []string {
	re := regexp.MustCompile("(?s)```" + regexp.QuoteMeta(lang) + "\n(.*?)```")
	var out []string
	for _, m := range re.FindAllStringSubmatch(md, -1) {
		out = append(out, m[1])
	}
	return out
}

// dedent removes the indentation common to every non-blank line and
// trailing blanks.
func dedent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n "), "\n")
	common := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, " \t"))
		if common < 0 || n < common {
			common = n
		}
	}
	for i, l := range lines {
		if len(l) >= common && common > 0 {
			lines[i] = l[common:]
		}
		lines[i] = strings.TrimRight(lines[i], " ")
	}
	return strings.Join(lines, "\n")
}
