// Package apicheck lists perfkit's exported API, one line per exported
// identifier, field and method, in the spirit of the Go project's own
// api/*.txt files. The test in this package compares the listing with the
// checked-in api/perfkit.txt, so a change to the public API is always
// deliberate: it shows up as a diff of that file in review.
//
// The listing is built from the syntax tree alone (go/parser, no type
// checking): parameter names are dropped, types are printed as written.
// Packages under internal/, examples/, bench/ and testdata/ are not API.
package apicheck

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// skipDirs are directory names whose packages are not public API.
var skipDirs = map[string]bool{"internal": true, "examples": true, "bench": true, "testdata": true, "scripts": true, "docs": true, "api": true}

// Dump returns the sorted API listing of every public package of the module
// rooted at root, whose import path is module.
func Dump(root, module string) ([]string, error) {
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if p != root && (skipDirs[name] || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
			return filepath.SkipDir
		}
		if p != root {
			if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
				return filepath.SkipDir // another module
			}
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		importPath := module
		if rel != "." {
			importPath = path.Join(module, filepath.ToSlash(rel))
		}
		pl, err := dumpDir(p, importPath)
		if err != nil {
			return err
		}
		lines = append(lines, pl...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(lines)
	return lines, nil
}

func dumpDir(dir, importPath string) ([]string, error) {
	fset := token.NewFileSet()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []*ast.File
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, n), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		if f.Name.Name == "main" || excludedByBuildTag(f) {
			continue
		}
		files = append(files, f)
	}
	if len(files) == 0 {
		return nil, nil
	}
	w := &writer{fset: fset, pkg: importPath}
	for _, f := range files {
		for _, decl := range f.Decls {
			w.decl(decl)
		}
	}
	return w.lines, nil
}

// excludedByBuildTag reports files that carry an "ignore" build constraint.
func excludedByBuildTag(f *ast.File) bool {
	for _, cg := range f.Comments {
		if cg.Pos() > f.Package {
			break
		}
		for _, c := range cg.List {
			if strings.HasPrefix(c.Text, "//go:build") && strings.Contains(c.Text, "ignore") {
				return true
			}
		}
	}
	return false
}

type writer struct {
	fset  *token.FileSet
	pkg   string
	lines []string
}

func (w *writer) emit(format string, args ...any) {
	w.lines = append(w.lines, "pkg "+w.pkg+", "+fmt.Sprintf(format, args...))
}

func (w *writer) node(n ast.Node) string {
	var b bytes.Buffer
	if err := printer.Fprint(&b, w.fset, n); err != nil {
		return fmt.Sprintf("<%v>", err)
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

func (w *writer) decl(d ast.Decl) {
	switch d := d.(type) {
	case *ast.FuncDecl:
		if !d.Name.IsExported() {
			return
		}
		if d.Recv == nil {
			w.emit("func %s%s%s", d.Name.Name, w.typeParams(d.Type.TypeParams), w.signature(d.Type))
			return
		}
		recv := d.Recv.List[0].Type
		base := recv
		if s, ok := base.(*ast.StarExpr); ok {
			base = s.X
		}
		switch b := base.(type) {
		case *ast.IndexExpr:
			base = b.X
		case *ast.IndexListExpr:
			base = b.X
		}
		if id, ok := base.(*ast.Ident); !ok || !id.IsExported() {
			return
		}
		w.emit("method (%s) %s%s", w.node(recv), d.Name.Name, w.signature(d.Type))
	case *ast.GenDecl:
		for _, spec := range d.Specs {
			switch s := spec.(type) {
			case *ast.TypeSpec:
				w.typeSpec(s)
			case *ast.ValueSpec:
				kind := d.Tok.String()
				for i, n := range s.Names {
					if !n.IsExported() {
						continue
					}
					line := kind + " " + n.Name
					if s.Type != nil {
						line += " " + w.node(s.Type)
					}
					if d.Tok == token.CONST && i < len(s.Values) {
						line += " = " + w.node(s.Values[i])
					}
					w.emit("%s", line)
				}
			}
		}
	}
}

func (w *writer) typeSpec(s *ast.TypeSpec) {
	if !s.Name.IsExported() {
		return
	}
	name := s.Name.Name + w.typeParams(s.TypeParams)
	if s.Assign.IsValid() {
		w.emit("type %s = %s", name, w.node(s.Type))
		return
	}
	switch t := s.Type.(type) {
	case *ast.StructType:
		w.emit("type %s struct", name)
		for _, f := range t.Fields.List {
			typ := w.node(f.Type)
			if len(f.Names) == 0 {
				w.emit("type %s struct, embedded %s", s.Name.Name, typ)
				continue
			}
			for _, n := range f.Names {
				if n.IsExported() {
					w.emit("type %s struct, %s %s", s.Name.Name, n.Name, typ)
				}
			}
		}
	case *ast.InterfaceType:
		w.emit("type %s interface", name)
		for _, m := range t.Methods.List {
			if len(m.Names) == 0 {
				w.emit("type %s interface, embedded %s", s.Name.Name, w.node(m.Type))
				continue
			}
			for _, n := range m.Names {
				if ft, ok := m.Type.(*ast.FuncType); ok && n.IsExported() {
					w.emit("type %s interface, %s%s", s.Name.Name, n.Name, w.signature(ft))
				}
			}
		}
	default:
		w.emit("type %s %s", name, w.node(s.Type))
	}
}

func (w *writer) typeParams(tp *ast.FieldList) string {
	if tp == nil || len(tp.List) == 0 {
		return ""
	}
	var parts []string
	for _, f := range tp.List {
		names := make([]string, len(f.Names))
		for i, n := range f.Names {
			names[i] = n.Name
		}
		parts = append(parts, strings.Join(names, ", ")+" "+w.node(f.Type))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// signature prints a function type's parameters and results without names.
func (w *writer) signature(ft *ast.FuncType) string {
	s := "(" + w.fieldTypes(ft.Params) + ")"
	if ft.Results == nil || len(ft.Results.List) == 0 {
		return s
	}
	res := w.fieldTypes(ft.Results)
	if len(ft.Results.List) == 1 && len(ft.Results.List[0].Names) <= 1 {
		return s + " " + res
	}
	return s + " (" + res + ")"
}

func (w *writer) fieldTypes(fl *ast.FieldList) string {
	if fl == nil {
		return ""
	}
	var parts []string
	for _, f := range fl.List {
		typ := w.node(f.Type)
		n := max(len(f.Names), 1)
		for range n {
			parts = append(parts, typ)
		}
	}
	return strings.Join(parts, ", ")
}
