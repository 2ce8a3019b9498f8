// Package code turns a source repository into knowledge-base chunks: it walks a folder, skips
// what is not hand-written source (binaries, vendored and dependency folders, generated files,
// anything .gitignore excludes, oversized files), and cuts each file into chunks of about 4,096
// bytes with 512 bytes of overlap, cutting between top-level declarations where it can: Go files
// use go/parser's declaration positions, Python files their top-level def/class lines, other
// languages blank lines before unindented lines.
package code

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/perpetual-ml/perpetual/curriculum"
	"github.com/perpetual-ml/perpetual/curriculum/chunker"
)

// Options control the walk.
type Options struct {
	// ChunkSize and Overlap in bytes (defaults 4096 and 512).
	ChunkSize, Overlap int
	// MaxFileBytes skips larger files (default 1 MiB): they are data, not code.
	MaxFileBytes int64
	// OnStart, if set, is called with the number of files to chunk once they are listed.
	OnStart func(files int)
	// OnFile, if set, is called after each file is processed (progress reporting).
	OnFile func(rel string)
}

func (o *Options) defaults() {
	if o.ChunkSize <= 0 {
		o.ChunkSize = 4096
	}
	if o.Overlap <= 0 {
		o.Overlap = 512
	}
	if o.MaxFileBytes <= 0 {
		o.MaxFileBytes = 1 << 20
	}
}

// Result is what a walk found.
type Result struct {
	// Chunks in walk order (files sorted by path).
	Chunks []curriculum.Chunk
	// Files is the number of source files chunked.
	Files int
	// Skipped are files left out for a reason worth reporting (binary, generated, too large, unreadable).
	Skipped []curriculum.Skipped
}

// skipDirs are folders that hold dependencies, build output or tool state, never the project's
// own source.
var skipDirs = map[string]bool{
	".git": true, ".hg": true, ".svn": true, "vendor": true, "node_modules": true, "third_party": true,
	"__pycache__": true, ".venv": true, "venv": true, ".tox": true, "dist": true, "build": true,
	"target": true, ".idea": true, ".vscode": true, ".mypy_cache": true, ".pytest_cache": true,
	"generated": true, "__generated__": true,
}

// sourceExts are the file types treated as source or documentation.
var sourceExts = map[string]bool{
	".go": true, ".py": true, ".js": true, ".ts": true, ".jsx": true, ".tsx": true, ".java": true, ".kt": true,
	".c": true, ".h": true, ".cc": true, ".cpp": true, ".hpp": true, ".rs": true, ".rb": true, ".php": true,
	".cs": true, ".swift": true, ".scala": true, ".sh": true, ".bash": true, ".lua": true, ".r": true, ".jl": true,
	".sql": true, ".proto": true, ".md": true, ".rst": true, ".txt": true, ".yaml": true, ".yml": true, ".toml": true,
}

var sourceNames = map[string]bool{"Makefile": true, "Dockerfile": true, "README": true, "LICENSE": false}

// generatedRE is the Go convention for generated files (also used by many other generators).
var generatedRE = regexp.MustCompile(`(?m)^(//|#) Code generated .* DO NOT EDIT\.$`)

func isGeneratedName(name string) bool {
	for _, s := range []string{".pb.go", "_generated.go", ".gen.go", "_string.go", ".min.js", "_pb2.py", ".lock"} {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return name == "go.sum" || name == "package-lock.json" || name == "yarn.lock"
}

// Walk chunks the repository at root. Unreadable entries are skipped with a reason; only a root
// that cannot be walked at all is an error.
func Walk(root string, opt Options) (*Result, error) {
	opt.defaults()
	st, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("code source: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("code source: %s is not a folder", root)
	}
	res := &Result{}
	ig := &Ignorer{}
	var files []string
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if err != nil {
			res.Skipped = append(res.Skipped, curriculum.Skipped{Path: rel, Reason: err.Error()})
			if d != nil && d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if rel == "." {
				rel = ""
			} else if skipDirs[d.Name()] || ig.Ignored(rel, true) || strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			if b, err := os.ReadFile(filepath.Join(p, ".gitignore")); err == nil {
				ig.Add(rel, string(b))
			}
			return nil
		}
		if !d.Type().IsRegular() || ig.Ignored(rel, false) {
			return nil
		}
		name := d.Name()
		if !sourceExts[strings.ToLower(filepath.Ext(name))] && !sourceNames[name] {
			return nil
		}
		files = append(files, rel)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("code source %s: %w", root, err)
	}
	sort.Strings(files)
	if opt.OnStart != nil {
		opt.OnStart(len(files))
	}
	for _, rel := range files {
		chunks, reason := chunkFile(root, rel, opt)
		if reason != "" {
			res.Skipped = append(res.Skipped, curriculum.Skipped{Path: rel, Reason: reason})
		} else {
			res.Files++
			res.Chunks = append(res.Chunks, chunks...)
		}
		if opt.OnFile != nil {
			opt.OnFile(rel)
		}
	}
	return res, nil
}

func chunkFile(root, rel string, opt Options) ([]curriculum.Chunk, string) {
	p := filepath.Join(root, filepath.FromSlash(rel))
	st, err := os.Stat(p)
	if err != nil {
		return nil, "unreadable: " + err.Error()
	}
	if st.Size() > opt.MaxFileBytes {
		return nil, fmt.Sprintf("too large (%d bytes > %d)", st.Size(), opt.MaxFileBytes)
	}
	if isGeneratedName(filepath.Base(rel)) {
		return nil, "generated file (by name)"
	}
	src, err := os.ReadFile(p)
	if err != nil {
		return nil, "unreadable: " + err.Error()
	}
	head := src[:min(len(src), 8000)]
	if bytes.IndexByte(head, 0) >= 0 {
		return nil, "binary (NUL bytes)"
	}
	if !utf8.Valid(src) {
		return nil, "not UTF-8 text"
	}
	if generatedRE.Match(src[:min(len(src), 4000)]) {
		return nil, "generated file (\"Code generated ... DO NOT EDIT\")"
	}
	if len(bytes.TrimSpace(src)) == 0 {
		return nil, "empty"
	}
	text := string(src)
	pieces := chunker.Split(text, Boundaries(rel, text), chunker.Options{Size: opt.ChunkSize, Overlap: opt.Overlap})
	var out []curriculum.Chunk
	for i, piece := range pieces {
		out = append(out, curriculum.Chunk{ID: fmt.Sprintf("%s#%d", rel, i), Source: rel, Title: rel, Text: piece})
	}
	return out, ""
}

var (
	pyTop      = regexp.MustCompile(`(?m)^(@|def |async def |class )`)
	pyNested   = regexp.MustCompile(`(?m)^[ \t]+(def |async def |class )`)
	genericTop = regexp.MustCompile(`(?m)\n\n[^\s}\])]`)
)

// Boundaries ranks cut points of a source file: 3 before a top-level declaration (with its doc
// comment), 2 before a nested one, 1 at a blank line.
func Boundaries(rel, text string) []chunker.Boundary {
	var b []chunker.Boundary
	switch strings.ToLower(filepath.Ext(rel)) {
	case ".go":
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, rel, text, parser.ParseComments|parser.SkipObjectResolution)
		if err == nil {
			for _, d := range f.Decls {
				pos := d.Pos()
				switch d := d.(type) {
				case *ast.FuncDecl:
					if d.Doc != nil {
						pos = d.Doc.Pos()
					}
				case *ast.GenDecl:
					if d.Doc != nil {
						pos = d.Doc.Pos()
					}
				}
				b = append(b, chunker.Boundary{Offset: lineStart(text, fset.Position(pos).Offset), Priority: 3})
			}
		}
	case ".py":
		for _, m := range pyTop.FindAllStringIndex(text, -1) {
			// A def under a decorator belongs with it: cut before the decorator only.
			prev := text[lineStart(text, max(0, m[0]-1)):max(0, m[0]-1)]
			if text[m[0]] != '@' && strings.HasPrefix(prev, "@") {
				continue
			}
			b = append(b, chunker.Boundary{Offset: m[0], Priority: 3})
		}
		for _, m := range pyNested.FindAllStringIndex(text, -1) {
			b = append(b, chunker.Boundary{Offset: m[0], Priority: 2})
		}
	}
	for _, m := range genericTop.FindAllStringIndex(text, -1) {
		b = append(b, chunker.Boundary{Offset: m[0] + 2, Priority: 1})
	}
	return b
}

func lineStart(text string, off int) int {
	if off > len(text) {
		off = len(text)
	}
	return strings.LastIndexByte(text[:off], '\n') + 1
}
