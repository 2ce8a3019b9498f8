package perpetualfmt

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/perpetual-ml/perpetual/internal/testenv"

	"github.com/perpetual-ml/perpetual/curriculum"
)

// dataDir is the shared reference data, relative to this package's folder.
const dataDir = "../../../shared/datasets/perpetual"

func need(t *testing.T, path string) {
	t.Helper()
	testenv.File(t, "the Perpetual reference data", path)
}

func TestByteIdenticalRoundTrip(t *testing.T) {
	for _, task := range []string{"products", "research"} {
		dir := filepath.Join(dataDir, task)
		need(t, dir)
		train, err := ReadTrain(filepath.Join(dir, "train.json"))
		if err != nil {
			t.Fatal(err)
		}
		test, err := ReadTest(filepath.Join(dir, "test.json"))
		if err != nil {
			t.Fatal(err)
		}
		for name, got := range map[string][]byte{"train.json": EncodeTrain(train), "test.json": EncodeTest(test)} {
			want, _ := os.ReadFile(filepath.Join(dir, name))
			if !bytes.Equal(got, want) {
				i := 0
				for i < len(got) && i < len(want) && got[i] == want[i] {
					i++
				}
				t.Errorf("%s/%s: differs at byte %d: got %q want %q", task, name, i,
					got[max(0, i-40):min(len(got), i+40)], want[max(0, i-40):min(len(want), i+40)])
			}
		}
	}
}

func TestToCurriculumOnReferenceData(t *testing.T) {
	for _, tc := range []struct {
		task            string
		docs, qna, test int
		skipped         int
		reason          string
	}{
		{"products", 500, 3049, 2391, 0, ""},
		{"research", 397, 1974, 1974, 0, ""},
	} {
		dir := filepath.Join(dataDir, tc.task)
		need(t, dir)
		c, err := ReadDir(dir, tc.task)
		if err != nil {
			t.Fatal(err)
		}
		n := c.ComputeCounts()
		if n.TrainDocs != tc.docs || n.TrainQnA != tc.qna || n.Test != tc.test || n.TestUnknown != tc.test || n.Chunks != tc.docs {
			t.Errorf("%s: counts %+v", tc.task, n)
		}
		// No stripped choice still starts with its letter prefix, except where the text itself
		// starts with an initial (research has "A. A. Graves ...").
		for _, q := range c.Test {
			for j, ch := range q.Choices {
				if p := curriculum.Letter(j); strings.HasPrefix(ch, p+") ") || strings.HasPrefix(ch, p+": ") || (strings.HasPrefix(ch, p+". ") && q.ID != "research/q1480") {
					t.Fatalf("%s %s: choice %d still prefixed: %q", tc.task, q.ID, j, ch)
				}
			}
		}
		if len(c.Manifest.Skipped) != tc.skipped || (tc.skipped > 0 && !strings.Contains(c.Manifest.Skipped[0].Reason, tc.reason)) {
			t.Errorf("%s: skipped %+v", tc.task, c.Manifest.Skipped)
		}
		if tc.task == "research" && (len(c.Manifest.Notes) != 2 || !strings.Contains(c.Manifest.Notes[0], `test.json:15402: choice A is only its prefix; kept as "A)"`)) {
			t.Errorf("research notes %v", c.Manifest.Notes)
		}
		if !strings.Contains(c.Manifest.Notes[len(c.Manifest.Notes)-1], "without prefix") {
			t.Errorf("%s: notes %v", tc.task, c.Manifest.Notes)
		}
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		// Every flashcard belongs to the document before it.
		for _, it := range c.Train {
			if it.ChunkID == "" {
				t.Fatalf("%s: item without chunk %+v", tc.task, it)
			}
		}
		// Converting back gives the same records, with prefixes normalised.
		train, test := FromCurriculum(c, ")")
		orig, _ := ReadTrain(filepath.Join(dir, "train.json"))
		for i := range orig {
			orig[i].Line = 0
		}
		if !reflect.DeepEqual(train, orig) {
			t.Errorf("%s: train records do not round-trip", tc.task)
		}
		origTest, _ := ReadTest(filepath.Join(dir, "test.json"))
		for i, r := range test {
			o := origTest[i]
			if r.Question != o.Question || r.Answer != o.Answer {
				t.Fatalf("%s: test %d differs", tc.task, i)
			}
			stripped, _ := StripPrefixes(o.Choices)
			for j := range r.Choices {
				if stripped[j] == "" {
					stripped[j] = strings.TrimSpace(o.Choices[j])
				}
				if r.Choices[j] != curriculum.Letter(j)+") "+stripped[j] {
					t.Fatalf("%s: test %d choice %d = %q", tc.task, i, j, r.Choices[j])
				}
			}
		}
		// And our own folder format keeps everything.
		out := filepath.Join(t.TempDir(), tc.task)
		if err := curriculum.Write(out, c); err != nil {
			t.Fatal(err)
		}
		back, err := curriculum.Read(out)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back.Test, c.Test) || !reflect.DeepEqual(back.Train, c.Train) {
			t.Errorf("%s: folder round trip differs", tc.task)
		}
	}
}

func TestStripPrefixes(t *testing.T) {
	for _, tc := range []struct {
		in    []string
		want  []string
		style string
	}{
		{[]string{"A) x", "B) y", "C) z", "D) w"}, []string{"x", "y", "z", "w"}, ")"},
		{[]string{"A: x", "B: y"}, []string{"x", "y"}, ":"},
		{[]string{"(A) x", "(B) y"}, []string{"x", "y"}, "()"},
		{[]string{"a. x", "b. y"}, []string{"x", "y"}, "."},
		// Mixed styles, wrong letters or a lone letter are not prefixes.
		{[]string{"A) x", "B: y"}, []string{"A) x", "B: y"}, ""},
		{[]string{"C. elegans", "E. coli"}, []string{"C. elegans", "E. coli"}, ""},
		{[]string{"A) ", "B) y"}, []string{"", "y"}, ")"},
		{[]string{"plain", "text"}, []string{"plain", "text"}, ""},
	} {
		got, style := StripPrefixes(tc.in)
		if !reflect.DeepEqual(got, tc.want) || style != tc.style {
			t.Errorf("StripPrefixes(%q) = %q, %q; want %q, %q", tc.in, got, style, tc.want, tc.style)
		}
	}
}

func TestBadInputsNameFileAndLine(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, body, want string
		test             bool
	}{
		{"a.json", "[\n  {\"type\": \"doc\", \"document\": \"x\"},\n  {\"type\": \"pic\"}\n]", "a.json:3: record type \"pic\"", false},
		{"b.json", "[\n{\"type\": \"doc\", \"document\": {\"title\": \"t\"}}]", "b.json:2: document object needs both", false},
		{"c.json", "{}", "c.json:1: expected a JSON array", false},
		{"d.json", "[\n{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"answer\": \"E\"}]", "d.json:2: answer \"E\"", true},
		{"e.json", "[\n{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"answer\": \"A\"},\n{\"question\": ", "e.json:3:", true},
		{"f.json", "[{\"type\": \"qna\", \"question\": \"q\"}]", "f.json:1: qna record needs", false},
	} {
		p := filepath.Join(dir, tc.name)
		os.WriteFile(p, []byte(tc.body), 0o644)
		var err error
		if tc.test {
			_, err = ReadTest(p)
		} else {
			_, err = ReadTrain(p)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
	if _, err := ReadTrain(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("missing file: no error")
	}
}

// FuzzEncode checks that the Python-layout encoder always produces JSON that decodes to the input.
func FuzzEncode(f *testing.F) {
	f.Add("Intel\u00ae Xeon \"6-core\"\n\t\\ 😀", "A) x", "\x00\x7f<>&/")
	f.Fuzz(func(t *testing.T, q, c1, c2 string) {
		// Each string on its own: invalid fragments can concatenate into valid UTF-8.
		if !utf8Valid(q) || !utf8Valid(c1) || !utf8Valid(c2) {
			return
		}
		recs := []TestRecord{{Question: q, Choices: []string{c1, c2}, Answer: "B"}}
		var back []struct {
			Question string   `json:"question"`
			Choices  []string `json:"choices"`
			Answer   string   `json:"answer"`
		}
		if err := json.Unmarshal(EncodeTest(recs), &back); err != nil {
			t.Fatalf("invalid JSON: %v\n%s", err, EncodeTest(recs))
		}
		if len(back) != 1 || back[0].Question != q || back[0].Choices[0] != c1 || back[0].Choices[1] != c2 {
			t.Fatalf("decoded %q", back)
		}
	})
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

// FuzzReadTrain: arbitrary bytes give records or an error naming the file, never a panic.
func FuzzReadTrain(f *testing.F) {
	f.Add([]byte(`[{"type": "doc", "document": {"title": "t", "description": "d"}}, {"type": "qna", "question": "q", "answer": "a"}]`))
	f.Add([]byte(`[{"question": "q", "choices": ["A) x", "B) y"], "answer": "B"}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "train.json")
		os.WriteFile(p, data, 0o644)
		if _, err := ReadTrain(p); err != nil && !strings.Contains(err.Error(), p) {
			t.Fatalf("error does not name the file: %v", err)
		}
		if recs, err := ReadTest(p); err == nil {
			if _, err := ToCurriculum("x", nil, recs); err != nil {
				t.Fatalf("valid test records failed to convert: %v", err)
			}
		} else if !strings.Contains(err.Error(), p) {
			t.Fatalf("error does not name the file: %v", err)
		}
	})
}
