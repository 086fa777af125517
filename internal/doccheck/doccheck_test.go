// Package doccheck fails the build's tests when an exported identifier of
// the library has no doc comment, or a package has no doc.go.
package doccheck

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// root is the module root, two levels up from this package.
const root = "../.."

// libraryDirs are the packages whose exported API users read.
func libraryDirs(t *testing.T) []string {
	var dirs []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		switch {
		case rel == ".":
		case strings.HasPrefix(rel, ".") || strings.HasPrefix(rel, "internal") ||
			strings.Contains(rel, string(filepath.Separator)+"internal") ||
			strings.HasPrefix(rel, "examples") || strings.HasPrefix(rel, "bench") ||
			strings.HasPrefix(rel, "test") || strings.HasPrefix(rel, "deploy") ||
			strings.HasPrefix(rel, "docs") || strings.HasPrefix(rel, "scripts") ||
			strings.Contains(rel, "testdata") || strings.Contains(rel, "node_modules"):
			return filepath.SkipDir
		}
		matches, _ := filepath.Glob(filepath.Join(path, "*.go"))
		if len(matches) > 0 {
			dirs = append(dirs, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

func TestExportedIdentifiersHaveDocComments(t *testing.T) {
	for _, dir := range libraryDirs(t) {
		fset := token.NewFileSet()
		if _, err := os.Stat(filepath.Join(dir, "doc.go")); err != nil {
			t.Errorf("%s: package has no doc.go", dir)
		}
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, name := range files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			for _, decl := range f.Decls {
				checkDecl(t, fset, name, decl)
			}
		}
	}
}

func checkDecl(t *testing.T, fset *token.FileSet, file string, decl ast.Decl) {
	switch d := decl.(type) {
	case *ast.FuncDecl:
		if !d.Name.IsExported() || d.Doc != nil {
			return
		}
		if d.Recv != nil && !exportedRecv(d.Recv) {
			return
		}
		t.Errorf("%s: exported func %s has no doc comment", fset.Position(d.Pos()), d.Name.Name)
	case *ast.GenDecl:
		for _, spec := range d.Specs {
			switch s := spec.(type) {
			case *ast.TypeSpec:
				if s.Name.IsExported() && s.Doc == nil && d.Doc == nil {
					t.Errorf("%s: exported type %s has no doc comment", fset.Position(s.Pos()), s.Name.Name)
				}
			case *ast.ValueSpec:
				for _, n := range s.Names {
					// A documented const/var block documents its members.
					if n.IsExported() && s.Doc == nil && s.Comment == nil && d.Doc == nil {
						t.Errorf("%s: exported %s has no doc comment", fset.Position(n.Pos()), n.Name)
					}
				}
			}
		}
	}
	_ = file
}

func exportedRecv(fl *ast.FieldList) bool {
	if len(fl.List) == 0 {
		return false
	}
	typ := fl.List[0].Type
	if st, ok := typ.(*ast.StarExpr); ok {
		typ = st.X
	}
	if ix, ok := typ.(*ast.IndexExpr); ok {
		typ = ix.X
	}
	id, ok := typ.(*ast.Ident)
	return ok && id.IsExported()
}

// TestDocsCiteFilesThatExist: every relative link in the Markdown docs, and
// every Markdown file they name, is in the repository (a doc that points
// readers at a file they cannot open is a broken promise).
func TestDocsCiteFilesThatExist(t *testing.T) {
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	mdName := regexp.MustCompile(`[A-Za-z0-9_./-]+\.md\b`)
	var mds []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || (strings.HasPrefix(d.Name(), ".") && path != root)) {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".md") {
			mds = append(mds, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	for _, f := range mds {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Dir(f)
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target, _, _ := strings.Cut(m[1], "#")
			if target == "" || strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			if !exists(filepath.Join(dir, target)) {
				t.Errorf("%s links to %s, which is not in the repository", f, m[1])
			}
		}
		for _, name := range mdName.FindAllString(string(b), -1) {
			if strings.Contains(name, "://") || exists(filepath.Join(dir, name)) || exists(filepath.Join(root, name)) {
				continue
			}
			found := false
			for _, other := range mds {
				if filepath.Base(other) == filepath.Base(name) {
					found = true
				}
			}
			if !found {
				t.Errorf("%s names %s, which is not in the repository", f, name)
			}
		}
	}
}
