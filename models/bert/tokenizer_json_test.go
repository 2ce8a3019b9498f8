package bert

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestTokenizerJSON writes the fixture vocabulary as a tokenizer.json WordPiece model and checks
// it encodes the golden texts to the golden ids, as vocab.txt does.
func TestTokenizerJSON(t *testing.T) {
	g := readGolden(t)
	f, err := os.Open(filepath.Join("testdata", "tiny", "vocab.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	vocab := map[string]int32{}
	sc := bufio.NewScanner(f)
	for id := int32(0); sc.Scan(); id++ {
		vocab[sc.Text()] = id
	}
	tj := map[string]any{
		"normalizer": map[string]any{"type": "BertNormalizer", "lowercase": true},
		"model":      map[string]any{"type": "WordPiece", "unk_token": "[UNK]", "vocab": vocab},
	}
	b, _ := json.Marshal(tj)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	tok, err := LoadTokenizer(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range g.Cases {
		if ids := tok.Encode(c.Text, g.MaxLength); !reflect.DeepEqual(ids, c.IDs) {
			t.Errorf("%q: ids %v, want %v", c.Text, ids, c.IDs)
		}
	}
	// A BPE tokenizer.json is refused, naming the file.
	os.WriteFile(filepath.Join(dir, "tokenizer.json"), []byte(`{"model":{"type":"BPE","vocab":{"a":0}}}`), 0o644)
	if _, err := LoadTokenizer(dir); err == nil || !strings.Contains(err.Error(), "tokenizer.json") {
		t.Fatalf("BPE tokenizer.json: %v", err)
	}
}
