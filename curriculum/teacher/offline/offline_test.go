package offline

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perpetual-ml/perpetual/internal/testenv"

	"github.com/perpetual-ml/perpetual/curriculum"
	"github.com/perpetual-ml/perpetual/curriculum/perpetualfmt"
	"github.com/perpetual-ml/perpetual/curriculum/sources/code"
	"github.com/perpetual-ml/perpetual/curriculum/sources/papers"
	"github.com/perpetual-ml/perpetual/curriculum/sources/products"
	"github.com/perpetual-ml/perpetual/curriculum/synthetic"
)

func factBy(facts []curriculum.Fact, question string) *curriculum.Fact {
	for i := range facts {
		if facts[i].Question == question {
			return &facts[i]
		}
	}
	return nil
}

func TestProducts(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	brands := []string{"Acme", "Zed", "Orbo", "Kilt", "Mira", "Acme"}
	for i, br := range brands {
		b.WriteString(`{"title": "Widget ` + string(rune('A'+i)) + `", "brand": "` + br + `", "price": "$` + string(rune('1'+i)) + `0", "specs": {"Colour": "` +
			[]string{"red", "blue", "green", "black", "white", "red"}[i] + `", "Rare": "only` + string(rune('a'+i)) + `"}}` + "\n")
	}
	os.WriteFile(filepath.Join(dir, "p.jsonl"), []byte(b.String()), 0o644)
	res, err := products.Load([]string{filepath.Join(dir, "p.jsonl")}, products.Options{})
	if err != nil {
		t.Fatal(err)
	}
	facts := Products(res.Records, 1)
	f := factBy(facts, "What is the brand of Widget B?")
	if f == nil || f.TestAnswer != "Zed" || len(f.Distractors) != 3 || f.TestQuestion != "Which brand does Widget B have?" {
		t.Fatalf("brand fact %+v", f)
	}
	for _, d := range f.Distractors {
		if d == "Zed" || !strings.Contains("Acme Orbo Kilt Mira", d) {
			t.Fatalf("distractor %q is not another record's brand", d)
		}
	}
	if factBy(facts, "What is the colour of Widget A?") == nil || factBy(facts, "What is the rare of Widget A?") == nil {
		t.Errorf("spec facts missing: %d facts", len(facts))
	}
	// Category is empty everywhere: no question about it.
	for _, f := range facts {
		if strings.Contains(f.Question, "category") {
			t.Fatalf("question on an empty field: %+v", f)
		}
	}
	// Brand "Acme" twice: Widget A's distractors never repeat the answer.
	fa := factBy(facts, "What is the brand of Widget A?")
	for _, d := range fa.Distractors {
		if d == "Acme" {
			t.Fatal("answer among distractors")
		}
	}
	c, err := curriculum.Assemble(res.Chunks, facts, curriculum.AssembleOptions{Seed: 1})
	if err != nil || c.Validate() != nil {
		t.Fatalf("assemble: %v", err)
	}
}

func TestGoCodeOnRealModule(t *testing.T) {
	root := testenv.ModuleDir(t, "github.com/spf13/cobra")
	res, err := code.Walk(root, code.Options{})
	if err != nil {
		t.Fatal(err)
	}
	facts, skipped := Code(root, res.Chunks, 1)
	if len(skipped) != 0 || len(facts) < 100 {
		t.Fatalf("%d facts, skipped %v", len(facts), skipped)
	}
	f := factBy(facts, "What does the method Command.Execute return?")
	if f == nil || f.TestAnswer != "error" {
		t.Fatalf("Command.Execute fact %+v", f)
	}
	p := factBy(facts, "What are the parameters of the method Command.SetArgs?")
	if p == nil || p.TestAnswer != "(a []string)" {
		t.Fatalf("SetArgs fact %+v", p)
	}
	chunks := map[string]string{}
	for _, c := range res.Chunks {
		chunks[c.ID] = c.Text
	}
	if !strings.Contains(chunks[f.ChunkID], "func (c *Command) Execute() error") {
		t.Errorf("fact attributed to chunk %s without the declaration", f.ChunkID)
	}
	for _, f := range facts {
		if strings.HasSuffix(strings.Split(f.ChunkID, "#")[0], "_test.go") {
			t.Fatalf("fact from a test file: %+v", f)
		}
	}
}

// The offline Go teacher, run on the synthetic module written to disk, recovers the generator's
// own facts (packages, return types, parameter counts).
func TestGoCodeAgreesWithSyntheticTruth(t *testing.T) {
	chunks, truth, err := synthetic.Generate("code", synthetic.Options{Seed: 5, Chunks: 16, FactsPerChunk: 7})
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	var walked []curriculum.Chunk
	for _, c := range chunks {
		rel := strings.TrimPrefix(c.Source, synthetic.ModulePath+"/")
		os.MkdirAll(filepath.Join(root, filepath.Dir(rel)), 0o755)
		os.WriteFile(filepath.Join(root, rel), []byte(c.Text), 0o644)
		walked = append(walked, curriculum.Chunk{ID: c.ID, Source: rel, Text: c.Text})
	}
	facts, skipped := Code(root, walked, 1)
	if len(skipped) > 0 {
		t.Fatal(skipped)
	}
	byChunkAnswer := map[string]bool{}
	for _, f := range facts {
		byChunkAnswer[f.ChunkID+"|"+f.TestAnswer] = true
	}
	checked := 0
	for _, tf := range truth {
		if strings.HasPrefix(tf.Question, "Which package defines") || strings.HasPrefix(tf.Question, "What does") ||
			strings.HasPrefix(tf.Question, "How many parameters") {
			checked++
			if !byChunkAnswer[tf.ChunkID+"|"+tf.TestAnswer] {
				t.Errorf("offline teacher lacks %q -> %q", tf.Question, tf.TestAnswer)
			}
		}
	}
	if checked < 30 {
		t.Fatalf("only %d facts checked", checked)
	}
}

func TestPython(t *testing.T) {
	root := t.TempDir()
	src := `import os


class Store:
    """A store."""

    def __init__(self, path):
        self.path = path

    def get(self, key: str, default=None) -> bytes:
        return b""

    def _private(self):
        pass


def open_store(path: str,
               mode: str = "r",
               *, cache: dict[str, int] = {}) -> Store:
    def helper(x):
        return x
    return Store(path)


async def fetch(url):
    pass
`
	os.MkdirAll(filepath.Join(root, "pkg"), 0o755)
	os.WriteFile(filepath.Join(root, "pkg", "store.py"), []byte(src), 0o644)
	for name, ret := range map[string]string{"a.py": "int", "b.py": "str", "c.py": "None"} {
		os.WriteFile(filepath.Join(root, "pkg", name), []byte("def f_"+name[:1]+"(x, y) -> "+ret+":\n    pass\n"), 0o644)
	}
	res, err := code.Walk(root, code.Options{})
	if err != nil {
		t.Fatal(err)
	}
	facts, _ := Code(root, res.Chunks, 2)
	if f := factBy(facts, "What does the method Store.get return?"); f == nil || f.TestAnswer != "bytes" {
		t.Errorf("Store.get returns: %+v", f)
	}
	if f := factBy(facts, "How many parameters does the function open_store take?"); f == nil || f.TestAnswer != "3" {
		t.Errorf("open_store params: %+v", f)
	}
	if f := factBy(facts, "What are the parameters of the function open_store?"); f == nil ||
		f.TestAnswer != `(path: str, mode: str = "r", cache: dict[str, int] = {})` {
		t.Errorf("open_store param list: %+v", f)
	}
	if f := factBy(facts, "Which module defines the function fetch?"); f == nil || f.TestAnswer != "pkg.store" {
		t.Errorf("fetch module: %+v", f)
	}
	for _, f := range facts {
		if strings.Contains(f.Question, "_private") || strings.Contains(f.Question, "helper") || strings.Contains(f.Question, "__init__") {
			t.Errorf("private or nested def questioned: %s", f.Question)
		}
	}
}

func TestClozeOnPDF(t *testing.T) {
	res, err := papers.Load([]string{"../../sources/papers/testdata/paper.pdf"}, papers.Options{})
	if err != nil {
		t.Fatal(err)
	}
	facts := Cloze(res.Chunks, ClozeOptions{Seed: 1, PerChunk: 10})
	if len(facts) < 5 {
		t.Fatalf("%d cloze facts", len(facts))
	}
	for _, f := range facts {
		if !strings.Contains(f.Question, "____") || !strings.Contains(f.TestQuestion, "____") {
			t.Fatalf("bad cloze %+v", f)
		}
		if !strings.Contains(res.Chunks[0].Text, f.TestAnswer) {
			t.Errorf("answer %q not in the document", f.TestAnswer)
		}
		if len(f.Distractors) != 3 {
			t.Errorf("distractors %v", f.Distractors)
		}
	}
}

// On the paper's real research chunks, cloze distractors keep the answer's kind.
func TestClozeOnRealPapers(t *testing.T) {
	c, err := perpetualfmt.ReadDir(testenv.File(t, "the Perpetual reference data", "../../../../shared/datasets/perpetual/research"), "research")
	if err != nil {
		t.Fatal(err)
	}
	facts := Cloze(c.Chunks[:40], ClozeOptions{Seed: 3})
	if len(facts) < 60 {
		t.Fatalf("%d facts from 40 chunks", len(facts))
	}
	for _, f := range facts {
		ansEntity := entityRE.MatchString(f.TestAnswer) && !numberRE.MatchString(f.TestAnswer)
		for _, d := range f.Distractors {
			if dEntity := entityRE.MatchString(d) && !numberRE.MatchString(d); dEntity != ansEntity {
				t.Fatalf("distractor %q of another kind than %q", d, f.TestAnswer)
			}
		}
	}
	cur, err := curriculum.Assemble(c.Chunks[:40], facts, curriculum.AssembleOptions{Seed: 1})
	if err != nil || cur.Validate() != nil || len(cur.Test) < 40 {
		t.Fatalf("assemble: %v", err)
	}
}
