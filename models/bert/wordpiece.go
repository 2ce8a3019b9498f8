package bert

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// Tokenizer is Hugging Face's BertTokenizer: BasicTokenizer (drop NUL, U+FFFD and control
// characters; whitespace to spaces; spaces around CJK ideographs; split on whitespace; lowercase
// and strip accents by NFD and dropping non-spacing marks; split off every punctuation
// character) followed by greedy longest-match-first WordPiece with the "##" continuation prefix.
// A word longer than 100 characters, or with a piece missing from the vocabulary, becomes [UNK].
type Tokenizer struct {
	vocab     map[string]int32
	lowercase bool
	unk       int32
	cls, sep  int32
	pad       int32
}

// maxWordChars is BertTokenizer's max_input_chars_per_word.
const maxWordChars = 100

// LoadTokenizer reads dir/vocab.txt (one token per line, id = line number) or, if absent,
// dir/tokenizer.json with a WordPiece model. Lowercasing follows tokenizer_config.json's
// do_lower_case (or tokenizer.json's BertNormalizer lowercase), true when unstated, as for the
// uncased BGE models.
func LoadTokenizer(dir string) (*Tokenizer, error) {
	t := &Tokenizer{lowercase: true}
	vpath := filepath.Join(dir, "vocab.txt")
	raw, err := os.ReadFile(vpath)
	switch {
	case err == nil:
		t.vocab = map[string]int32{}
		sc := bufio.NewScanner(bytes.NewReader(raw))
		sc.Buffer(make([]byte, 1<<16), 1<<20)
		id := int32(0)
		for sc.Scan() {
			tok := strings.TrimRight(sc.Text(), "\r")
			if _, dup := t.vocab[tok]; !dup {
				t.vocab[tok] = id
			}
			id++
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("bert: %s: %w", vpath, err)
		}
	case errors.Is(err, os.ErrNotExist):
		if err := t.loadTokenizerJSON(filepath.Join(dir, "tokenizer.json")); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("bert: %w", err)
	}
	if cfg, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json")); err == nil {
		var c struct {
			DoLowerCase *bool `json:"do_lower_case"`
		}
		if err := json.Unmarshal(cfg, &c); err != nil {
			return nil, fmt.Errorf("bert: %s: %w", filepath.Join(dir, "tokenizer_config.json"), err)
		}
		if c.DoLowerCase != nil {
			t.lowercase = *c.DoLowerCase
		}
	}
	for _, s := range []struct {
		name string
		dst  *int32
	}{{"[UNK]", &t.unk}, {"[CLS]", &t.cls}, {"[SEP]", &t.sep}, {"[PAD]", &t.pad}} {
		id, ok := t.vocab[s.name]
		if !ok {
			return nil, fmt.Errorf("bert: %s: vocabulary has no %s token", dir, s.name)
		}
		*s.dst = id
	}
	return t, nil
}

func (t *Tokenizer) loadTokenizerJSON(path string) error {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("bert: %s: no vocab.txt or tokenizer.json", filepath.Dir(path))
	}
	if err != nil {
		return fmt.Errorf("bert: %w", err)
	}
	var tj struct {
		Normalizer *struct {
			Type      string `json:"type"`
			Lowercase *bool  `json:"lowercase"`
		} `json:"normalizer"`
		Model struct {
			Type  string           `json:"type"`
			Vocab map[string]int32 `json:"vocab"`
		} `json:"model"`
	}
	if err := json.Unmarshal(raw, &tj); err != nil {
		return fmt.Errorf("bert: %s: %w", path, err)
	}
	if tj.Model.Type != "WordPiece" {
		return fmt.Errorf("bert: %s: model type %q, want WordPiece", path, tj.Model.Type)
	}
	if len(tj.Model.Vocab) == 0 {
		return fmt.Errorf("bert: %s: empty vocabulary", path)
	}
	t.vocab = tj.Model.Vocab
	if tj.Normalizer != nil && tj.Normalizer.Lowercase != nil {
		t.lowercase = *tj.Normalizer.Lowercase
	}
	return nil
}

// VocabSize is the number of distinct ids.
func (t *Tokenizer) VocabSize() int { return len(t.vocab) }

// Tokens splits text into WordPiece tokens (no [CLS]/[SEP]).
func (t *Tokenizer) Tokens(text string) []string {
	var out []string
	for _, word := range t.basic(text) {
		out = append(out, t.wordpiece(word)...)
	}
	return out
}

// Encode returns [CLS] + WordPiece ids + [SEP], keeping the first maxLength-2 pieces when
// maxLength > 0 (Hugging Face's truncation).
func (t *Tokenizer) Encode(text string, maxLength int) []int32 {
	toks := t.Tokens(text)
	if maxLength > 0 && len(toks) > maxLength-2 {
		toks = toks[:max(0, maxLength-2)]
	}
	ids := make([]int32, 0, len(toks)+2)
	ids = append(ids, t.cls)
	for _, s := range toks {
		id, ok := t.vocab[s]
		if !ok {
			id = t.unk
		}
		ids = append(ids, id)
	}
	return append(ids, t.sep)
}

// PadID is the [PAD] id.
func (t *Tokenizer) PadID() int32 { return t.pad }

func isCJK(r rune) bool {
	return (r >= 0x4E00 && r <= 0x9FFF) || (r >= 0x3400 && r <= 0x4DBF) || (r >= 0x20000 && r <= 0x2A6DF) ||
		(r >= 0x2A700 && r <= 0x2B73F) || (r >= 0x2B740 && r <= 0x2B81F) || (r >= 0x2B820 && r <= 0x2CEAF) ||
		(r >= 0xF900 && r <= 0xFAFF) || (r >= 0x2F800 && r <= 0x2FA1F)
}

func isPunct(r rune) bool {
	if (r >= 33 && r <= 47) || (r >= 58 && r <= 64) || (r >= 91 && r <= 96) || (r >= 123 && r <= 126) {
		return true
	}
	return unicode.IsPunct(r)
}

func isWhitespace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\r' || unicode.Is(unicode.Zs, r)
}

// isControl is Unicode category C* except tab, newline and carriage return.
func isControl(r rune) bool {
	if r == '\t' || r == '\n' || r == '\r' {
		return false
	}
	return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs) || !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Z)
}

// basic is BertTokenizer's BasicTokenizer.
func (t *Tokenizer) basic(text string) []string {
	var b strings.Builder
	for _, r := range text {
		switch {
		case r == 0 || r == 0xFFFD || isControl(r):
		case isWhitespace(r):
			b.WriteByte(' ')
		case isCJK(r):
			b.WriteByte(' ')
			b.WriteRune(r)
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	var out []string
	for _, word := range strings.Fields(b.String()) {
		if t.lowercase {
			word = stripAccents(strings.ToLower(word))
		}
		start := -1
		for i, r := range word {
			if isPunct(r) {
				if start >= 0 {
					out = append(out, word[start:i])
					start = -1
				}
				out = append(out, string(r))
				continue
			}
			if start < 0 {
				start = i
			}
		}
		if start >= 0 {
			out = append(out, word[start:])
		}
	}
	return out
}

// stripAccents decomposes (NFD) and drops non-spacing marks (category Mn).
func stripAccents(s string) string {
	var b strings.Builder
	for _, r := range norm.NFD.String(s) {
		if !unicode.Is(unicode.Mn, r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// wordpiece splits one basic token greedily, longest match first.
func (t *Tokenizer) wordpiece(word string) []string {
	runes := []rune(word)
	if len(runes) > maxWordChars {
		return []string{"[UNK]"}
	}
	var pieces []string
	for start := 0; start < len(runes); {
		end := len(runes)
		found := ""
		for start < end {
			sub := string(runes[start:end])
			if start > 0 {
				sub = "##" + sub
			}
			if _, ok := t.vocab[sub]; ok {
				found = sub
				break
			}
			end--
		}
		if found == "" {
			return []string{"[UNK]"}
		}
		pieces = append(pieces, found)
		start = end
	}
	return pieces
}
