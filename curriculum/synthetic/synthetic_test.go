package synthetic

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/perpetual-ml/perpetual/curriculum"
	"github.com/perpetual-ml/perpetual/curriculum/leakage"
)

func TestBuildAllTasks(t *testing.T) {
	for _, task := range Tasks {
		c, err := Build(task, Options{Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		n := c.ComputeCounts()
		if n.Chunks != 36 || n.Test < 100 || n.Test > 200 || n.TestSeen == 0 || n.TestDocumentOnly == 0 || n.Validation == 0 {
			t.Errorf("%s: counts %+v", task, n)
		}
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		chunks := c.ChunkByID()
		for _, q := range c.Test {
			if len(q.Choices) != 4 {
				t.Fatalf("%s: %+v", task, q)
			}
			// Every tested fact is stated in its document.
			if ans := q.Choices[q.Answer]; !strings.Contains(chunks[q.ChunkID].Text, ans) {
				t.Errorf("%s: answer %q of %q not in chunk %s", task, ans, q.Question, q.ChunkID)
			}
		}
		r := leakage.Analyze(c, 0)
		for i, a := range r.AlwaysLetter {
			if a > 0.27 {
				t.Errorf("%s: always-%s scores %.3f", task, curriculum.Letter(i), a)
			}
		}
		// Test stems are worded differently from the flashcards: no verbatim overlap.
		if r.All.Verbatim != 0 {
			t.Errorf("%s: %d test questions verbatim among flashcards", task, r.All.Verbatim)
		}
		// Reproducible from the seed, different for another seed.
		again, _ := Build(task, Options{Seed: 1})
		if !reflect.DeepEqual(again.Test, c.Test) || !reflect.DeepEqual(again.Train, c.Train) {
			t.Errorf("%s: not reproducible", task)
		}
		other, _ := Build(task, Options{Seed: 2})
		if reflect.DeepEqual(other.Chunks, c.Chunks) {
			t.Errorf("%s: seed ignored", task)
		}
	}
	if _, err := Build("poetry", Options{}); err == nil {
		t.Error("unknown task accepted")
	}
}

// Augmentation adds training material only: the test and the base items stay the same.
func TestAugmentation(t *testing.T) {
	for _, task := range Tasks {
		base, _ := Build(task, Options{Seed: 7})
		aug, err := Build(task, Options{Seed: 7, DocVariants: 2, Paraphrases: 2})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(base.Test, aug.Test) || !reflect.DeepEqual(base.Validation[0], aug.Validation[0]) {
			t.Fatalf("%s: augmentation changed the test or validation", task)
		}
		nb, na := base.ComputeCounts(), aug.ComputeCounts()
		if na.TrainDocs != 3*nb.TrainDocs || na.TrainQnA != 3*nb.TrainQnA || na.Validation != 3*nb.Validation {
			t.Fatalf("%s: counts %+v -> %+v", task, nb, na)
		}
		// Every variant restates the document-only facts too: their answers are in the variants.
		variants := map[string]string{}
		for _, it := range aug.Train {
			if it.Type == curriculum.TypeDoc {
				variants[it.ChunkID] += it.Text
			}
		}
		for _, q := range aug.Test {
			if !strings.Contains(variants[q.ChunkID], q.Choices[q.Answer]) {
				t.Fatalf("%s: %q not in the documents of %s", task, q.Choices[q.Answer], q.ChunkID)
			}
		}
		if r := leakage.Analyze(aug, 0); r.All.Verbatim != 0 || r.All.Normalized != 0 {
			t.Errorf("%s: paraphrases leak test questions: %+v", task, r.All)
		}
		// A model trained without the paraphrases sees the unaugmented flashcards.
		para, _ := Build(task, Options{Seed: 7, Paraphrases: 2})
		if !reflect.DeepEqual(para.LimitParaphrases(0).Train, base.Train) {
			t.Errorf("%s: LimitParaphrases(0) is not the curriculum without paraphrases", task)
		}
	}
}

func TestSizeIsConfigurable(t *testing.T) {
	c, err := Build("products", Options{Seed: 3, Chunks: 5, FactsPerChunk: 2})
	if err != nil {
		t.Fatal(err)
	}
	if n := c.ComputeCounts(); n.Chunks != 5 || n.Test+n.Validation != 10 {
		t.Fatalf("counts %+v", n)
	}
}

func TestCodeChunksAreValidGo(t *testing.T) {
	chunks, _, err := Generate("code", Options{Seed: 4, Chunks: 12})
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range chunks {
		if _, err := parser.ParseFile(token.NewFileSet(), ch.Source, ch.Text, parser.ParseComments); err != nil {
			t.Fatalf("%s does not parse: %v\n%s", ch.ID, err, ch.Text)
		}
	}
}

var capWord = regexp.MustCompile(`\b[A-Z][a-z]{3,}\b`)

func TestWorldIsSeparateFromKnowledge(t *testing.T) {
	w := NewWorld(WorldOptions{Seed: 1})
	if len(w.Docs) < 80 || len(w.Pairs) < 600 || len(w.Questions) < 600 || len(w.Reading) != 200 {
		t.Fatalf("world sizes: %d docs, %d pairs, %d questions, %d reading", len(w.Docs), len(w.Pairs), len(w.Questions), len(w.Reading))
	}
	worldWords := map[string]bool{}
	for _, d := range w.Docs {
		for _, m := range capWord.FindAllString(d, -1) {
			worldWords[m] = true
		}
	}
	for _, task := range Tasks {
		chunks, _, _ := Generate(task, Options{Seed: 1})
		for _, ch := range chunks {
			for _, m := range capWord.FindAllString(ch.Text, -1) {
				// Invented names (not English words shared by templates) must not cross over.
				if worldWords[m] && !strings.Contains("Belmor Abstract January February March April June July August September October November December Many", m) {
					if strings.Contains(strings.Join(w.Docs, " "), m+" is a town") {
						t.Errorf("%s: world town %q appears in knowledge chunk %s", task, m, ch.ID)
					}
				}
			}
		}
	}
	for _, r := range w.Reading {
		q := r.Question
		if !strings.Contains(r.Passage, q.Choices[q.Answer]) {
			t.Fatalf("reading answer not in passage: %+v", r)
		}
	}
	withContext := 0
	for _, p := range w.Pairs {
		if p.Input != "" {
			withContext++
		}
	}
	if withContext != 200 {
		t.Errorf("%d reading-comprehension pairs", withContext)
	}
	dir := t.TempDir()
	if err := WriteWorld(dir, w); err != nil {
		t.Fatal(err)
	}
	for name, n := range map[string]int{WorldDocsFile: len(w.Docs), WorldPairsFile: len(w.Pairs), WorldQuestionsFile: len(w.Questions), WorldReadingFile: len(w.Reading)} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || strings.Count(string(data), "\n") != n {
			t.Errorf("%s: %v, %d lines, want %d", name, err, strings.Count(string(data), "\n"), n)
		}
	}
	if !reflect.DeepEqual(NewWorld(WorldOptions{Seed: 1}).Pairs, w.Pairs) {
		t.Error("world not reproducible")
	}
	counts := make([]int, 4)
	for _, q := range w.Questions {
		counts[q.Answer]++
	}
	for _, n := range counts {
		if n*4 < len(w.Questions)-4 || n*4 > len(w.Questions)+4 {
			t.Fatalf("world letters unbalanced: %v", counts)
		}
	}
}

// TestPracticeNamesAreDisjoint: a practice knowledge base shares no entity with a test knowledge
// base of any seed and size (here several), so training on it leaks no test fact; every invented
// practice name starts with a practice syllable.
func TestPracticeNamesAreDisjoint(t *testing.T) {
	for _, task := range Tasks {
		practice, _, err := Generate(task, Options{Seed: 1, Chunks: 60, Practice: true})
		if err != nil {
			t.Fatal(err)
		}
		titles := map[string]bool{}
		for _, p := range practice {
			titles[p.Title] = true
			name := strings.Fields(strings.TrimPrefix(p.Title, "the "))[0]
			if !strings.ContainsAny(strings.ToLower(name[:1]), "gfwj") {
				t.Errorf("%s: practice title %q does not start with a practice syllable", task, p.Title)
			}
		}
		for _, seed := range []int64{1, 2, 3, 4} {
			for _, n := range []int{12, 36, 60} {
				test, _, err := Generate(task, Options{Seed: seed, Chunks: n})
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range test {
					if titles[c.Title] {
						t.Fatalf("%s: practice entity %q is a test entity (seed %d, %d chunks)", task, c.Title, seed, n)
					}
				}
			}
		}
	}
}
