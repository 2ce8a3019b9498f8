package products

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perpetual-ml/perpetual/internal/testenv"
)

func TestClean(t *testing.T) {
	for in, want := range map[string]string{
		`"Apple Mac Pro"@en ;`:                   "Apple Mac Pro",
		"Null":                                   "",
		" n/a ":                                  "",
		"Fast <b>SSD</b>&nbsp;&amp; more<br />x": "Fast SSD & more x",
		"line one\n\n\n\nline two":               "line one\n\nline two",
		"Colour Null Black":                      "Colour Black",
		`He said "hi" and "bye"`:                 `He said "hi" and "bye"`,
	} {
		if got := Clean(in); got != want {
			t.Errorf("Clean(%q) = %q, want %q", in, got, want)
		}
	}
}

// The paper's product documents are real WDC offers: HTML fragments, entities, quoting.
func TestLoadRealWDCDocuments(t *testing.T) {
	path := "../../../../shared/datasets/perpetual/products/train.json"
	data, err := os.ReadFile(testenv.File(t, "the Perpetual reference data", path))
	if err != nil {
		t.Fatal(err)
	}
	var items []struct {
		Type     string          `json:"type"`
		Document json.RawMessage `json:"document"`
	}
	if err := json.Unmarshal(data, &items); err != nil {
		t.Fatal(err)
	}
	var docs []json.RawMessage
	for _, it := range items {
		if it.Type == "doc" {
			docs = append(docs, it.Document)
		}
	}
	out, _ := json.Marshal(docs)
	file := filepath.Join(t.TempDir(), "wdc.json")
	os.WriteFile(file, out, 0o644)
	res, err := Load([]string{file}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != 500 || len(res.Skipped) != 0 || len(res.Chunks) < 500 {
		t.Fatalf("%d records, %d chunks, skipped %v", len(res.Records), len(res.Chunks), res.Skipped)
	}
	for _, c := range res.Chunks {
		if strings.Contains(c.Text, "<br") || strings.Contains(c.Text, "&rsquo;") || strings.Contains(c.Text, "&reg;") || len(c.Text) > 4096 {
			t.Fatalf("%s not clean: %q", c.ID, c.Text)
		}
	}
}

func TestLoadFormats(t *testing.T) {
	dir := t.TempDir()
	jsonl := `{"title_left": "\"Acme Drill X1\"@en", "description_left": "Cordless <i>drill</i>", "brand_left": "Acme", "price_left": "Null", "title_right": "Zed Saw", "brand_right": "NULL", "label": 0}
not json
{"name": "Quiet Fan", "specs": {"Noise": "18 dB", "Weight": "Null"}, "price": "$20"}
{"description": "no title here"}
`
	os.WriteFile(filepath.Join(dir, "p.jsonl"), []byte(jsonl), 0o644)
	csvText := "title,brand,price,description\nBlue Kettle,Kettleco,$30,\"Boils <b>fast</b>, quietly\"\nbad,row\nLamp,Lumo,$12,Bright\n"
	os.WriteFile(filepath.Join(dir, "p.csv"), []byte(csvText), 0o644)
	os.WriteFile(filepath.Join(dir, "p.json"), []byte(`{"products": [{"title": "Mug", "category": "Kitchen"}, 7]}`), 0o644)
	os.WriteFile(filepath.Join(dir, "p.xml"), []byte(`<x/>`), 0o644)
	os.WriteFile(filepath.Join(dir, "bad.json"), []byte(`{"products": `), 0o644)
	long := map[string]string{"title": "Long Thing", "description": strings.Repeat("A sentence about the long thing. ", 400)}
	lb, _ := json.Marshal([]any{long})
	os.WriteFile(filepath.Join(dir, "long.json"), lb, 0o644)
	var paths []string
	for _, n := range []string{"p.jsonl", "p.csv", "p.json", "p.xml", "bad.json", "long.json"} {
		paths = append(paths, filepath.Join(dir, n))
	}
	res, err := Load(paths, Options{})
	if err != nil {
		t.Fatal(err)
	}
	byTitle := map[string]Record{}
	for _, r := range res.Records {
		byTitle[r.Title] = r
	}
	if len(res.Records) != 7 {
		t.Fatalf("records %+v", res.Records)
	}
	drill := byTitle["Acme Drill X1"]
	if drill.Brand != "Acme" || drill.Price != "" || drill.Description != "Cordless drill" || !strings.HasSuffix(drill.Key, "/left") {
		t.Errorf("drill %+v", drill)
	}
	if saw := byTitle["Zed Saw"]; saw.Brand != "" || !strings.HasSuffix(saw.Key, "/right") {
		t.Errorf("saw %+v", saw)
	}
	if fan := byTitle["Quiet Fan"]; len(fan.Specs) != 1 || fan.Specs[0] != (Spec{"Noise", "18 dB"}) || fan.Price != "$20" {
		t.Errorf("fan %+v", fan)
	}
	if k := byTitle["Blue Kettle"]; k.Description != "Boils fast , quietly" && k.Description != "Boils fast, quietly" {
		t.Errorf("kettle %+v", k)
	}
	if m := byTitle["Mug"]; m.Category != "Kitchen" {
		t.Errorf("mug %+v", m)
	}
	if l := byTitle["Long Thing"]; len(l.ChunkIDs) < 3 {
		t.Errorf("long description gave chunks %v", l.ChunkIDs)
	}
	var reasons []string
	for _, s := range res.Skipped {
		reasons = append(reasons, filepath.Base(s.Path)+" "+s.Reason)
	}
	all := strings.Join(reasons, "\n")
	for _, want := range []string{"p.jsonl:2 bad JSON", "p.jsonl:4 record p.jsonl:4 has no title", "p.csv:3 2 fields", "p.json#1 record is not an object", "p.xml unsupported", "bad.json bad JSON"} {
		if !strings.Contains(all, want) {
			t.Errorf("skipped lacks %q:\n%s", want, all)
		}
	}
	if _, err := Load([]string{filepath.Join(dir, "missing.json")}, Options{}); err == nil {
		t.Error("missing file accepted")
	}
}

// FuzzClean: cleaning never panics, is idempotent, and leaves no complete tags.
func FuzzClean(f *testing.F) {
	f.Add(`"Apple"@en ; <b>x</b>&amp; Null <br`)
	f.Fuzz(func(t *testing.T, s string) {
		c := Clean(s)
		if Clean(c) != c && strings.ToValidUTF8(s, "") == s {
			t.Skip() // entity chains like "&amp;lt;" legitimately unescape again
		}
		if tagRE.MatchString(c) && strings.ToValidUTF8(s, "") == s && !strings.Contains(s, "&") {
			t.Fatalf("tag left in %q -> %q", s, c)
		}
	})
}
