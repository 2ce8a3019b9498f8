// Package perpetualfmt reads and writes the original Perpetual curriculum files (the JSON arrays
// of scottsus/Perpetual: train.json with "doc" and "qna" items, test.json with lettered
// multiple-choice questions) and converts them to and from package curriculum.
//
// The files are read exactly as they are: documents are either a string (research) or a
// {"title","description"} object (products); choices carry their own letter prefixes ("A) ",
// "A: ", "A. ", or none), which ToCurriculum strips and reports. WriteTrain and WriteTest emit
// the byte layout of Python's json.dump(indent=4) (ASCII-escaped), so reading and writing an
// original file reproduces it byte for byte.
package perpetualfmt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/perpetual-ml/perpetual/curriculum"
)

// Document is a training document: either plain text or a product's title and description.
type Document struct {
	// IsObject is true for the {"title","description"} form.
	IsObject bool
	// Text is the plain-text form.
	Text string
	// Title and Description are the object form.
	Title, Description string
}

// TrainRecord is one element of train.json.
type TrainRecord struct {
	// Type is "doc" or "qna".
	Type string
	// Document is set for "doc" records.
	Document Document
	// Question and Answer are set for "qna" records.
	Question, Answer string
	// Line is the line of the file where the record starts (0 when not read from a file).
	Line int
}

// TestRecord is one element of test.json.
type TestRecord struct {
	Question string
	// Choices are as in the file, prefixes included.
	Choices []string
	// Answer is a letter "A".."D".
	Answer string
	// Line is the line of the file where the record starts.
	Line int
}

type rawTrain struct {
	Type     string          `json:"type"`
	Document json.RawMessage `json:"document"`
	Question *string         `json:"question"`
	Answer   *string         `json:"answer"`
}

type rawTest struct {
	Question *string  `json:"question"`
	Choices  []string `json:"choices"`
	Answer   *string  `json:"answer"`
}

// readArray decodes a top-level JSON array element by element, calling fn with each element and
// the line it starts on, so errors can point at the line.
func readArray(path string, fn func(raw json.RawMessage, line int) error) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	lineAt := func(off int64) int { return 1 + bytes.Count(data[:off], []byte{'\n'}) }
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("%s:1: %w", path, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return fmt.Errorf("%s:1: expected a JSON array, found %v", path, tok)
	}
	for dec.More() {
		off := dec.InputOffset()
		// Skip whitespace and the comma to find where the element really starts.
		for off < int64(len(data)) && strings.ContainsRune(" \t\r\n,", rune(data[off])) {
			off++
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fmt.Errorf("%s:%d: %w", path, lineAt(off), err)
		}
		if err := fn(raw, lineAt(off)); err != nil {
			return fmt.Errorf("%s:%d: %w", path, lineAt(off), err)
		}
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("%s:%d: %w", path, lineAt(dec.InputOffset()), err)
	}
	return nil
}

// ReadTrain reads a Perpetual train.json. Errors name the file and line.
func ReadTrain(path string) ([]TrainRecord, error) {
	var out []TrainRecord
	err := readArray(path, func(raw json.RawMessage, line int) error {
		var r rawTrain
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			return err
		}
		rec := TrainRecord{Type: r.Type, Line: line}
		switch r.Type {
		case "doc":
			if len(r.Document) == 0 {
				return fmt.Errorf("doc record without a document")
			}
			if r.Document[0] == '"' {
				if err := json.Unmarshal(r.Document, &rec.Document.Text); err != nil {
					return err
				}
			} else {
				var o struct {
					Title       *string `json:"title"`
					Description *string `json:"description"`
				}
				d := json.NewDecoder(bytes.NewReader(r.Document))
				d.DisallowUnknownFields()
				if err := d.Decode(&o); err != nil {
					return fmt.Errorf("document is neither a string nor {title, description}: %w", err)
				}
				if o.Title == nil || o.Description == nil {
					return fmt.Errorf("document object needs both title and description")
				}
				rec.Document = Document{IsObject: true, Title: *o.Title, Description: *o.Description}
			}
		case "qna":
			if r.Question == nil || r.Answer == nil {
				return fmt.Errorf("qna record needs question and answer")
			}
			rec.Question, rec.Answer = *r.Question, *r.Answer
		default:
			return fmt.Errorf("record type %q is neither \"doc\" nor \"qna\"", r.Type)
		}
		out = append(out, rec)
		return nil
	})
	return out, err
}

// ReadTest reads a Perpetual test.json. Errors name the file and line.
func ReadTest(path string) ([]TestRecord, error) {
	var out []TestRecord
	err := readArray(path, func(raw json.RawMessage, line int) error {
		var r rawTest
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			return err
		}
		if r.Question == nil || r.Answer == nil {
			return fmt.Errorf("test record needs question, choices and answer")
		}
		if len(r.Choices) < 2 {
			return fmt.Errorf("test record has %d choices", len(r.Choices))
		}
		if _, err := letterIndex(*r.Answer, len(r.Choices)); err != nil {
			return err
		}
		out = append(out, TestRecord{Question: *r.Question, Choices: r.Choices, Answer: *r.Answer, Line: line})
		return nil
	})
	return out, err
}

func letterIndex(s string, n int) (int, error) {
	if len(s) != 1 || s[0] < 'A' || int(s[0]-'A') >= n {
		return 0, fmt.Errorf("answer %q is not a letter among A..%s", s, curriculum.Letter(n-1))
	}
	return int(s[0] - 'A'), nil
}

// prefixRE matches a choice's own letter prefix: "A) ", "A: ", "A. ", "(A) ".
var prefixRE = regexp.MustCompile(`^\s*(\()?([A-Za-z])\s*([\)\.:])\s*`)

// StripPrefixes removes the choices' own letter prefixes ("A) x", "B) y", ...) and returns the
// texts and the prefix style (")", ":", ".", "()", or "" when there was none). Prefixes are
// stripped only when every choice carries its own position's letter in the same style, so a
// choice that merely starts with something like "C. elegans" is left alone.
func StripPrefixes(choices []string) (texts []string, style string) {
	texts = make([]string, len(choices))
	for i, ch := range choices {
		m := prefixRE.FindStringSubmatch(ch)
		if m == nil || !strings.EqualFold(m[2], curriculum.Letter(i)) {
			return append(texts[:0], choices...), ""
		}
		st := m[3]
		if m[1] == "(" {
			if st != ")" {
				return append(texts[:0], choices...), ""
			}
			st = "()"
		}
		if i == 0 {
			style = st
		} else if st != style {
			return append(texts[:0], choices...), ""
		}
		texts[i] = ch[len(m[0]):]
	}
	return texts, style
}

// writeJSONString writes s the way Python's json.dumps(ensure_ascii=True) does.
func writeJSONString(w *bytes.Buffer, s string) {
	w.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			w.WriteString(`\"`)
		case r == '\\':
			w.WriteString(`\\`)
		case r == '\n':
			w.WriteString(`\n`)
		case r == '\r':
			w.WriteString(`\r`)
		case r == '\t':
			w.WriteString(`\t`)
		case r == '\b':
			w.WriteString(`\b`)
		case r == '\f':
			w.WriteString(`\f`)
		case r >= 0x20 && r <= 0x7e:
			w.WriteRune(r)
		case r > 0xffff:
			r -= 0x10000
			fmt.Fprintf(w, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
		default:
			fmt.Fprintf(w, `\u%04x`, r)
		}
	}
	w.WriteByte('"')
}

type kv struct {
	key string
	val func(w *bytes.Buffer, indent string)
}

func str(s string) func(*bytes.Buffer, string) {
	return func(w *bytes.Buffer, _ string) { writeJSONString(w, s) }
}

func writeObject(w *bytes.Buffer, indent string, fields []kv) {
	w.WriteString("{\n")
	in := indent + "    "
	for i, f := range fields {
		w.WriteString(in)
		writeJSONString(w, f.key)
		w.WriteString(": ")
		f.val(w, in)
		if i < len(fields)-1 {
			w.WriteByte(',')
		}
		w.WriteByte('\n')
	}
	w.WriteString(indent + "}")
}

func writeArray(w *bytes.Buffer, indent string, n int, elem func(w *bytes.Buffer, indent string, i int)) {
	if n == 0 {
		w.WriteString("[]")
		return
	}
	w.WriteString("[\n")
	in := indent + "    "
	for i := 0; i < n; i++ {
		w.WriteString(in)
		elem(w, in, i)
		if i < n-1 {
			w.WriteByte(',')
		}
		w.WriteByte('\n')
	}
	w.WriteString(indent + "]")
}

// EncodeTrain renders train records as Python's json.dump(indent=4) would.
func EncodeTrain(recs []TrainRecord) []byte {
	var w bytes.Buffer
	writeArray(&w, "", len(recs), func(w *bytes.Buffer, in string, i int) {
		r := recs[i]
		if r.Type == "doc" {
			doc := str(r.Document.Text)
			if r.Document.IsObject {
				d := r.Document
				doc = func(w *bytes.Buffer, in string) {
					writeObject(w, in, []kv{{"title", str(d.Title)}, {"description", str(d.Description)}})
				}
			}
			writeObject(w, in, []kv{{"type", str("doc")}, {"document", doc}})
			return
		}
		writeObject(w, in, []kv{{"type", str(r.Type)}, {"question", str(r.Question)}, {"answer", str(r.Answer)}})
	})
	return w.Bytes()
}

// EncodeTest renders test records as Python's json.dump(indent=4) would.
func EncodeTest(recs []TestRecord) []byte {
	var w bytes.Buffer
	writeArray(&w, "", len(recs), func(w *bytes.Buffer, in string, i int) {
		r := recs[i]
		writeObject(w, in, []kv{
			{"question", str(r.Question)},
			{"choices", func(w *bytes.Buffer, in string) {
				writeArray(w, in, len(r.Choices), func(w *bytes.Buffer, _ string, j int) { writeJSONString(w, r.Choices[j]) })
			}},
			{"answer", str(r.Answer)},
		})
	})
	return w.Bytes()
}

// WriteTrain writes train.json in the original layout.
func WriteTrain(path string, recs []TrainRecord) error {
	return os.WriteFile(path, EncodeTrain(recs), 0o644)
}

// WriteTest writes test.json in the original layout.
func WriteTest(path string, recs []TestRecord) error {
	return os.WriteFile(path, EncodeTest(recs), 0o644)
}

// ToCurriculum converts original records to our format. Each doc record becomes a chunk
// "<name>/doc0000" and a doc item; qna records belong to the doc that precedes them; test
// questions get kind "unknown" (the files do not say which facts were flashcards) and their
// letter prefixes stripped, which the manifest notes report with counts per style. A choice
// that is only a prefix keeps it as its text (noted); a question that is still invalid (an
// empty choice) is skipped with the reason.
func ToCurriculum(name string, train []TrainRecord, test []TestRecord) (*curriculum.Curriculum, error) {
	c := &curriculum.Curriculum{Manifest: curriculum.Manifest{Source: "perpetual", Teacher: "perpetual", Inputs: []string{name}}}
	chunkID := ""
	for i, r := range train {
		switch r.Type {
		case "doc":
			chunkID = fmt.Sprintf("%s/doc%04d", name, len(c.Chunks))
			ch := curriculum.Chunk{ID: chunkID, Source: fmt.Sprintf("%s/train.json#%d", name, i)}
			if r.Document.IsObject {
				ch.Title, ch.Text = r.Document.Title, r.Document.Description
			} else {
				ch.Text = r.Document.Text
			}
			text := curriculum.DocText(ch)
			if strings.TrimSpace(ch.Text) == "" {
				// Keep an object with an empty description as a title-only chunk.
				ch.Text, ch.Title = ch.Title, ""
				text = ch.Text
			}
			if strings.TrimSpace(ch.Text) == "" {
				c.Manifest.Skipped = append(c.Manifest.Skipped, curriculum.Skipped{Path: ch.Source, Reason: "empty document"})
				chunkID = ""
				continue
			}
			c.Chunks = append(c.Chunks, ch)
			c.Train = append(c.Train, curriculum.Item{Type: curriculum.TypeDoc, ChunkID: chunkID, Text: text})
		case "qna":
			c.Train = append(c.Train, curriculum.Item{Type: curriculum.TypeQnA, ChunkID: chunkID, Question: r.Question, Answer: r.Answer})
		}
	}
	styles := map[string]int{}
	for i, r := range test {
		ans, err := letterIndex(r.Answer, len(r.Choices))
		if err != nil {
			return nil, fmt.Errorf("%s test record %d: %w", name, i, err)
		}
		q := curriculum.Question{ID: fmt.Sprintf("%s/q%04d", name, i), Question: r.Question, Answer: ans, Kind: curriculum.KindUnknown}
		texts, style := StripPrefixes(r.Choices)
		styles[style]++
		q.Choices = texts
		// A choice that is nothing but its prefix ("A) " in research) keeps the prefix as its
		// text, so the question and the paper's counts survive; the note says where.
		for j := range q.Choices {
			if strings.TrimSpace(q.Choices[j]) == "" && strings.TrimSpace(r.Choices[j]) != "" {
				q.Choices[j] = strings.TrimSpace(r.Choices[j])
				c.Manifest.Notes = append(c.Manifest.Notes, fmt.Sprintf("%s/test.json:%d: choice %s is only its prefix; kept as %q",
					name, r.Line, curriculum.Letter(j), q.Choices[j]))
			}
		}
		if err := q.Validate(); err != nil {
			c.Manifest.Skipped = append(c.Manifest.Skipped, curriculum.Skipped{
				Path: fmt.Sprintf("%s/test.json:%d", name, r.Line), Reason: err.Error()})
			continue
		}
		c.Test = append(c.Test, q)
	}
	if len(test) > 0 {
		c.Manifest.Notes = append(c.Manifest.Notes, fmt.Sprintf(
			"choice letter prefixes stripped (questions): %d \"X) \", %d \"X: \", %d \"X. \", %d \"(X) \", %d without prefix",
			styles[")"], styles[":"], styles["."], styles["()"], styles[""]))
	}
	return c, nil
}

// FromCurriculum converts our format back to the original records. Doc items whose chunk has a
// title are written as {title, description} objects; choices get prefixes in the given style
// (")" gives "A) text", ":" gives "A: text", "." gives "A. text", "" none).
func FromCurriculum(c *curriculum.Curriculum, style string) ([]TrainRecord, []TestRecord) {
	chunks := c.ChunkByID()
	var train []TrainRecord
	for _, it := range c.Train {
		if it.Type == curriculum.TypeQnA {
			train = append(train, TrainRecord{Type: "qna", Question: it.Question, Answer: it.Answer})
			continue
		}
		doc := Document{Text: it.Text}
		if ch, ok := chunks[it.ChunkID]; ok && ch.Title != "" && it.Text == curriculum.DocText(*ch) {
			doc = Document{IsObject: true, Title: ch.Title, Description: ch.Text}
		}
		train = append(train, TrainRecord{Type: "doc", Document: doc})
	}
	var test []TestRecord
	for _, q := range c.Test {
		r := TestRecord{Question: q.Question, Answer: curriculum.Letter(q.Answer)}
		for j, ch := range q.Choices {
			switch style {
			case "":
			case "()":
				ch = "(" + curriculum.Letter(j) + ") " + ch
			default:
				ch = curriculum.Letter(j) + style + " " + ch
			}
			r.Choices = append(r.Choices, ch)
		}
		test = append(test, r)
	}
	return train, test
}

// ReadDir reads <dir>/train.json and <dir>/test.json and converts them; name defaults to the
// folder's base name.
func ReadDir(dir, name string) (*curriculum.Curriculum, error) {
	train, err := ReadTrain(dir + "/train.json")
	if err != nil {
		return nil, err
	}
	test, err := ReadTest(dir + "/test.json")
	if err != nil {
		return nil, err
	}
	return ToCurriculum(name, train, test)
}
