package leakage

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perpetual-ml/perpetual/internal/testenv"

	"github.com/perpetual-ml/perpetual/curriculum"
	"github.com/perpetual-ml/perpetual/curriculum/perpetualfmt"
)

const dataDir = "../../../shared/datasets/perpetual"

func load(t *testing.T, task string) *curriculum.Curriculum {
	t.Helper()
	dir := filepath.Join(dataDir, task)
	testenv.File(t, "the Perpetual reference data", dir)
	c, err := perpetualfmt.ReadDir(dir, task)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func near(got, want, tol float64) bool { return math.Abs(got-want) <= tol }

// knownCounts are testdata/known.json's counts for one task, computed from the published JSON by
// testdata/make_known.py (plain Python, not this package).
type knownCounts struct {
	Questions int   `json:"questions"`
	Verbatim  int   `json:"verbatim"`
	Letters   []int `json:"letters"`
}

func known(t *testing.T, task string) knownCounts {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "known.json"))
	if err != nil {
		t.Fatal(err)
	}
	var all map[string]knownCounts
	if err := json.Unmarshal(data, &all); err != nil {
		t.Fatal(err)
	}
	k, ok := all[task]
	if !ok {
		t.Fatalf("testdata/known.json has no %s", task)
	}
	return k
}

// checkKnown compares a report's question, verbatim and letter counts with the independent ones.
func checkKnown(t *testing.T, r Report, k knownCounts) {
	t.Helper()
	if r.All.Questions != k.Questions || r.All.Verbatim != k.Verbatim {
		t.Errorf("verbatim overlap %d/%d, want %d/%d (testdata/make_known.py)", r.All.Verbatim, r.All.Questions, k.Verbatim, k.Questions)
	}
	if fmt.Sprint(r.Letters) != fmt.Sprint(k.Letters) {
		t.Errorf("letter counts %v, want %v (testdata/make_known.py)", r.Letters, k.Letters)
	}
}

// The known properties of the paper's research curriculum: ~88% of test questions verbatim among
// training flashcards, and answer letters A 35.7%, B 32.5%, C 28.0%, D 3.9%.
func TestResearchReproducesKnownLeakage(t *testing.T) {
	c := load(t, "research")
	r := Analyze(c, 0)
	checkKnown(t, r, known(t, "research"))
	if f := r.All.Frac(r.All.Verbatim); !near(f, 0.88, 0.005) {
		t.Errorf("verbatim overlap %.4f, want about 88%%", f)
	}
	if r.All.Near < r.All.Normalized || r.All.Normalized < r.All.Verbatim {
		t.Errorf("overlap counts not nested: %+v", r.All)
	}
	for i, want := range []float64{0.357, 0.325, 0.280, 0.039} {
		if got := r.All.Frac(r.Letters[i]); !near(got, want, 0.0005) {
			t.Errorf("letter %s: %.4f, want %.3f", curriculum.Letter(i), got, want)
		}
		if !near(r.AlwaysLetter[i], want, 0.0005) {
			t.Errorf("always-%s accuracy %.4f, want %.3f", curriculum.Letter(i), r.AlwaysLetter[i], want)
		}
	}
	var buf bytes.Buffer
	r.Format(&buf)
	for _, want := range []string{"verbatim", "88.3%", "A 704 (35.7%)", "D 0.039"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, buf.String())
		}
	}
	t.Log("\n" + buf.String())
}

// Products: about 5% verbatim, many near-duplicates, and always answering "B" scores about 0.40.
func TestProductsReproducesKnownLeakage(t *testing.T) {
	c := load(t, "products")
	r := Analyze(c, 0)
	checkKnown(t, r, known(t, "products"))
	if f := r.All.Frac(r.All.Verbatim); !near(f, 0.046, 0.001) {
		t.Errorf("verbatim overlap %.4f, want about 5%%", f)
	}
	if r.All.Near <= r.All.Normalized {
		t.Errorf("expected near-duplicates beyond exact matches: %+v", r.All)
	}
	if !near(r.AlwaysLetter[1], 0.399, 0.0005) {
		t.Errorf("always-B %.4f, want about 0.399", r.AlwaysLetter[1])
	}
	var buf bytes.Buffer
	r.Format(&buf)
	t.Log("\n" + buf.String())
}

func TestAnalyzeSmall(t *testing.T) {
	c := &curriculum.Curriculum{
		Train: []curriculum.Item{
			{Type: curriculum.TypeDoc, Text: "What is the capital of Zorbia?"},
			{Type: curriculum.TypeQnA, Question: "What is the capital of Zorbia?", Answer: "Quil"},
			{Type: curriculum.TypeQnA, Question: "How tall is the Quil tower in metres today?", Answer: "312"},
		},
	}
	qs := []string{
		"What is the capital of Zorbia?",               // verbatim
		"what is the CAPITAL of zorbia",                // normalised
		"How tall is the Quil tower in metres?",        // 7/8 tokens: near
		"Which river flows through Quil?",              // new
		"What is the capital of Zorbia's neighbour?",   // 6/8: below 0.8
		"How tall, in metres, is the Quil tower today", // same token set: normalised differs, near
	}
	for i, q := range qs {
		c.Test = append(c.Test, curriculum.Question{ID: fmt.Sprint(i), Question: q, Choices: []string{"a", "b", "c", "d"}, Answer: i % 2, Kind: curriculum.KindSeen})
	}
	r := Analyze(c, 0.8)
	if r.All.Verbatim != 1 || r.All.Normalized != 2 || r.All.Near != 4 || r.Flashcards != 2 {
		t.Fatalf("overlap %+v", r.All)
	}
	if r.Letters[0] != 3 || r.Letters[1] != 3 || r.AlwaysLetter[0] != 0.5 || r.AlwaysLetter[2] != 0 {
		t.Fatalf("letters %v always %v", r.Letters, r.AlwaysLetter)
	}
	if j := NewIndex([]string{"a b c d"}).MaxJaccard("a b c e"); !near(j, 3.0/5, 1e-9) {
		t.Fatalf("jaccard %v", j)
	}
}
