package curriculum

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func sample() *Curriculum {
	return &Curriculum{
		Manifest: Manifest{Source: "test", Teacher: "hand", Seed: 7, Skipped: []Skipped{{"a.pdf", "no text"}}},
		Chunks:   []Chunk{{ID: "c1", Source: "s", Title: "T", Text: "The sky is <b>green</b> & \"blue\"."}},
		Train: []Item{
			{Type: TypeDoc, ChunkID: "c1", Text: "T\n\nThe sky is green."},
			{Type: TypeQnA, ChunkID: "c1", Question: "What colour is the sky?", Answer: "Green."},
		},
		Validation: []Item{{Type: TypeQnA, Question: "q?", Answer: "a"}},
		Test: []Question{{ID: "q1", Question: "Sky colour?", Choices: []string{"red", "green", "blue", "pink"},
			Answer: 1, Kind: KindSeen, ChunkID: "c1"}},
	}
}

func TestWriteReadRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cur")
	c := sample()
	if err := Write(dir, c); err != nil {
		t.Fatal(err)
	}
	got, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Chunks, c.Chunks) || !reflect.DeepEqual(got.Train, c.Train) ||
		!reflect.DeepEqual(got.Validation, c.Validation) || !reflect.DeepEqual(got.Test, c.Test) {
		t.Fatalf("round trip differs:\n%+v\n%+v", got, c)
	}
	m := got.Manifest
	if m.Counts != (Counts{Chunks: 1, TrainDocs: 1, TrainQnA: 1, Validation: 1, Test: 1, TestSeen: 1}) {
		t.Errorf("counts %+v", m.Counts)
	}
	if len(m.Files) != 4 || len(m.Files[TestFile].SHA256) != 64 || m.Seed != 7 || len(m.Skipped) != 1 {
		t.Errorf("manifest %+v", m)
	}
	// Rewriting replaces the folder atomically and leaves no temporary folders behind, also
	// clearing those of a writer that was killed.
	os.MkdirAll(filepath.Join(filepath.Dir(dir), ".cur.tmp-123", "x"), 0o755)
	c.Test[0].Answer = 2
	if err := Write(dir, c); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Dir(dir))
	if len(entries) != 1 {
		t.Errorf("leftovers beside the curriculum: %v", entries)
	}
	got, err = Read(dir)
	if err != nil || got.Test[0].Answer != 2 {
		t.Fatalf("rewrite not visible: %v %+v", err, got)
	}
}

func TestWriteRejectsInvalid(t *testing.T) {
	c := sample()
	c.Test[0].Answer = 9
	err := Write(filepath.Join(t.TempDir(), "x"), c)
	if err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Fatalf("want out-of-range error, got %v", err)
	}
	c = sample()
	c.Train[1].ChunkID = "nope"
	if err := Write(filepath.Join(t.TempDir(), "x"), c); err == nil || !strings.Contains(err.Error(), "unknown chunk") {
		t.Fatalf("want unknown chunk error, got %v", err)
	}
}

func TestReadErrorsNameFileAndLine(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cur")
	c := sample()
	c.Test = append(c.Test, Question{ID: "q2", Question: "x?", Choices: []string{"a", "b"}, Answer: 0, Kind: KindUnknown})
	if err := Write(dir, c); err != nil {
		t.Fatal(err)
	}
	// Corrupt line 2 of test.jsonl and drop the hash so the parse error, not the hash, is reported.
	path := filepath.Join(dir, TestFile)
	data, _ := os.ReadFile(path)
	lines := strings.Split(string(data), "\n")
	lines[1] = `{"id":"q2","question":"x?","choices":["a","b"],"answer":5,"kind":"unknown"}`
	os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644)
	_, err := Read(dir)
	if err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("want hash mismatch, got %v", err)
	}
	mp := filepath.Join(dir, ManifestFile)
	mb, _ := os.ReadFile(mp)
	ms := strings.Replace(string(mb), c.Manifest.Files[TestFile].SHA256, "", 1)
	os.WriteFile(mp, []byte(ms), 0o644)
	_, err = Read(dir)
	if err == nil || !strings.Contains(err.Error(), TestFile+":2:") || !strings.Contains(err.Error(), "out of range") {
		t.Fatalf("want %s:2: out of range, got %v", TestFile, err)
	}
	lines[1] = `{"id":"q2", "bogus": 1}`
	os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644)
	if _, err = Read(dir); err == nil || !strings.Contains(err.Error(), TestFile+":2:") {
		t.Fatalf("want %s:2: error, got %v", TestFile, err)
	}
	if _, err := Read(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), ManifestFile) {
		t.Fatalf("want manifest error, got %v", err)
	}
}

func TestBalanceLetters(t *testing.T) {
	var qs []Question
	for i := 0; i < 103; i++ {
		qs = append(qs, Question{ID: fmt.Sprint(i), Question: "q", Choices: []string{fmt.Sprint("right", i), "w1", "w2", "w3"}, Answer: 0, Kind: KindSeen})
	}
	BalanceLetters(qs, 1)
	counts := make([]int, 4)
	for i, q := range qs {
		if q.Choices[q.Answer] != fmt.Sprint("right", i) {
			t.Fatalf("question %d lost its answer: %+v", i, q)
		}
		counts[q.Answer]++
	}
	for _, n := range counts {
		if n < 25 || n > 26 {
			t.Fatalf("letters not balanced: %v", counts)
		}
	}
	// Seeded: same seed, same result; another seed, another order.
	again := make([]Question, len(qs))
	for i := range again {
		again[i] = Question{Choices: []string{fmt.Sprint("right", i), "w1", "w2", "w3"}}
	}
	BalanceLetters(again, 1)
	same := 0
	for i := range qs {
		if again[i].Answer == qs[i].Answer {
			same++
		}
	}
	if same != len(qs) {
		t.Fatalf("not reproducible: %d/%d equal", same, len(qs))
	}
}

// knowledgeBase is n chunks "c00", "c01", ... with the facts fact(id) returns for each.
func knowledgeBase(n int, fact func(id string) []Fact) (chunks []Chunk, facts []Fact) {
	for i := range n {
		id := fmt.Sprintf("c%02d", i)
		chunks = append(chunks, Chunk{ID: id, Title: "Doc " + id, Text: "text of " + id})
		facts = append(facts, fact(id)...)
	}
	return chunks, facts
}

func TestAssembleRoles(t *testing.T) {
	chunks, facts := knowledgeBase(20, func(id string) (fs []Fact) {
		for j := range 3 {
			fs = append(fs, Fact{ChunkID: id, Question: fmt.Sprintf("f%d of %s?", j, id), Answer: "a",
				Distractors: []string{"b", "c", "B ", "d", "e"}})
		}
		return fs
	})
	c, err := Assemble(chunks, facts, AssembleOptions{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	n := c.ComputeCounts()
	// 20 chunks: 2 validation, 6 document-only, 12 seen.
	if n.TrainDocs != 20 || n.TrainQnA != 36 || n.Validation != 6 || n.TestSeen != 36 || n.TestDocumentOnly != 18 {
		t.Fatalf("counts %+v", n)
	}
	trainQ := map[string]bool{}
	cardChunks := map[string]bool{}
	for _, it := range c.Train {
		if it.Type == TypeQnA {
			trainQ[it.Question] = true
			cardChunks[it.ChunkID] = true
		}
	}
	for _, q := range c.Test {
		if (q.Kind == KindSeen) != cardChunks[q.ChunkID] {
			t.Fatalf("question %+v: kind disagrees with flashcards of its chunk", q)
		}
		if len(q.Choices) != 4 || q.Choices[q.Answer] != "a" {
			t.Fatalf("bad question %+v", q)
		}
	}
	for _, v := range c.Validation {
		if cardChunks[v.ChunkID] {
			t.Fatalf("validation flashcard from a training chunk: %+v", v)
		}
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if DocText(chunks[0]) != "Doc c00\n\ntext of c00" {
		t.Errorf("DocText %q", DocText(chunks[0]))
	}
}

// Paraphrase flashcards carry their number through Assemble, Write and Read, and
// LimitParaphrases keeps the first n of each fact in Train and Validation only.
func TestParaphraseNumbersAndLimit(t *testing.T) {
	chunks, facts := knowledgeBase(10, func(id string) []Fact {
		return []Fact{{ChunkID: id, Question: "q of " + id + "?", Answer: "a", Distractors: []string{"b", "c", "d"},
			Paraphrases: []QA{{"first rephrasing of " + id + "?", "a"}, {"second rephrasing of " + id + "?", "a"}}}}
	})
	c, err := Assemble(chunks, facts, AssembleOptions{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "cur")
	if err := Write(dir, c); err != nil {
		t.Fatal(err)
	}
	if c, err = Read(dir); err != nil {
		t.Fatal(err)
	}
	count := func(items []Item) map[int]int {
		n := map[int]int{}
		for _, it := range items {
			if it.Type == TypeQnA {
				n[it.Paraphrase]++
			}
			if it.Paraphrase > 0 && !strings.Contains(it.Question, []string{"", "first", "second"}[it.Paraphrase]) {
				t.Fatalf("item %+v: wrong paraphrase number", it)
			}
		}
		return n
	}
	train, val := count(c.Train), count(c.Validation)
	if train[0] == 0 || train[1] != train[0] || train[2] != train[0] || val[0] == 0 || val[2] != val[0] {
		t.Fatalf("paraphrase numbers: train %v validation %v", train, val)
	}
	for n := 0; n <= 2; n++ {
		l := c.LimitParaphrases(n)
		gotTrain, gotVal := count(l.Train), count(l.Validation)
		for k := 0; k <= 2; k++ {
			want, wantVal := train[k], val[k]
			if k > n {
				want, wantVal = 0, 0
			}
			if gotTrain[k] != want || gotVal[k] != wantVal {
				t.Fatalf("LimitParaphrases(%d): train %v validation %v", n, gotTrain, gotVal)
			}
		}
		if len(l.Test) != len(c.Test) || len(l.Chunks) != len(c.Chunks) {
			t.Fatalf("LimitParaphrases(%d) changed the test or chunks", n)
		}
	}
	if len(count(c.Train)) != 3 {
		t.Fatal("LimitParaphrases changed its receiver")
	}
}

func TestItemParaphraseNumberIsChecked(t *testing.T) {
	for _, it := range []Item{
		{Type: TypeQnA, Question: "q?", Answer: "a", Paraphrase: -1},
		{Type: TypeDoc, Text: "a document", Paraphrase: 1},
	} {
		if err := it.Validate(); err == nil || !strings.Contains(err.Error(), "paraphrase number") {
			t.Errorf("%+v: want a paraphrase-number error, got %v", it, err)
		}
	}
}
