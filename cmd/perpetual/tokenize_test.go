package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/perpetual-ml/perpetual/models/tokenizer"
)

func runTokenize(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	root := newRootCmd()
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetArgs(append([]string{"tokenize"}, args...))
	err := root.Execute()
	return out.String(), err
}

func TestTokenizeCommand(t *testing.T) {
	data, err := tokenizer.Train([]string{strings.Repeat("hello world ", 30)}, 300,
		tokenizer.TrainOptions{SpecialTokens: []string{"<s>", "</s>"}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "tokenizer.json")
	os.WriteFile(path, data, 0o644)
	tok, err := tokenizer.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := "hello world</s>\nnew line"

	out, err := runTokenize(t, doc, "--tokenizer", dir)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int32
	if err := json.Unmarshal([]byte(out), &ids); err != nil {
		t.Fatalf("output %q is not a JSON array of ids: %v", out, err)
	}
	if want := tok.Encode(doc); !slices.Equal(ids, want) || !slices.Contains(ids, 1) {
		t.Errorf("ids %v, want %v (with </s> = 1)", ids, want)
	}

	out, err = runTokenize(t, doc, "--tokenizer", path, "--special")
	if err != nil {
		t.Fatal(err)
	}
	var withSpecial []int32
	json.Unmarshal([]byte(out), &withSpecial)
	if len(withSpecial) != len(ids)+2 || withSpecial[0] != 0 || withSpecial[len(withSpecial)-1] != 1 {
		t.Errorf("--special gave %v, want <s> first and </s> last around %v", withSpecial, ids)
	}

	out, err = runTokenize(t, doc, "--tokenizer", path, "--pieces")
	if err != nil {
		t.Fatal(err)
	}
	var pieces []string
	json.Unmarshal([]byte(out), &pieces)
	if !slices.Equal(pieces, tok.Pieces(ids)) || pieces[0] != "hello" || !strings.Contains(out, `"</s>"`) {
		t.Errorf("--pieces gave %q", pieces)
	}

	if out, err = runTokenize(t, "", "--tokenizer", path); err != nil || strings.TrimSpace(out) != "[]" {
		t.Errorf("empty document: %q, %v", out, err)
	}
	if _, err = runTokenize(t, doc, "--tokenizer", filepath.Join(dir, "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("missing tokenizer: err = %v", err)
	}
}
