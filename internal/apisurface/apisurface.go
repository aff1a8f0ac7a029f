// Package apisurface reads the exported API of a Go package from its source,
// for tests that keep mcpidp's public packages (mcpproxy, webhooks) usable
// by programs outside this module: such a program cannot import anything
// under internal/, so an exported declaration that mentions an internal
// package's identifier (a field of an internal type, an alias, a constant
// defined by one) is a declaration it cannot use, and one that `go doc`
// shows it anyway.
//
// The check is syntactic (go/parser): it sees what `go doc` shows, the
// signatures, exported fields, embedded types and constant values, and needs
// neither type-checking nor the package's dependencies.
package apisurface

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Surface is a package's exported API.
type Surface struct {
	// Names are the exported top-level identifiers and the exported
	// methods of exported types ("Proxy.Close"), sorted.
	Names []string
	// Leaks are the exported declarations that mention an identifier of an
	// internal package, as "Name: path.Ident", sorted.
	Leaks []string
}

// Read parses the non-test Go files of the package in dir and returns its
// exported API.
func Read(dir string) (*Surface, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	s := &Surface{}
	parsed := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, fmt.Errorf("error parsing %s: %w", name, err)
		}
		parsed++
		s.readFile(f)
	}
	if parsed == 0 {
		return nil, fmt.Errorf("no Go files in %s", dir)
	}
	slices.Sort(s.Names)
	s.Names = slices.Compact(s.Names)
	slices.Sort(s.Leaks)
	s.Leaks = slices.Compact(s.Leaks)
	return s, nil
}

func (s *Surface) readFile(f *ast.File) {
	// The file's internal imports, by the name they are used with.
	internal := map[string]string{}
	for _, imp := range f.Imports {
		path, err := strconv.Unquote(imp.Path.Value)
		if err != nil || !isInternal(path) {
			continue
		}
		name := path[strings.LastIndex(path, "/")+1:]
		if imp.Name != nil {
			name = imp.Name.Name
		}
		internal[name] = path
	}
	// check records every internal identifier that nodes mention.
	check := func(decl string, nodes ...ast.Node) {
		for _, n := range nodes {
			if n == nil || isNilNode(n) {
				continue
			}
			ast.Inspect(n, func(n ast.Node) bool {
				sel, ok := n.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				if id, ok := sel.X.(*ast.Ident); ok {
					if path, ok := internal[id.Name]; ok {
						s.Leaks = append(s.Leaks, decl+": "+path+"."+sel.Sel.Name)
					}
				}
				return true
			})
		}
	}

	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if !d.Name.IsExported() {
				continue
			}
			name := d.Name.Name
			if d.Recv != nil {
				recv := receiverType(d.Recv.List[0].Type)
				if !ast.IsExported(recv) {
					continue
				}
				name = recv + "." + name
			}
			s.Names = append(s.Names, name)
			check(name, d.Recv, d.Type)
		case *ast.GenDecl:
			for _, spec := range d.Specs {
				switch spec := spec.(type) {
				case *ast.TypeSpec:
					if !spec.Name.IsExported() {
						continue
					}
					name := spec.Name.Name
					s.Names = append(s.Names, name)
					check(name, spec.TypeParams)
					check(name, exportedParts(spec.Type)...)
				case *ast.ValueSpec:
					for i, id := range spec.Names {
						if !id.IsExported() {
							continue
						}
						s.Names = append(s.Names, id.Name)
						check(id.Name, spec.Type)
						if i < len(spec.Values) {
							check(id.Name, spec.Values[i])
						}
					}
				}
			}
		}
	}
}

// exportedParts is what go doc shows of a type: a struct's exported and
// embedded fields, an interface's methods and embedded types, else all of it.
func exportedParts(t ast.Expr) []ast.Node {
	var fields *ast.FieldList
	switch t := t.(type) {
	case *ast.StructType:
		fields = t.Fields
	case *ast.InterfaceType:
		fields = t.Methods
	default:
		return []ast.Node{t}
	}
	var nodes []ast.Node
	for _, f := range fields.List {
		if len(f.Names) == 0 || slices.ContainsFunc(f.Names, (*ast.Ident).IsExported) {
			nodes = append(nodes, f.Type)
		}
	}
	return nodes
}

// receiverType is the type name of a method's receiver.
func receiverType(t ast.Expr) string {
	for {
		switch x := t.(type) {
		case *ast.StarExpr:
			t = x.X
		case *ast.IndexExpr:
			t = x.X
		case *ast.IndexListExpr:
			t = x.X
		case *ast.Ident:
			return x.Name
		default:
			return ""
		}
	}
}

func isInternal(path string) bool {
	return path == "internal" || strings.HasPrefix(path, "internal/") ||
		strings.Contains(path, "/internal/") || strings.HasSuffix(path, "/internal")
}

// isNilNode reports a typed nil inside an ast.Node interface (an absent
// *ast.FieldList or ast.Expr), which ast.Inspect cannot walk.
func isNilNode(n ast.Node) bool {
	switch n := n.(type) {
	case *ast.FieldList:
		return n == nil
	case *ast.FuncType:
		return n == nil
	}
	return false
}
