package offline

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/perpetual-ml/perpetual/curriculum"
)

// decl is one function or method found in the source.
type decl struct {
	name    string // "Execute" or "Command.Execute"
	kind    string // "function" or "method"
	pkg     string // package (Go) or module path (Python)
	results string // "(int, error)", "error", "nothing"
	params  string // "(name string, n int)"
	nParams int
	chunkID string
}

// declFacts turns declarations into facts; each property's distractors are the same property of
// other declarations.
func declFacts(decls []decl, seed int64, lang string) []curriculum.Fact {
	rng := rand.New(rand.NewPCG(uint64(seed), 0xc0de))
	pools := map[string][]string{}
	for _, d := range decls {
		pools["pkg"] = append(pools["pkg"], d.pkg)
		if d.results != "" {
			pools["results"] = append(pools["results"], d.results)
		}
		pools["params"] = append(pools["params"], d.params)
	}
	counts := []string{"0", "1", "2", "3", "4", "5", "6"}
	unit := "package"
	if lang == "python" {
		unit = "module"
	}
	var facts []curriculum.Fact
	add := func(d decl, q, a, tq, ta string, pool []string) {
		if ds := pickDistractors(rng, pool, ta, 3); len(ds) == 3 {
			facts = append(facts, curriculum.Fact{ChunkID: d.chunkID, Question: q, Answer: a, TestQuestion: tq, TestAnswer: ta, Distractors: ds})
		}
	}
	for _, d := range decls {
		what := fmt.Sprintf("the %s %s", d.kind, d.name)
		if d.kind == "function" {
			add(d, fmt.Sprintf("Which %s defines %s?", unit, what), fmt.Sprintf("%s is defined in %s %s.", capital(what), unit, d.pkg),
				fmt.Sprintf("In which %s is %s declared?", unit, what), d.pkg, pools["pkg"])
		}
		if d.results != "" {
			add(d, fmt.Sprintf("What does %s return?", what), fmt.Sprintf("%s returns %s.", capital(what), d.results),
				fmt.Sprintf("What is the result type of %s?", what), d.results, pools["results"])
		}
		add(d, fmt.Sprintf("How many parameters does %s take?", what), fmt.Sprintf("%s takes %d parameter(s).", capital(what), d.nParams),
			fmt.Sprintf("What is the number of parameters of %s?", what), fmt.Sprint(d.nParams), counts)
		if d.nParams > 0 {
			add(d, fmt.Sprintf("What are the parameters of %s?", what), fmt.Sprintf("The parameters of %s are %s.", what, d.params),
				fmt.Sprintf("Which parameter list does %s have?", what), d.params, pools["params"])
		}
	}
	return facts
}

func capital(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// chunkFor finds the first chunk of source rel that contains line.
func chunkFor(bySource map[string][]curriculum.Chunk, rel, line string) string {
	for _, c := range bySource[rel] {
		if strings.Contains(c.Text, line) {
			return c.ID
		}
	}
	return ""
}

// Code writes facts about the exported Go functions and methods and the public Python functions
// of the files the chunks came from (read again from root, since a declaration can straddle
// chunks). Each fact belongs to the chunk holding the declaration's first line. Test files are
// left out. Files that no longer parse are reported as skipped.
func Code(root string, chunks []curriculum.Chunk, seed int64) ([]curriculum.Fact, []curriculum.Skipped) {
	bySource := map[string][]curriculum.Chunk{}
	var sources []string
	for _, c := range chunks {
		if _, ok := bySource[c.Source]; !ok {
			sources = append(sources, c.Source)
		}
		bySource[c.Source] = append(bySource[c.Source], c)
	}
	sort.Strings(sources)
	var goDecls, pyDecls []decl
	var skipped []curriculum.Skipped
	for _, rel := range sources {
		switch {
		case strings.HasSuffix(rel, "_test.go"), strings.HasPrefix(path.Base(rel), "test_"):
			continue
		case strings.HasSuffix(rel, ".go"):
			ds, err := goDeclsOf(root, rel, bySource)
			if err != nil {
				skipped = append(skipped, curriculum.Skipped{Path: rel, Reason: err.Error()})
			}
			goDecls = append(goDecls, ds...)
		case strings.HasSuffix(rel, ".py"):
			ds, err := pyDeclsOf(root, rel, bySource)
			if err != nil {
				skipped = append(skipped, curriculum.Skipped{Path: rel, Reason: err.Error()})
			}
			pyDecls = append(pyDecls, ds...)
		}
	}
	facts := declFacts(goDecls, seed, "go")
	facts = append(facts, declFacts(pyDecls, seed+1, "python")...)
	return facts, skipped
}

func goDeclsOf(root, rel string, bySource map[string][]curriculum.Chunk) ([]decl, error) {
	src, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(rel)))
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, rel, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, fmt.Errorf("go/parser: %w", err)
	}
	lines := strings.Split(string(src), "\n")
	var out []decl
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || !fd.Name.IsExported() {
			continue
		}
		x := decl{name: fd.Name.Name, kind: "function", pkg: f.Name.Name}
		if fd.Recv != nil && len(fd.Recv.List) > 0 {
			recv := types.ExprString(fd.Recv.List[0].Type)
			recv = strings.TrimPrefix(recv, "*")
			if i := strings.IndexByte(recv, '['); i >= 0 {
				recv = recv[:i]
			}
			if !ast.IsExported(recv) {
				continue
			}
			x.name, x.kind = recv+"."+fd.Name.Name, "method"
		}
		x.params, x.nParams = fieldList(fd.Type.Params)
		if fd.Type.Results == nil || len(fd.Type.Results.List) == 0 {
			x.results = "nothing"
		} else {
			r, n := fieldList(fd.Type.Results)
			if n == 1 && len(fd.Type.Results.List[0].Names) == 0 {
				r = strings.TrimSuffix(strings.TrimPrefix(r, "("), ")")
			}
			x.results = r
		}
		line := lines[fset.Position(fd.Pos()).Line-1]
		if x.chunkID = chunkFor(bySource, rel, line); x.chunkID != "" {
			out = append(out, x)
		}
	}
	return out, nil
}

// fieldList renders "(a, b int, c string)" and counts the entries (a, b and c: 3).
func fieldList(fl *ast.FieldList) (string, int) {
	if fl == nil {
		return "()", 0
	}
	var parts []string
	n := 0
	for _, f := range fl.List {
		t := types.ExprString(f.Type)
		if len(f.Names) == 0 {
			parts = append(parts, t)
			n++
			continue
		}
		var names []string
		for _, nm := range f.Names {
			names = append(names, nm.Name)
		}
		parts = append(parts, strings.Join(names, ", ")+" "+t)
		n += len(f.Names)
	}
	return "(" + strings.Join(parts, ", ") + ")", n
}

var pyDef = regexp.MustCompile(`^(\s*)(?:async\s+)?def\s+([A-Za-z_]\w*)\s*\(`)
var pyClass = regexp.MustCompile(`^(\s*)class\s+([A-Za-z_]\w*)`)

// pyDeclsOf reads public functions and methods from def headers (possibly spanning lines). It is
// a line parser, not Python's grammar: enough for "def name(params) -> ret:" headers.
func pyDeclsOf(root, rel string, bySource map[string][]curriculum.Chunk) ([]decl, error) {
	src, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(rel)))
	if err != nil {
		return nil, err
	}
	module := strings.ReplaceAll(strings.TrimSuffix(rel, ".py"), "/", ".")
	module = strings.TrimSuffix(module, ".__init__")
	lines := strings.Split(string(src), "\n")
	var out []decl
	className, classIndent := "", -1
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if m := pyClass.FindStringSubmatch(line); m != nil {
			className, classIndent = m[2], len(m[1])
			continue
		}
		m := pyDef.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		indent, name := len(m[1]), m[2]
		if strings.HasPrefix(name, "_") {
			continue
		}
		// Gather the header up to the closing parenthesis and colon.
		header := line
		for j := i + 1; j < len(lines) && !headerDone(header) && j < i+30; j++ {
			header += " " + strings.TrimSpace(lines[j])
		}
		if !headerDone(header) {
			return out, fmt.Errorf("line %d: def %s: unterminated header", i+1, name)
		}
		open := strings.IndexByte(header, '(')
		closeAt := matchParen(header, open)
		params := splitTopLevel(header[open+1 : closeAt])
		x := decl{name: name, kind: "function", pkg: module}
		if className != "" && indent > classIndent {
			x.name, x.kind = className+"."+name, "method"
			if len(params) > 0 && (paramName(params[0]) == "self" || paramName(params[0]) == "cls") {
				params = params[1:]
			}
		} else if indent == 0 {
			className, classIndent = "", -1
		} else {
			continue // nested helper inside a function
		}
		var kept []string
		for _, p := range params {
			if p != "*" && p != "/" {
				kept = append(kept, p)
			}
		}
		x.params, x.nParams = "("+strings.Join(kept, ", ")+")", len(kept)
		rest := header[closeAt+1:]
		if k := strings.Index(rest, "->"); k >= 0 {
			x.results = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest[k+2:]), ":"))
		}
		if x.chunkID = chunkFor(bySource, rel, line); x.chunkID != "" {
			out = append(out, x)
		}
	}
	return out, nil
}

func headerDone(h string) bool {
	open := strings.IndexByte(h, '(')
	c := matchParen(h, open)
	return c > 0 && strings.Contains(h[c:], ":")
}

func matchParen(s string, open int) int {
	depth := 0
	for i := open; i >= 0 && i < len(s); i++ {
		switch s[i] {
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// splitTopLevel splits a parameter list at commas outside brackets.
func splitTopLevel(s string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
			depth--
		case ',':
			if depth == 0 {
				if p := strings.TrimSpace(s[start:i]); p != "" {
					out = append(out, p)
				}
				start = i + 1
			}
		}
	}
	if p := strings.TrimSpace(s[start:]); p != "" {
		out = append(out, p)
	}
	return out
}

func paramName(p string) string {
	p = strings.TrimLeft(p, "*")
	if i := strings.IndexAny(p, ":="); i >= 0 {
		p = p[:i]
	}
	return strings.TrimSpace(p)
}
