package harness

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/perpetual-ml/perpetual/curriculum"
	"github.com/perpetual-ml/perpetual/curriculum/leakage"
	"github.com/perpetual-ml/perpetual/curriculum/synthetic"
	"github.com/perpetual-ml/perpetual/harness/results"
	"github.com/perpetual-ml/perpetual/plots"
)

var update = flag.Bool("update", false, "rewrite the report goldens in testdata/report from the current code")

// reportFixture is a results folder written by Run on TestRunCachesCellByCell's mini suite (two
// random-init tiny Gemmas, 8 questions, letters, cloze and recall, two seeds, retention), with
// the run's temporary folder replaced by /RUN, and the results.md and index.html that run wrote.
const reportFixture = "testdata/report"

// TestReportGolden pins the bytes of everything the report writes for the same records:
// results.json (its schema read and written back, and rebuilt from the records), results.md and
// index.html. A change to any of them is a change to every committed results folder, so it must be
// deliberate: rerun with -update and review the diff.
func TestReportGolden(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(reportFixture, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := LoadResults(reportFixture)
	if err != nil {
		t.Fatal(err)
	}
	// The schema reads and writes results.json byte for byte.
	if got := indentJSON(t, res); !bytes.Equal(got, raw) {
		t.Errorf("results.json read and written back differs from the file (%d bytes, want %d)", len(got), len(raw))
	}
	// The table rebuilt from the records is the one the run wrote.
	info, err := res.Task("products")
	if err != nil {
		t.Fatal(err)
	}
	// The mini suite's curriculum, written and read back as Run does.
	built, err := synthetic.Build("products", synthetic.Options{Seed: 3, Chunks: 6, FactsPerChunk: 2})
	if err != nil {
		t.Fatal(err)
	}
	curDir := filepath.Join(t.TempDir(), "products")
	if err := curriculum.Write(curDir, built); err != nil {
		t.Fatal(err)
	}
	cur, err := curriculum.Read(curDir)
	if err != nil {
		t.Fatal(err)
	}
	task := &preparedTask{Task: Task{Name: "products", RAG: RAGSettings{Retriever: info.Retriever, K: info.K}},
		dir: info.Curriculum, cur: cur, leakage: leakage.Analyze(cur, leakage.DefaultThreshold), recall: info.Recall}
	suite := &Suite{Name: res.Suite, Formulations: []string{"letters", "cloze", "recall"}}
	rebuilt := buildResults(suite, []*preparedTask{task}, res.Records, res.Loss)
	rebuilt.Retention = res.Retention
	if got := indentJSON(t, rebuilt); !bytes.Equal(got, raw) {
		t.Errorf("results.json rebuilt from the records differs from the file (%d bytes, want %d)", len(got), len(raw))
	}
	// The report pages, with the charts the run linked (HTML pages: it ran without PNGs).
	summary, err := results.Load(reportFixture)
	if err != nil {
		t.Fatal(err)
	}
	charts := map[string]string{}
	for _, c := range plots.Build(summary) {
		charts[c.Name] = "charts/" + c.Name + ".html"
	}
	page, err := IndexHTML(res, charts)
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string][]byte{"results.md": []byte(MarkdownWithCharts(res, charts)), IndexFile: page} {
		path := filepath.Join(reportFixture, name)
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s (%d bytes, want %d); if the change is meant, rerun with -update and review the diff", name, path, len(got), len(want))
		}
	}
}

// indentJSON is v as the harness writes JSON files.
func indentJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}
