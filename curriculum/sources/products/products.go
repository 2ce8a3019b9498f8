// Package products turns a product database into knowledge-base chunks. Records come from JSON
// (an array, or an object holding one), JSON Lines or CSV with a header, including the Web Data
// Commons (WDC) product corpus fields: title, description, brand, price, specTableContent,
// keyValuePairs, and WDC training pairs (fields ending in _left / _right), which are split into
// their two offers rather than merged into one document as the paper did (the two offers of a
// pair can be different products).
//
// Values are cleaned of HTML markup and entities, of WDC literal decorations ("..."@en, trailing
// " ;"), and of "Null"/"None"/"N/A" noise. A record without a title is skipped with the file, the
// line and the reason.
package products

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/perpetual-ml/perpetual/curriculum"
	"github.com/perpetual-ml/perpetual/curriculum/chunker"
)

// Spec is one specification line of a product.
type Spec struct {
	Name, Value string
}

// Record is one cleaned product.
type Record struct {
	// Key identifies the record: "<file>:<line>" plus "/left" or "/right" for WDC pairs.
	Key         string
	Title       string
	Description string
	Brand       string
	Price       string
	Category    string
	Specs       []Spec
	// ChunkIDs are the chunks holding this record (filled in by Load).
	ChunkIDs []string
}

// Text renders the record as a document: title, then one line per known field and spec, then
// the description.
func (r *Record) Text() string {
	var b strings.Builder
	b.WriteString(r.Title)
	b.WriteString("\n")
	for _, f := range [][2]string{{"Brand", r.Brand}, {"Price", r.Price}, {"Category", r.Category}} {
		if f[1] != "" {
			fmt.Fprintf(&b, "%s: %s\n", f[0], f[1])
		}
	}
	for _, s := range r.Specs {
		fmt.Fprintf(&b, "%s: %s\n", s.Name, s.Value)
	}
	if r.Description != "" {
		b.WriteString("\n")
		b.WriteString(r.Description)
	}
	return strings.TrimSpace(b.String())
}

// Options control loading.
type Options struct {
	// ChunkSize and Overlap in bytes for long descriptions (defaults 4096 and 512).
	ChunkSize, Overlap int
	// OnFile is called after each file (progress).
	OnFile func(path string)
}

// Result is what Load found.
type Result struct {
	Records []Record
	Chunks  []curriculum.Chunk
	Skipped []curriculum.Skipped
}

var (
	tagRE      = regexp.MustCompile(`(?s)<[^>]*>`)
	brokenTag  = regexp.MustCompile(`(?i)</?(br|p|li|ul|ol|b|i|em|strong|div|span|h[1-6])\b\s*/?>?`)
	langTagRE  = regexp.MustCompile(`"@[a-zA-Z-]+\b`)
	spaceRE    = regexp.MustCompile(`[ \t\f\v]+`)
	blankRE    = regexp.MustCompile(`\n\s*\n+`)
	nullTokens = map[string]bool{"null": true, "none": true, "n/a": true, "na": true, "nan": true, "-": true, "undefined": true}
)

// Clean removes HTML markup (also tags cut off before their ">") and entities, WDC literal decorations and "Null" noise, and
// normalises whitespace (paragraph breaks are kept).
func Clean(s string) string {
	s = tagRE.ReplaceAllString(s, " ")
	s = brokenTag.ReplaceAllString(s, " ") // WDC text often has tags cut off before their ">"
	s = html.UnescapeString(s)
	s = strings.ReplaceAll(s, "\u00a0", " ")
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = langTagRE.ReplaceAllString(s, `"`)
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(spaceRE.ReplaceAllString(l, " "))
		l = strings.TrimSpace(strings.TrimSuffix(l, ";"))
		// A WDC value is often wrapped in quotes: "text" ; drop the wrapping, keep inner quotes.
		if len(l) >= 2 && strings.HasPrefix(l, `"`) && strings.HasSuffix(l, `"`) && strings.Count(l, `"`) == 2 {
			l = strings.TrimSpace(l[1 : len(l)-1])
		}
		if nullTokens[strings.ToLower(l)] {
			l = ""
		}
		lines = append(lines, l)
	}
	s = strings.TrimSpace(strings.Join(lines, "\n"))
	s = blankRE.ReplaceAllString(s, "\n\n")
	// Isolated "Null" words inside text (WDC joins missing fields with them).
	for _, n := range []string{" Null ", " NULL ", " null "} {
		s = strings.ReplaceAll(s, n, " ")
	}
	if nullTokens[strings.ToLower(strings.TrimSpace(s))] {
		return ""
	}
	return s
}

var fieldAliases = map[string]string{
	"title": "title", "name": "title", "product_name": "title", "product": "title", "productname": "title",
	"description": "description", "desc": "description", "body": "description", "product_description": "description",
	"brand": "brand", "manufacturer": "brand", "maker": "brand",
	"price": "price", "list_price": "price", "listprice": "price",
	"category": "category", "category_name": "category",
	"spectablecontent": "spectext", "specs": "specs", "specifications": "specs", "keyvaluepairs": "specs", "attributes": "specs",
}

// fromMap builds records from a decoded object; WDC pairs give two.
func fromMap(m map[string]any, key string) ([]Record, error) {
	sides := map[string]map[string]any{"": {}}
	for k, v := range m {
		lk := strings.ToLower(k)
		side := ""
		for _, suf := range []string{"_left", "_right"} {
			if strings.HasSuffix(lk, suf) {
				side, lk = suf[1:], strings.TrimSuffix(lk, suf)
			}
		}
		if sides[side] == nil {
			sides[side] = map[string]any{}
		}
		sides[side][lk] = v
	}
	var out []Record
	for _, side := range []string{"", "left", "right"} {
		fields, ok := sides[side]
		if !ok || (side == "" && (sides["left"] != nil || sides["right"] != nil) && fields["title"] == nil && fields["name"] == nil) {
			continue
		}
		r := Record{Key: key}
		if side != "" {
			r.Key += "/" + side
		}
		var specNames []string
		specs := map[string]string{}
		for k, v := range fields {
			switch fieldAliases[k] {
			case "title":
				r.Title = Clean(str(v))
			case "description":
				r.Description = Clean(str(v))
			case "brand":
				r.Brand = Clean(str(v))
			case "price":
				r.Price = Clean(str(v))
			case "category":
				r.Category = Clean(str(v))
			case "specs":
				if obj, ok := v.(map[string]any); ok {
					for n, val := range obj {
						if c := Clean(str(val)); c != "" && Clean(n) != "" {
							specs[Clean(n)] = c
							specNames = append(specNames, Clean(n))
						}
					}
				} else if c := Clean(str(v)); c != "" {
					r.Description = strings.TrimSpace(r.Description + "\n\n" + c)
				}
			case "spectext":
				if c := Clean(str(v)); c != "" {
					r.Description = strings.TrimSpace(r.Description + "\n\nSpecifications: " + c)
				}
			}
		}
		sort.Strings(specNames)
		for _, n := range specNames {
			r.Specs = append(r.Specs, Spec{n, specs[n]})
		}
		if r.Title == "" {
			return out, fmt.Errorf("record %s has no title", r.Key)
		}
		out = append(out, r)
	}
	return out, nil
}

func str(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case float64:
		return fmt.Sprint(v)
	case []any:
		var parts []string
		for _, x := range v {
			parts = append(parts, str(x))
		}
		return strings.Join(parts, ", ")
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

// Load reads product files (.json, .jsonl/.ndjson, .csv). Bad records are skipped with a reason;
// a file that cannot be read or parsed as a whole is skipped too. Each record becomes one chunk,
// or several when its text is longer than ChunkSize.
func Load(paths []string, opt Options) (*Result, error) {
	if opt.ChunkSize <= 0 {
		opt.ChunkSize = 4096
	}
	if opt.Overlap <= 0 {
		opt.Overlap = 512
	}
	res := &Result{}
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("products source: %w", err)
		}
		recs, skipped, err := readFile(p)
		res.Skipped = append(res.Skipped, skipped...)
		if err != nil {
			res.Skipped = append(res.Skipped, curriculum.Skipped{Path: p, Reason: err.Error()})
		}
		for _, r := range recs {
			for i, piece := range chunker.Split(r.Text(), chunker.ParagraphBoundaries(r.Text()), chunker.Options{Size: opt.ChunkSize, Overlap: opt.Overlap}) {
				id := r.Key
				if i > 0 {
					id = fmt.Sprintf("%s#%d", r.Key, i)
				}
				r.ChunkIDs = append(r.ChunkIDs, id)
				res.Chunks = append(res.Chunks, curriculum.Chunk{ID: id, Source: p, Title: r.Title, Text: piece})
			}
			res.Records = append(res.Records, r)
		}
		if opt.OnFile != nil {
			opt.OnFile(p)
		}
	}
	return res, nil
}

func readFile(path string) ([]Record, []curriculum.Skipped, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	base := filepath.Base(path)
	var recs []Record
	var skipped []curriculum.Skipped
	add := func(m map[string]any, line int) {
		rs, err := fromMap(m, fmt.Sprintf("%s:%d", base, line))
		recs = append(recs, rs...)
		if err != nil {
			skipped = append(skipped, curriculum.Skipped{Path: fmt.Sprintf("%s:%d", path, line), Reason: err.Error()})
		}
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".jsonl", ".ndjson":
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for line := 1; sc.Scan(); line++ {
			l := bytes.TrimSpace(sc.Bytes())
			if len(l) == 0 {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal(l, &m); err != nil {
				skipped = append(skipped, curriculum.Skipped{Path: fmt.Sprintf("%s:%d", path, line), Reason: "bad JSON: " + err.Error()})
				continue
			}
			add(m, line)
		}
		return recs, skipped, sc.Err()
	case ".json":
		var top any
		if err := json.Unmarshal(data, &top); err != nil {
			return nil, nil, fmt.Errorf("bad JSON: %w", err)
		}
		arr, ok := top.([]any)
		if obj, isObj := top.(map[string]any); isObj {
			// An object holding the array under some key ("products", "data", ...).
			for _, v := range obj {
				if a, isArr := v.([]any); isArr {
					arr, ok = a, true
					break
				}
			}
		}
		if !ok {
			return nil, nil, fmt.Errorf("JSON holds no array of records")
		}
		for i, v := range arr {
			m, isObj := v.(map[string]any)
			if !isObj {
				skipped = append(skipped, curriculum.Skipped{Path: fmt.Sprintf("%s#%d", path, i), Reason: "record is not an object"})
				continue
			}
			add(m, i+1)
		}
		return recs, skipped, nil
	case ".csv", ".tsv":
		r := csv.NewReader(bytes.NewReader(data))
		if strings.HasSuffix(strings.ToLower(path), ".tsv") {
			r.Comma = '\t'
		}
		r.FieldsPerRecord = -1
		r.LazyQuotes = true
		header, err := r.Read()
		if err != nil {
			return nil, nil, fmt.Errorf("no CSV header: %w", err)
		}
		for {
			row, err := r.Read()
			if err == io.EOF {
				break
			}
			line, _ := r.FieldPos(0)
			if err != nil {
				skipped = append(skipped, curriculum.Skipped{Path: fmt.Sprintf("%s:%d", path, line), Reason: "bad CSV: " + err.Error()})
				continue
			}
			if len(row) != len(header) {
				skipped = append(skipped, curriculum.Skipped{Path: fmt.Sprintf("%s:%d", path, line), Reason: fmt.Sprintf("%d fields, header has %d", len(row), len(header))})
				continue
			}
			m := map[string]any{}
			for i, h := range header {
				m[strings.TrimSpace(h)] = row[i]
			}
			add(m, line)
		}
		return recs, skipped, nil
	}
	return nil, nil, fmt.Errorf("unsupported product file type %q (want .json, .jsonl, .csv)", filepath.Ext(path))
}
