// Command nbcheck fails when an executed notebook shows a failure in any cell.
//
// jupyter nbconvert --execute --allow-errors (what notebooks/run.sh runs) finishes "successfully"
// even when a GoNB cell panicked, failed to compile, exited non-zero, ran a failing shell command or
// printed an error: GoNB reports some of these as error outputs and others only as text. nbcheck
// reads the executed .ipynb files named on the command line and reports, per cell, every
// error output, every panic, Go or Python traceback and GoNB error display in any output, error
// text on stderr, and code cells that never ran. It exits 1 if it found any, 2 on unreadable input.
//
// Usage: go run ./notebooks/nbcheck executed1.ipynb [executed2.ipynb ...]
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: nbcheck executed.ipynb...")
		os.Exit(2)
	}
	failed := false
	for _, path := range os.Args[1:] {
		problems, err := checkFile(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "nbcheck:", err)
			os.Exit(2)
		}
		for _, p := range problems {
			fmt.Fprintf(os.Stderr, "%s: %s\n", path, p)
		}
		if len(problems) > 0 {
			failed = true
		} else {
			fmt.Printf("%s: ok\n", path)
		}
	}
	if failed {
		os.Exit(1)
	}
}

// notebook is the part of nbformat 4 that nbcheck reads.
type notebook struct {
	NBFormat int    `json:"nbformat"`
	Cells    []cell `json:"cells"`
}

type cell struct {
	CellType       string   `json:"cell_type"`
	ExecutionCount *int     `json:"execution_count"`
	Source         text     `json:"source"`
	Outputs        []output `json:"outputs"`
}

type output struct {
	OutputType string          `json:"output_type"`
	Name       string          `json:"name"` // stream: stdout or stderr
	Text       text            `json:"text"`
	Data       map[string]text `json:"data"`
	EName      string          `json:"ename"`
	EValue     string          `json:"evalue"`
}

// text is a notebook string, stored either as one string or as a list of lines.
type text string

func (t *text) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*t = text(s)
		return nil
	}
	var lines []string
	if err := json.Unmarshal(b, &lines); err != nil {
		// Non-text data (e.g. application/json outputs) carry no failure text.
		*t = ""
		return nil
	}
	*t = text(strings.Join(lines, ""))
	return nil
}

// Problem is one failure found in a cell.
type Problem struct {
	Cell    int // 1-based index among all cells
	Reason  string
	Excerpt string
}

func (p Problem) String() string {
	if p.Excerpt == "" {
		return fmt.Sprintf("cell %d: %s", p.Cell, p.Reason)
	}
	return fmt.Sprintf("cell %d: %s: %s", p.Cell, p.Reason, p.Excerpt)
}

var (
	// anywhere matches failure text in any output, stdout and HTML included.
	anywhere = regexp.MustCompile(`panic: |goroutine \d+ \[|Traceback \(most recent call last\)|gonb-err-location|fatal error: `)
	// onStderr matches error text on stderr ("exit status N" is how GoNB reports a failing program or
	// shell command that it does not turn into an error output).
	onStderr = regexp.MustCompile(`(?i)\berror\b|\bfatal\b|\bfailed\b|\bfailure\b|exit status [1-9]|\bpanic\b|\bException\b`)
	ansi     = regexp.MustCompile("\x1b\\[[0-9;]*m")
	styles   = regexp.MustCompile(`(?is)<(style|script)\b.*?</(style|script)>`)
	tags     = regexp.MustCompile(`<[^>]*>`)
)

func checkFile(path string) ([]Problem, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	problems, err := check(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return problems, nil
}

// check reads one executed notebook and returns its problems.
func check(r io.Reader) ([]Problem, error) {
	var nb notebook
	if err := json.NewDecoder(r).Decode(&nb); err != nil {
		return nil, fmt.Errorf("not a notebook: %w", err)
	}
	if nb.NBFormat != 4 {
		return nil, fmt.Errorf("nbformat %d, want 4", nb.NBFormat)
	}
	var problems []Problem
	for i, c := range nb.Cells {
		if c.CellType != "code" {
			continue
		}
		n := i + 1
		if c.ExecutionCount == nil && strings.TrimSpace(string(c.Source)) != "" {
			problems = append(problems, Problem{Cell: n, Reason: "not executed"})
		}
		for _, o := range c.Outputs {
			switch o.OutputType {
			case "error":
				problems = append(problems, Problem{Cell: n, Reason: "error output " + o.EName, Excerpt: excerpt(o.EValue, 0)})
				continue
			case "stream":
				s := string(o.Text)
				if loc := anywhere.FindStringIndex(s); loc != nil {
					problems = append(problems, Problem{Cell: n, Reason: o.Name + " shows a failure", Excerpt: excerpt(s, loc[0])})
				} else if loc := onStderr.FindStringIndex(s); o.Name == "stderr" && loc != nil {
					problems = append(problems, Problem{Cell: n, Reason: "error text on stderr", Excerpt: excerpt(s, loc[0])})
				}
				continue
			}
			mimes := make([]string, 0, len(o.Data))
			for mime := range o.Data {
				mimes = append(mimes, mime)
			}
			sort.Strings(mimes)
			for _, mime := range mimes {
				s := string(o.Data[mime])
				if loc := anywhere.FindStringIndex(s); loc != nil {
					at := loc[0]
					if mime == "text/html" {
						// GoNB's error display is styled HTML: show its text, not its CSS.
						s, at = htmlText(s), 0
					}
					problems = append(problems, Problem{Cell: n, Reason: mime + " output shows a failure", Excerpt: excerpt(s, at)})
				}
			}
		}
	}
	return problems, nil
}

// excerpt returns up to 160 characters of s from the line holding position at, on one line.
func excerpt(s string, at int) string {
	start := strings.LastIndexByte(s[:at], '\n') + 1
	s = ansi.ReplaceAllString(s[start:], "")
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 160 {
		s = s[:160] + "..."
	}
	return s
}

// htmlText drops style and script elements and tags, and decodes the common entities.
func htmlText(s string) string {
	s = tags.ReplaceAllString(styles.ReplaceAllString(s, " "), " ")
	return strings.NewReplacer("&lt;", "<", "&gt;", ">", "&quot;", `"`, "&#34;", `"`, "&#39;", "'", "&amp;", "&").Replace(s)
}
