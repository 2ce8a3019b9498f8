package tokenizer

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

func TestSplitPatterns(t *testing.T) {
	cases := []struct {
		split func(string) []string
		in    string
		want  []string
	}{
		{splitGPT2, "Hello world", []string{"Hello", " world"}},
		{splitGPT2, "  hello", []string{" ", " hello"}},
		{splitGPT2, "a  \n\n b", []string{"a", "  \n\n", " b"}},
		{splitGPT2, "1234567 x", []string{"1234567", " x"}},
		{splitGPT2, "it's DON'T", []string{"it", "'s", " DON", "'", "T"}},
		{splitGPT2, "end  ", []string{"end", "  "}},
		{splitGPT2, "x!?  ", []string{"x", "!?", "  "}},
		{splitLlama3, "1234567", []string{"123", "456", "7"}},
		{splitLlama3, "DON'T it's", []string{"DON", "'T", " it", "'s"}},
		{splitLlama3, "a \t\n\n  b", []string{"a", " \t\n\n", " ", " b"}},
		{splitLlama3, "\thello", []string{"\thello"}},
		{splitLlama3, "x.)\n\ny", []string{"x", ".)\n\n", "y"}},
		{splitLlama3, " ?!", []string{" ?!"}},
		{splitQwen2, "123", []string{"1", "2", "3"}},
		{splitGPT2, "a\xffb", []string{"a", "\xff", "b"}},
	}
	for _, c := range cases {
		if got := c.split(c.in); !slices.Equal(got, c.want) {
			t.Errorf("split(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestSplitBehaviors(t *testing.T) {
	p := &pattern{literal: "-"}
	cases := map[string][]string{
		"Isolated":           {"a", "-", "b", "-", "-", "c"},
		"Removed":            {"a", "b", "c"},
		"MergedWithPrevious": {"a-", "b-", "-", "c"},
		"MergedWithNext":     {"a", "-b", "-", "-c"},
		"Contiguous":         {"a", "-", "b", "--", "c"},
	}
	for behavior, want := range cases {
		got, err := splitBehavior(p.spans("a-b--c"), behavior, false)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%s: got %q, %v; want %q", behavior, got, err, want)
		}
	}
	if _, err := splitBehavior(nil, "Sideways", false); err == nil {
		t.Error("unknown behavior accepted")
	}
}

// writeFile writes content to dir/name and returns the path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// tinyJSON is a hand-made Gemma-style tokenizer.json: Replace normalizer, byte fallback.
func tinyJSON(merges string) string {
	var vocab []string
	vocab = append(vocab, `"<pad>":0`, `"<eos>":1`, `"<bos>":2`, `"<unk>":3`)
	for b := range 256 {
		vocab = append(vocab, fmt.Sprintf(`"<0x%02X>":%d`, b, 4+b))
	}
	vocab = append(vocab, `"▁":260`, `"a":261`, `"b":262`, `"ab":263`, `"▁ab":264`)
	return `{"added_tokens":[{"id":0,"content":"<pad>","special":true},{"id":1,"content":"<eos>","special":true},
	{"id":2,"content":"<bos>","special":true},{"id":3,"content":"<unk>","special":true}],
	"normalizer":{"type":"Replace","pattern":{"String":" "},"content":"▁"},
	"pre_tokenizer":null,
	"decoder":{"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":"▁"},"content":" "},{"type":"ByteFallback"},{"type":"Fuse"}]},
	"model":{"type":"BPE","unk_token":"<unk>","fuse_unk":true,"byte_fallback":true,
	"vocab":{` + strings.Join(vocab, ",") + `},"merges":` + merges + `}}`
}

func TestTinyGemmaStyle(t *testing.T) {
	for _, merges := range []string{`["a b","▁ ab"]`, `[["a","b"],["▁","ab"]]`} {
		tok, err := LoadJSON([]byte(tinyJSON(merges)), "tiny")
		if err != nil {
			t.Fatal(err)
		}
		got := tok.Encode("ab ab c<eos>")
		want := []int32{263, 264, 260, 4 + 'c', 1}
		if !slices.Equal(got, want) {
			t.Errorf("merges %s: Encode = %v %q, want %v", merges, got, tok.Pieces(got), want)
		}
		if s := tok.Decode(got); s != "ab ab c<eos>" {
			t.Errorf("Decode = %q", s)
		}
		if s := tok.Special(); s != (SpecialTokens{BOS: 2, EOS: 1, PAD: 0, UNK: 3}) {
			t.Errorf("Special = %+v", s)
		}
		if id, ok := tok.TokenID("▁ab"); !ok || id != 264 {
			t.Errorf("TokenID(▁ab) = %d, %v", id, ok)
		}
		if tok.VocabSize() != 265 {
			t.Errorf("VocabSize = %d", tok.VocabSize())
		}
	}
}

func TestLoadFolderAndConfig(t *testing.T) {
	dir := t.TempDir()
	data, err := Train(trainingCorpus(), 300, TrainOptions{SpecialTokens: []string{"<|endoftext|>", "<|im_start|>"}})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "tokenizer.json", string(data))
	writeFile(t, dir, "tokenizer_config.json", `{"bos_token": {"content": "<|im_start|>", "lstrip": false},
		"eos_token": "<|endoftext|>", "pad_token": null}`)
	writeFile(t, dir, "special_tokens_map.json", `{"pad_token": "<|endoftext|>", "eos_token": "<|im_start|>"}`)
	tok, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	// tokenizer_config.json wins; special_tokens_map.json fills what it leaves out.
	if s := tok.Special(); s != (SpecialTokens{BOS: 1, EOS: 0, PAD: 0, UNK: -1}) {
		t.Errorf("Special = %+v", s)
	}
}

func TestLoadErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	good := tinyJSON(`["a b"]`)
	cases := map[string]string{
		"corrupt.json":    `{"model": {`,
		"nomodel.json":    `{"added_tokens": []}`,
		"wordpiece.json":  `{"model": {"type": "WordPiece", "vocab": {"a": 0}}}`,
		"badmerge.json":   strings.Replace(good, `"merges":["a b"]`, `"merges":["a z"]`, 1),
		"badmerge3.json":  strings.Replace(good, `"merges":["a b"]`, `"merges":["a b c"]`, 1),
		"lookahead.json":  strings.Replace(good, `"pre_tokenizer":null`, `"pre_tokenizer":{"type":"Split","pattern":{"Regex":"\\s+(?!\\S)"},"behavior":"Isolated"}`, 1),
		"unknown.json":    strings.Replace(good, `"pre_tokenizer":null`, `"pre_tokenizer":{"type":"Mystery"}`, 1),
		"badid.json":      strings.Replace(good, `"▁ab":264`, `"▁ab":-5`, 1),
		"hugeid.json":     strings.Replace(good, `"▁ab":264`, `"▁ab":999999999`, 1),
		"badunk.json":     strings.Replace(good, `"unk_token":"<unk>"`, `"unk_token":"<nope>"`, 1),
		"empty.json":      ``,
		"tokenizer.model": "not a protobuf \xff\xff\xff",
	}
	for name, content := range cases {
		path := writeFile(t, dir, name, content)
		_, err := Load(path)
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: err = %v, want an error naming the file", name, err)
		}
	}
	if _, err := Load(filepath.Join(dir, "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("missing file: err = %v", err)
	}
	empty := t.TempDir()
	if _, err := Load(empty); err == nil || !strings.Contains(err.Error(), empty) {
		t.Errorf("empty folder: err = %v", err)
	}
	cfgDir := t.TempDir()
	writeFile(t, cfgDir, "tokenizer.json", good)
	cfg := writeFile(t, cfgDir, "tokenizer_config.json", `{"bos_token": [1, 2]}`)
	if _, err := Load(cfgDir); err == nil || !strings.Contains(err.Error(), cfg) {
		t.Errorf("bad tokenizer_config.json: err = %v", err)
	}
}

// spmModel writes a SentencePiece ModelProto by hand (the library keeps its proto types internal):
// a Gemma-like BPE model with byte fallback and no dummy prefix.
func spmModel(t testing.TB, dir string, normalizerOK bool) string {
	t.Helper()
	type piece struct {
		s     string
		score float32
		typ   uint64
	}
	pieces := []piece{{"<unk>", 0, 2}, {"<s>", 0, 3}, {"</s>", 0, 3}, {"<pad>", 0, 3}}
	for b := range 256 {
		pieces = append(pieces, piece{fmt.Sprintf("<0x%02X>", b), 0, 6})
	}
	pieces = append(pieces, piece{"<start_of_turn>", 0, 4}, piece{"▁", -1, 1}, piece{"a", -2, 1},
		piece{"b", -3, 1}, piece{"ab", -4, 1}, piece{"▁ab", -5, 1})
	var b []byte
	for _, p := range pieces {
		var m []byte
		m = protowire.AppendTag(m, 1, protowire.BytesType)
		m = protowire.AppendString(m, p.s)
		m = protowire.AppendTag(m, 2, protowire.Fixed32Type)
		m = protowire.AppendFixed32(m, math.Float32bits(p.score))
		m = protowire.AppendTag(m, 3, protowire.VarintType)
		m = protowire.AppendVarint(m, p.typ)
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, m)
	}
	var ts []byte
	ts = protowire.AppendTag(ts, 3, protowire.VarintType)
	ts = protowire.AppendVarint(ts, 2) // BPE
	ts = protowire.AppendTag(ts, 35, protowire.VarintType)
	ts = protowire.AppendVarint(ts, 1) // byte_fallback
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendBytes(b, ts)
	if normalizerOK {
		var ns []byte
		ns = protowire.AppendTag(ns, 1, protowire.BytesType)
		ns = protowire.AppendString(ns, "identity")
		ns = protowire.AppendTag(ns, 3, protowire.VarintType)
		ns = protowire.AppendVarint(ns, 0)
		ns = protowire.AppendTag(ns, 4, protowire.VarintType)
		ns = protowire.AppendVarint(ns, 0)
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		b = protowire.AppendBytes(b, ns)
	}
	path := filepath.Join(dir, "tokenizer.model")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSentencePiece(t *testing.T) {
	dir := t.TempDir()
	spmModel(t, dir, true)
	tok, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	// "ab ab": a+b first (best score), then ▁+ab; "c" falls back to its byte; the user-defined
	// <start_of_turn> is matched whole.
	got := tok.Encode("ab ab c<start_of_turn>")
	want := []int32{264, 265, 261, 4 + 'c', 260}
	if !slices.Equal(got, want) {
		t.Errorf("Encode = %v %q, want %v", got, tok.Pieces(got), want)
	}
	if s := tok.Decode(got); s != "ab ab c<start_of_turn>" {
		t.Errorf("Decode = %q", s)
	}
	if s := tok.Special(); s != (SpecialTokens{BOS: 1, EOS: 2, PAD: 3, UNK: 0}) {
		t.Errorf("Special = %+v", s)
	}
	if tok.VocabSize() != 266 {
		t.Errorf("VocabSize = %d", tok.VocabSize())
	}
	if id, ok := tok.TokenID("▁ab"); !ok || id != 265 {
		t.Errorf("TokenID(▁ab) = %d %v", id, ok)
	}
	// A model without a normalizer spec makes the library dereference nil: an error, not a panic.
	bad := t.TempDir()
	path := spmModel(t, bad, false)
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("model without normalizer spec: err = %v", err)
	}
}

// Merges of equal rank apply leftmost first; ignore_merges takes whole words from the vocabulary.
func TestMergeOrderAndIgnoreMerges(t *testing.T) {
	const file = `{"model":{"type":"BPE","vocab":{"a":0,"b":1,"c":2,"aa":3,"ab":4,"abc":5},"merges":["a a","a b"],"ignore_merges":IGNORE}}`
	for _, c := range []struct {
		ignore string
		in     string
		want   []int32
	}{
		{"false", "aaa", []int32{3, 0}},
		{"false", "aaaaa", []int32{3, 3, 0}},
		{"false", "abc", []int32{4, 2}},
		{"true", "abc", []int32{5}},
		{"true", "aaa", []int32{3, 0}},
	} {
		tok, err := LoadJSON([]byte(strings.Replace(file, "IGNORE", c.ignore, 1)), "order")
		if err != nil {
			t.Fatal(err)
		}
		if got := tok.Encode(c.in); !slices.Equal(got, c.want) {
			t.Errorf("ignore_merges=%s Encode(%q) = %v, want %v", c.ignore, c.in, got, c.want)
		}
	}
}

// Metaspace follows the Rust library: spaces become ▁, a ▁ is prepended (scheme "first": only at
// the start of the text), and the text splits before each ▁, so "▁▁" never merges across words.
func TestMetaspace(t *testing.T) {
	const file = `{"model":{"type":"BPE","vocab":{"▁":0,"a":1,"b":2,"▁a":3,"▁b":4,"▁▁":5,"<s>":6},"merges":["▁ ▁","▁ a","▁ b"]},
	"added_tokens":[{"id":6,"content":"<s>","special":true}],
	"pre_tokenizer":{"type":"Metaspace","replacement":"▁","prepend_scheme":"SCHEME","split":SPLIT},
	"decoder":{"type":"Metaspace","replacement":"▁","prepend_scheme":"SCHEME"}}`
	for _, c := range []struct {
		scheme, split, in string
		want              []int32
	}{
		{"first", "true", "a b", []int32{3, 4}},
		{"first", "true", "a  b", []int32{3, 0, 4}},
		{"first", "false", "a  b", []int32{3, 5, 2}},
		{"first", "true", "<s>a", []int32{6, 1}},
		{"always", "true", "<s>a", []int32{6, 3}},
		{"never", "true", "a b", []int32{1, 4}},
	} {
		src := strings.ReplaceAll(strings.Replace(file, "SPLIT", c.split, 1), "SCHEME", c.scheme)
		tok, err := LoadJSON([]byte(src), "metaspace")
		if err != nil {
			t.Fatal(err)
		}
		got := tok.Encode(c.in)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s/split=%s Encode(%q) = %v %q, want %v", c.scheme, c.split, c.in, got, tok.Pieces(got), c.want)
		}
		if c.scheme != "never" && c.in != "<s>a" {
			if d := tok.Decode(got); d != c.in {
				t.Errorf("%s Decode = %q, want %q", c.scheme, d, c.in)
			}
		}
	}
}
