package code

import (
	"path"
	"strings"
)

// ignoreRule is one .gitignore pattern, split into path segments.
type ignoreRule struct {
	base    string   // folder of the .gitignore, relative to the walk root ("" for the root)
	segs    []string // pattern segments; "**" matches any number of segments
	negate  bool
	dirOnly bool
}

// Ignorer answers whether a path is excluded by the .gitignore files seen so far. It implements
// the gitignore(5) rules a repository walk needs: comments, blank lines, "!" negation, trailing
// "/" for folders only, patterns with a slash anchored to their file's folder, patterns without
// one matching at any depth, "**" for any number of folders, and *, ?, [...] inside a segment.
// The last matching rule wins, deeper files after shallower ones, as in git. A small matcher of
// our own: the Go gitignore libraries on the proxy either pull in go-git or mishandle "?" and
// character classes.
type Ignorer struct {
	rules []ignoreRule
}

// Add parses the content of the .gitignore found in folder base (relative to the root, "" for
// the root itself).
func (ig *Ignorer) Add(base, content string) {
	for _, line := range strings.Split(content, "\n") {
		line = strings.TrimRight(line, "\r")
		// Trailing spaces are ignored unless escaped.
		for strings.HasSuffix(line, " ") && !strings.HasSuffix(line, "\\ ") {
			line = line[:len(line)-1]
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r := ignoreRule{base: base}
		if strings.HasPrefix(line, "!") {
			r.negate = true
			line = line[1:]
		} else if strings.HasPrefix(line, `\!`) || strings.HasPrefix(line, `\#`) {
			line = line[1:]
		}
		if strings.HasSuffix(line, "/") {
			r.dirOnly = true
			line = strings.TrimRight(line, "/")
		}
		if line == "" {
			continue
		}
		anchored := strings.Contains(line, "/")
		line = strings.TrimPrefix(line, "/")
		r.segs = strings.Split(line, "/")
		if !anchored {
			r.segs = append([]string{"**"}, r.segs...)
		}
		ig.rules = append(ig.rules, r)
	}
}

// Ignored reports whether rel (slash-separated, relative to the root) is excluded. isDir says
// whether rel is a folder. Callers skip ignored folders entirely, which gives git's rule that a
// file in an excluded folder cannot be re-included.
func (ig *Ignorer) Ignored(rel string, isDir bool) bool {
	ignored := false
	for _, r := range ig.rules {
		if r.dirOnly && !isDir {
			continue
		}
		p := rel
		if r.base != "" {
			if !strings.HasPrefix(rel, r.base+"/") {
				continue
			}
			p = rel[len(r.base)+1:]
		}
		if matchSegs(r.segs, strings.Split(p, "/")) {
			ignored = !r.negate
		}
	}
	return ignored
}

func matchSegs(pat, p []string) bool {
	if len(pat) == 0 {
		return len(p) == 0
	}
	if pat[0] == "**" {
		if len(pat) == 1 {
			return len(p) > 0 // a trailing "/**" matches everything inside, not the folder itself
		}
		for i := 0; i <= len(p); i++ {
			if matchSegs(pat[1:], p[i:]) {
				return true
			}
		}
		return false
	}
	if len(p) == 0 {
		return false
	}
	ok, err := path.Match(pat[0], p[0])
	if err != nil || !ok {
		return false
	}
	return matchSegs(pat[1:], p[1:])
}
