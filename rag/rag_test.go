package rag

import (
	"encoding/json"
	"hash/fnv"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/perpetual-ml/perpetual/curriculum"
)

func TestTokenize(t *testing.T) {
	cases := []struct {
		in   string
		stop bool
		want []string
	}{
		{"Hello, World! 42x", false, []string{"hello", "world", "42x"}},
		{"The CAFÉ crème_brûlée; über-cool", false, []string{"the", "café", "crème", "brûlée", "über", "cool"}},
		{"What is the weight of the widget?", true, []string{"weight", "widget"}},
		{"日本語 テキスト", false, []string{"日本語", "テキスト"}},
		{"  ...  ", false, nil},
	}
	for _, c := range cases {
		if got := Tokenize(c.in, c.stop); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Tokenize(%q, %v) = %q, want %q", c.in, c.stop, got, c.want)
		}
	}
}

type goldenCorpus struct {
	Chunks  []curriculum.Chunk `json:"chunks"`
	Queries []string           `json:"queries"`
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func testCorpus(t *testing.T) goldenCorpus {
	var c goldenCorpus
	readJSON(t, "testdata/bm25_corpus.json", &c)
	return c
}

// TestBM25Golden compares every score with testdata/bm25_golden.json, written by the
// independent Python reference testdata/bm25_reference.py.
func TestBM25Golden(t *testing.T) {
	corpus := testCorpus(t)
	var golden []struct {
		Params struct {
			K1        float64 `json:"k1"`
			B         float64 `json:"b"`
			Stopwords bool    `json:"stopwords"`
		} `json:"params"`
		Results []struct {
			Query  string    `json:"query"`
			Scores []float64 `json:"scores"`
		} `json:"results"`
	}
	readJSON(t, "testdata/bm25_golden.json", &golden)
	if len(golden) == 0 {
		t.Fatal("empty golden file")
	}
	for _, g := range golden {
		x, err := NewBM25(BM25Params{K1: g.Params.K1, B: g.Params.B, Stopwords: g.Params.Stopwords})
		if err != nil {
			t.Fatal(err)
		}
		if err := x.Add(corpus.Chunks...); err != nil {
			t.Fatal(err)
		}
		for _, r := range g.Results {
			got := x.Scores(r.Query)
			for i, want := range r.Scores {
				if math.Abs(got[i]-want) > 1e-9*math.Max(1, math.Abs(want)) {
					t.Errorf("params %+v query %q chunk %d: score %.12g, reference %.12g", g.Params, r.Query, i, got[i], want)
				}
			}
			// Retrieve returns exactly the positive-score chunks, best first.
			hits, err := x.Retrieve(r.Query, 100)
			if err != nil {
				t.Fatal(err)
			}
			positive := 0
			for _, s := range r.Scores {
				if s > 0 {
					positive++
				}
			}
			if len(hits) != positive {
				t.Errorf("query %q: %d hits, %d chunks with positive score", r.Query, len(hits), positive)
			}
			for i, h := range hits {
				if h.Rank != i+1 || (i > 0 && h.Score > hits[i-1].Score) {
					t.Errorf("query %q: hits not ranked: %+v", r.Query, hits)
				}
			}
		}
	}
}

// TestBM25HandComputed checks the formula on a two-chunk corpus worked out by hand:
// chunks "cat dog" and "cat", N=2, avgdl=1.5, k1=1.2, b=0.75.
func TestBM25HandComputed(t *testing.T) {
	x, err := NewBM25(BM25Params{K1: 1.2, B: 0.75})
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Add(curriculum.Chunk{ID: "1", Text: "cat dog"}, curriculum.Chunk{ID: "2", Text: "Cat."}); err != nil {
		t.Fatal(err)
	}
	// dog: df=1, idf=ln(1+1.5/1.5)=ln 2; chunk 1: |d|=2, norm=1.2*(0.25+0.75*2/1.5)=1.5.
	// cat: df=2, idf=ln(1+0.5/2.5)=ln 1.2; chunk 2: |d|=1, norm=1.2*(0.25+0.5)=0.9.
	want1 := math.Log(2)*2.2/2.5 + math.Log(1.2)*2.2/2.5
	want2 := math.Log(1.2) * 2.2 / 1.9
	got := x.Scores("dog cat dog")
	if math.Abs(got[0]-want1) > 1e-12 || math.Abs(got[1]-want2) > 1e-12 {
		t.Fatalf("scores %v, want [%g %g]", got, want1, want2)
	}
	if p := x.Params(); p.K1 != 1.2 || p.B != 0.75 || p.Tokenizer != TokenizerName {
		t.Fatalf("params %+v", p)
	}
	if _, err := NewBM25(BM25Params{K1: 1.2, B: 1.5}); err == nil {
		t.Fatal("b=1.5 accepted")
	}
	if err := x.Add(curriculum.Chunk{ID: "1", Text: "again"}); err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Fatalf("duplicate id: %v", err)
	}
	if _, err := x.Retrieve("cat", 0); err == nil {
		t.Fatal("k=0 accepted")
	}
}

func TestBM25SaveOpen(t *testing.T) {
	corpus := testCorpus(t)
	x, err := Build(corpus.Chunks, Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "idx")
	if err := x.Save(dir); err != nil {
		t.Fatal(err)
	}
	// Saving again replaces the index in place.
	if err := x.Save(dir); err != nil {
		t.Fatal(err)
	}
	y, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if y.Kind() != KindBM25 || y.Len() != len(corpus.Chunks) {
		t.Fatalf("opened kind %s len %d", y.Kind(), y.Len())
	}
	for _, q := range corpus.Queries {
		a, _ := x.Retrieve(q, 3)
		b, _ := y.Retrieve(q, 3)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("query %q: before save %+v, after open %+v", q, a, b)
		}
	}
	ents, _ := os.ReadDir(filepath.Dir(dir))
	if len(ents) != 1 {
		t.Errorf("stray files next to the index: %v", ents)
	}
	// A non-index folder is never replaced.
	other := filepath.Join(t.TempDir(), "data")
	os.MkdirAll(other, 0o755)
	os.WriteFile(filepath.Join(other, "precious.txt"), []byte("x"), 0o644)
	if err := x.Save(other); err == nil || !strings.Contains(err.Error(), "not an index") {
		t.Fatalf("saving over a non-index folder: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	corpus := testCorpus(t)
	x, _ := Build(corpus.Chunks, Options{})
	mk := func(edit func(dir string)) string {
		dir := filepath.Join(t.TempDir(), "idx")
		if err := x.Save(dir); err != nil {
			t.Fatal(err)
		}
		edit(dir)
		return dir
	}
	cases := []struct {
		name, want string
		edit       func(dir string)
	}{
		{"no meta", "not an index", func(d string) { os.Remove(filepath.Join(d, MetaFile)) }},
		{"bad json", "meta.json", func(d string) { os.WriteFile(filepath.Join(d, MetaFile), []byte("{"), 0o644) }},
		{"unknown kind", "unknown retriever kind", func(d string) {
			os.WriteFile(filepath.Join(d, MetaFile), []byte(`{"format":1,"kind":"magic","chunks":6}`), 0o644)
		}},
		{"future format", "format 9", func(d string) {
			os.WriteFile(filepath.Join(d, MetaFile), []byte(`{"format":9,"kind":"bm25","chunks":6}`), 0o644)
		}},
		{"truncated chunks", "meta.json says 6", func(d string) {
			b, _ := os.ReadFile(filepath.Join(d, ChunksFile))
			lines := strings.SplitAfter(string(b), "\n")
			os.WriteFile(filepath.Join(d, ChunksFile), []byte(strings.Join(lines[:2], "")), 0o644)
		}},
		{"bad chunk line", "chunks.jsonl:2", func(d string) {
			b, _ := os.ReadFile(filepath.Join(d, ChunksFile))
			lines := strings.SplitN(string(b), "\n", 3)
			os.WriteFile(filepath.Join(d, ChunksFile), []byte(lines[0]+"\n{\"id\":1}\n"+lines[2]), 0o644)
		}},
	}
	for _, c := range cases {
		dir := mk(c.edit)
		if _, err := Open(dir, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to mention %q", c.name, err, c.want)
		}
	}
}

func hits(ids ...string) []Hit {
	var out []Hit
	for i, id := range ids {
		out = append(out, Hit{ChunkID: id, Text: "text " + id, Rank: i + 1})
	}
	return out
}

func TestFuseRRF(t *testing.T) {
	a := hits("x", "y", "z")
	b := hits("y", "w")
	got := FuseRRF(0, 0, a, b)
	// y: 1/62 + 1/61; x: 1/61; w: 1/62; z: 1/63.
	wantIDs := []string{"y", "x", "w", "z"}
	wantScores := []float64{1.0/62 + 1.0/61, 1.0 / 61, 1.0 / 62, 1.0 / 63}
	for i, h := range got {
		if h.ChunkID != wantIDs[i] || math.Abs(h.Score-wantScores[i]) > 1e-15 || h.Rank != i+1 || h.Text != "text "+h.ChunkID {
			t.Fatalf("fused %+v, want ids %v scores %v", got, wantIDs, wantScores)
		}
	}
	if got := FuseRRF(60, 2, a, b); len(got) != 2 || got[1].ChunkID != "x" {
		t.Fatalf("limit 2: %+v", got)
	}
	// Equal fused scores: better best rank first, then first seen.
	got = FuseRRF(60, 0, hits("p", "q"), hits("q", "p"))
	if got[0].ChunkID != "p" || got[1].ChunkID != "q" {
		t.Fatalf("tie order %+v", got)
	}
}

func TestAugmentAndFitBudget(t *testing.T) {
	hs := hits("a", "b", "c")
	if got := Augment("Q?", hs); got != "text a\n\ntext b\n\ntext c\n\nQ?" {
		t.Fatalf("Augment = %q", got)
	}
	if Augment("Q?", nil) != "Q?" {
		t.Fatal("no passages must leave the question alone")
	}
	words := func(s string) (int, error) { return len(strings.Fields(s)), nil }
	// Each passage is 2 words, question 1: full prompt 7 words.
	f, err := FitBudget("Q?", hs, 7, words)
	if err != nil || len(f.Kept) != 3 || len(f.Dropped) != 0 || f.Tokens != 7 {
		t.Fatalf("budget 7: %+v %v", f, err)
	}
	f, err = FitBudget("Q?", hs, 6, words)
	if err != nil || len(f.Kept) != 2 || len(f.Dropped) != 1 || f.Dropped[0].ChunkID != "c" || f.Prompt != "text a\n\ntext b\n\nQ?" {
		t.Fatalf("budget 6: %+v %v", f, err)
	}
	f, err = FitBudget("Q?", hs, 2, words)
	if err != nil || len(f.Kept) != 0 || len(f.Dropped) != 3 || f.Prompt != "Q?" {
		t.Fatalf("budget 2: %+v %v", f, err)
	}
	if _, err := FitBudget("a long question", hs, 2, words); err == nil {
		t.Fatal("question over budget accepted")
	}
}

func TestRecall(t *testing.T) {
	corpus := testCorpus(t)
	x, _ := Build(corpus.Chunks, Options{})
	qs := []curriculum.Question{
		{ID: "1", Question: "How much does the Acme widget weigh?", ChunkID: "p1"}, // rank 1
		{ID: "2", Question: "charge the widget before first use", ChunkID: "p4"},   // rank 1
		{ID: "3", Question: "Is the widget waterproof and blue?", ChunkID: "p2"},   // p2 (blue) below p1
		{ID: "4", Question: "Which dessert has cream?", ChunkID: "p6"},             // p6 never matches
		{ID: "5", Question: "no chunk"},                                            // skipped
		{ID: "6", Question: "unknown chunk", ChunkID: "nope"},                      // skipped
	}
	byID := map[string]bool{}
	for _, c := range x.Chunks() {
		byID[c.ID] = true
	}
	calls := 0
	rep, err := Recall(x, qs, func(id string) bool { return byID[id] }, func() { calls++ })
	if err != nil {
		t.Fatal(err)
	}
	if calls != len(qs) || rep.Questions != 4 || rep.SkippedNoChunk != 1 || rep.SkippedUnknownChunk != 1 {
		t.Fatalf("counts %+v calls %d", rep, calls)
	}
	h3, _ := x.Retrieve(qs[2].Question, 10)
	rank3 := 0
	for i, h := range h3 {
		if h.ChunkID == "p2" {
			rank3 = i + 1
		}
	}
	if rank3 < 2 {
		t.Fatalf("test premise: p2 at rank %d for question 3", rank3)
	}
	wantHits := []int{2, 2, 2, 2}
	for i, k := range rep.Ks {
		if rank3 <= k {
			wantHits[i]++
		}
	}
	if !reflect.DeepEqual(rep.Hits, wantHits) || rep.Recall[0] != 0.5 {
		t.Fatalf("hits %v want %v (recall %v)", rep.Hits, wantHits, rep.Recall)
	}
	if want := (1 + 1 + 1/float64(rank3)) / 4; math.Abs(rep.MRR-want) > 1e-12 {
		t.Fatalf("MRR %g want %g", rep.MRR, want)
	}
}

// hashEmbedder is a test Embedder: hashed bag of words, L2-normalised, so texts sharing words
// are similar. It counts calls to check batching.
type hashEmbedder struct {
	dim   int
	calls int
}

func (h *hashEmbedder) Dim() int       { return h.dim }
func (h *hashEmbedder) MaxLength() int { return 512 }
func (h *hashEmbedder) Embed(texts []string) ([][]float32, error) {
	h.calls++
	out := make([][]float32, len(texts))
	for i, s := range texts {
		v := make([]float32, h.dim)
		for _, w := range Tokenize(s, true) {
			f := fnv.New32a()
			f.Write([]byte(w))
			v[f.Sum32()%uint32(h.dim)]++
		}
		var n float64
		for _, x := range v {
			n += float64(x * x)
		}
		if n > 0 {
			for j := range v {
				v[j] /= float32(math.Sqrt(n))
			}
		}
		out[i] = v
	}
	return out, nil
}

func TestDenseAndHybrid(t *testing.T) {
	corpus := testCorpus(t)
	emb := &hashEmbedder{dim: 64}
	for _, kind := range []string{KindDense, KindHybrid} {
		var progress strings.Builder
		x, err := Build(corpus.Chunks, Options{Kind: kind, Dense: DenseOptions{Embedder: emb, BatchSize: 4, Progress: &progress}})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(progress.String(), "encoding chunks") {
			t.Errorf("%s: no progress bar output", kind)
		}
		hs, err := x.Retrieve("Acme widget weight", 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(hs) != 3 || (hs[0].ChunkID != "p1" && hs[0].ChunkID != "p4") {
			t.Fatalf("%s: %+v", kind, hs)
		}
		dir := filepath.Join(t.TempDir(), kind)
		if err := x.Save(dir); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(dir, nil); err == nil {
			t.Fatalf("%s: opened without an encoder", kind)
		}
		y, err := OpenWith(dir, Options{Dense: DenseOptions{Embedder: emb}})
		if err != nil {
			t.Fatal(err)
		}
		if y.Kind() != kind {
			t.Fatalf("opened %s as %s", kind, y.Kind())
		}
		for _, q := range corpus.Queries {
			a, _ := x.Retrieve(q, 4)
			b, _ := y.Retrieve(q, 4)
			if !reflect.DeepEqual(a, b) {
				t.Errorf("%s %q: %+v vs %+v", kind, q, a, b)
			}
		}
		if kind == KindHybrid {
			h := x.(*Hybrid)
			a, _ := h.BM25.Retrieve("blue water", HybridDepth)
			b, _ := h.Dense.Retrieve("blue water", HybridDepth)
			if got, want := hs2ids(x.Retrieve("blue water", 3)), hs2ids(FuseRRF(60, 3, a, b), nil); !reflect.DeepEqual(got, want) {
				t.Errorf("hybrid %v, fused %v", got, want)
			}
		}
		// Damage to the vector file is detected and named.
		vf := filepath.Join(dir, VectorsFile)
		b, _ := os.ReadFile(vf)
		b[20] ^= 0xff
		os.WriteFile(vf, b, 0o644)
		if _, err := OpenWith(dir, Options{Dense: DenseOptions{Embedder: emb}}); err == nil || !strings.Contains(err.Error(), "checksum") {
			t.Errorf("%s: corrupt vectors: %v", kind, err)
		}
	}
}

func hs2ids(hs []Hit, err error) []string {
	var ids []string
	for _, h := range hs {
		ids = append(ids, h.ChunkID)
	}
	if err != nil {
		ids = append(ids, "error: "+err.Error())
	}
	return ids
}

func TestFlatStore(t *testing.T) {
	s, err := NewFlatStore(3)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Add([]string{"a", "b", "c"}, [][]float32{{1, 0, 0}, {0, 1, 0}, {0.6, 0.8, 0}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Search([]float32{0.8, 0.6, 0}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != "c" || math.Abs(got[0].Score-0.96) > 1e-6 || got[1].ID != "a" {
		t.Fatalf("search %+v", got)
	}
	for _, bad := range []struct {
		ids  []string
		vecs [][]float32
	}{
		{[]string{"d"}, [][]float32{{1, 2}}},
		{[]string{"a"}, [][]float32{{1, 2, 3}}},
		{[]string{"e"}, [][]float32{{float32(math.NaN()), 0, 0}}},
		{[]string{"f", "g"}, [][]float32{{1, 2, 3}}},
	} {
		if err := s.Add(bad.ids, bad.vecs); err == nil {
			t.Errorf("Add(%v, %v) accepted", bad.ids, bad.vecs)
		}
	}
	if _, err := s.Search([]float32{1}, 1); err == nil {
		t.Error("wrong query length accepted")
	}
	path := filepath.Join(t.TempDir(), "v.bin")
	if err := s.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	r, err := ReadFlatStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r.ids, s.ids) || !reflect.DeepEqual(r.data, s.data) {
		t.Fatal("round trip changed the store")
	}
	b, _ := os.ReadFile(path)
	os.WriteFile(path, b[:len(b)-7], 0o644)
	if _, err := ReadFlatStore(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("truncated file: %v", err)
	}
}
