package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
)

// maxVocabID bounds ids read from files, so a corrupt file cannot ask for a huge table.
const maxVocabID = 1 << 24

type hfFile struct {
	AddedTokens  []hfAdded    `json:"added_tokens"`
	Normalizer   *hfComponent `json:"normalizer"`
	PreTokenizer *hfComponent `json:"pre_tokenizer"`
	Decoder      *hfComponent `json:"decoder"`
	Model        *hfModel     `json:"model"`
	// PostProcessor (BOS/EOS templates) is not applied: adding special tokens is the caller's
	// choice (Special gives their ids).
	PostProcessor json.RawMessage `json:"post_processor"`
}

type hfAdded struct {
	ID      int32  `json:"id"`
	Content string `json:"content"`
	LStrip  bool   `json:"lstrip"`
	RStrip  bool   `json:"rstrip"`
	Special bool   `json:"special"`
}

type hfModel struct {
	Type                    string           `json:"type"`
	Vocab                   map[string]int32 `json:"vocab"`
	Merges                  json.RawMessage  `json:"merges"`
	UnkToken                *string          `json:"unk_token"`
	FuseUnk                 bool             `json:"fuse_unk"`
	ByteFallback            bool             `json:"byte_fallback"`
	IgnoreMerges            bool             `json:"ignore_merges"`
	ContinuingSubwordPrefix *string          `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string          `json:"end_of_word_suffix"`
	Dropout                 *float64         `json:"dropout"`
}

type hfPattern struct {
	String *string `json:"String"`
	Regex  *string `json:"Regex"`
}

// hfComponent holds the fields of every normalizer, pre-tokenizer and decoder type used.
type hfComponent struct {
	Type             string        `json:"type"`
	Normalizers      []hfComponent `json:"normalizers"`
	Pretokenizers    []hfComponent `json:"pretokenizers"`
	Decoders         []hfComponent `json:"decoders"`
	Pattern          *hfPattern    `json:"pattern"`
	Content          string        `json:"content"`
	Prepend          string        `json:"prepend"`
	AddPrefixSpace   *bool         `json:"add_prefix_space"`
	UseRegex         *bool         `json:"use_regex"`
	Behavior         string        `json:"behavior"`
	Invert           bool          `json:"invert"`
	Replacement      string        `json:"replacement"`
	PrependScheme    string        `json:"prepend_scheme"`
	Split            *bool         `json:"split"`
	StripLeft        bool          `json:"strip_left"`
	StripRight       bool          `json:"strip_right"`
	Start            int           `json:"start"`
	Stop             int           `json:"stop"`
	IndividualDigits bool          `json:"individual_digits"`
}

// hfTokenizer runs the tokenizer.json pipeline: added tokens, normalizer, pre-tokenizer, BPE.
type hfTokenizer struct {
	model   *bpe
	norm    normalizer
	pretok  preTokenizer
	decode  decoder
	added   *trie
	addedBy map[string]hfAdded
	pieces  []string
	special SpecialTokens
}

// parseHF builds a tokenizer from tokenizer.json content; file names the source in errors.
// Malformed input must give an error, never a panic; the recover is a last line of defence.
func parseHF(data []byte, file string, names specialNames) (tok Tokenizer, err error) {
	defer func() {
		if r := recover(); r != nil {
			tok, err = nil, fmt.Errorf("tokenizer: %s: malformed tokenizer.json (%v)", file, r)
		}
	}()
	fail := func(format string, args ...any) (Tokenizer, error) {
		return nil, fmt.Errorf("tokenizer: %s: %s", file, fmt.Sprintf(format, args...))
	}
	var f hfFile
	if err := json.Unmarshal(data, &f); err != nil {
		return fail("not a tokenizer.json: %v", err)
	}
	if f.Model == nil {
		return fail("no model")
	}
	if f.Model.Type != "" && f.Model.Type != "BPE" {
		return fail("model type %q is not supported (only BPE)", f.Model.Type)
	}
	if f.Model.Dropout != nil && *f.Model.Dropout > 0 {
		return fail("BPE dropout %g is not supported", *f.Model.Dropout)
	}
	if len(f.Model.Vocab) == 0 {
		return fail("empty vocabulary")
	}
	pairs, err := parseMerges(f.Model.Merges)
	if err != nil {
		return fail("%v", err)
	}
	size := 0
	for piece, id := range f.Model.Vocab {
		if id < 0 || id >= maxVocabID {
			return fail("vocabulary id %d of %q out of range", id, piece)
		}
		size = max(size, int(id)+1)
	}
	for _, a := range f.AddedTokens {
		if a.ID < 0 || a.ID >= maxVocabID {
			return fail("added token id %d of %q out of range", a.ID, a.Content)
		}
		size = max(size, int(a.ID)+1)
	}
	// Real vocabularies are dense; a sparse one is a corrupt file asking for a huge table.
	if slack := size - len(f.Model.Vocab) - len(f.AddedTokens); slack > 1<<16 {
		return fail("ids run up to %d but only %d tokens are defined", size-1, len(f.Model.Vocab)+len(f.AddedTokens))
	}
	prefix := ""
	if f.Model.ContinuingSubwordPrefix != nil {
		prefix = *f.Model.ContinuingSubwordPrefix
	}
	model, err := newBPE(f.Model.Vocab, pairs, prefix)
	if err != nil {
		return fail("%v", err)
	}
	if f.Model.EndOfWordSuffix != nil {
		model.suffix = *f.Model.EndOfWordSuffix
	}
	model.fuseUnk, model.byteFallback, model.ignoreMerges = f.Model.FuseUnk, f.Model.ByteFallback, f.Model.IgnoreMerges
	if f.Model.UnkToken != nil {
		id, ok := f.Model.Vocab[*f.Model.UnkToken]
		if !ok {
			return fail("unk_token %q not in the vocabulary", *f.Model.UnkToken)
		}
		model.unk = id
	}
	t := &hfTokenizer{model: model, pieces: make([]string, size), added: newTrie(), addedBy: map[string]hfAdded{}}
	for piece, id := range f.Model.Vocab {
		t.pieces[id] = piece
	}
	for _, a := range f.AddedTokens {
		t.pieces[a.ID] = a.Content
		if a.Content != "" {
			t.added.insert(a.Content)
			t.addedBy[a.Content] = a
		}
	}
	if t.norm, err = newNormalizer(f.Normalizer); err != nil {
		return fail("%v", err)
	}
	if t.pretok, err = newPreTokenizer(f.PreTokenizer); err != nil {
		return fail("%v", err)
	}
	if t.decode, err = newDecoder(f.Decoder); err != nil {
		return fail("%v", err)
	}
	if names.unk == "" && f.Model.UnkToken != nil {
		names.unk = *f.Model.UnkToken
	}
	t.special = resolveSpecial(names, t.TokenID)
	return t, nil
}

// parseMerges reads merges written as "a b" strings (older files) or ["a", "b"] pairs.
func parseMerges(raw json.RawMessage) ([][2]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var strs []string
	if err := json.Unmarshal(raw, &strs); err == nil {
		pairs := make([][2]string, len(strs))
		for i, s := range strs {
			a, b, ok := strings.Cut(s, " ")
			if !ok || strings.Contains(b, " ") {
				return nil, fmt.Errorf("merge %d %q is not two tokens separated by one space", i, s)
			}
			pairs[i] = [2]string{a, b}
		}
		return pairs, nil
	}
	var lists [][]string
	if err := json.Unmarshal(raw, &lists); err != nil {
		return nil, fmt.Errorf("merges are neither strings nor pairs of strings: %v", err)
	}
	pairs := make([][2]string, len(lists))
	for i, l := range lists {
		if len(l) != 2 {
			return nil, fmt.Errorf("merge %d has %d tokens, want 2", i, len(l))
		}
		pairs[i] = [2]string{l[0], l[1]}
	}
	return pairs, nil
}

// Encode implements Tokenizer.
func (t *hfTokenizer) Encode(text string) []int32 {
	sections := t.added.split(text)
	// lstrip/rstrip added tokens swallow the whitespace beside them.
	for i, s := range sections {
		a, ok := t.addedBy[s.s]
		if !ok || !s.match {
			continue
		}
		if a.LStrip && i > 0 && !sections[i-1].match {
			sections[i-1].s = strings.TrimRightFunc(sections[i-1].s, unicode.IsSpace)
		}
		if a.RStrip && i+1 < len(sections) && !sections[i+1].match {
			sections[i+1].s = strings.TrimLeftFunc(sections[i+1].s, unicode.IsSpace)
		}
	}
	var ids []int32
	for i, s := range sections {
		if s.match {
			ids = append(ids, t.addedBy[s.s].ID)
			continue
		}
		x := s.s
		if x == "" {
			continue
		}
		if t.norm != nil {
			x = t.norm(x)
		}
		if x == "" {
			continue
		}
		words := []string{x}
		if t.pretok != nil {
			words = t.pretok(words, i == 0)
		}
		for _, w := range words {
			ids = t.model.encodeWord(w, ids)
		}
	}
	return ids
}

// Decode implements Tokenizer: the pieces of ids (special tokens included) through the decoder.
func (t *hfTokenizer) Decode(ids []int32) string {
	tokens := t.Pieces(ids)
	kept := tokens[:0]
	for _, tok := range tokens {
		if tok != "" {
			kept = append(kept, tok)
		}
	}
	if t.decode == nil {
		return strings.Join(kept, " ")
	}
	return strings.Join(t.decode(kept), "")
}

// Pieces implements Tokenizer.
func (t *hfTokenizer) Pieces(ids []int32) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		if id >= 0 && int(id) < len(t.pieces) {
			out[i] = t.pieces[id]
		}
	}
	return out
}

// VocabSize implements Tokenizer.
func (t *hfTokenizer) VocabSize() int { return len(t.pieces) }

// Special implements Tokenizer.
func (t *hfTokenizer) Special() SpecialTokens { return t.special }

// TokenID implements Tokenizer.
func (t *hfTokenizer) TokenID(piece string) (int32, bool) {
	if a, ok := t.addedBy[piece]; ok {
		return a.ID, true
	}
	id, ok := t.model.vocab[piece]
	return id, ok
}

// trie finds added tokens in a text, leftmost first and longest among those starting there.
type trie struct {
	next []map[byte]int32
	end  []bool
}

func newTrie() *trie { return &trie{next: []map[byte]int32{{}}, end: []bool{false}} }

func (t *trie) insert(s string) {
	n := int32(0)
	for i := 0; i < len(s); i++ {
		c, ok := t.next[n][s[i]]
		if !ok {
			c = int32(len(t.next))
			t.next = append(t.next, map[byte]int32{})
			t.end = append(t.end, false)
			t.next[n][s[i]] = c
		}
		n = c
	}
	t.end[n] = true
}

// split cuts text into spans; matched spans are added tokens.
func (t *trie) split(text string) []span {
	if len(t.next[0]) == 0 {
		return []span{{text, false}}
	}
	var out []span
	start := 0
	for i := 0; i < len(text); {
		n, longest := int32(0), 0
		for j := i; j < len(text); j++ {
			c, ok := t.next[n][text[j]]
			if !ok {
				break
			}
			n = c
			if t.end[n] {
				longest = j + 1 - i
			}
		}
		if longest == 0 {
			i++
			continue
		}
		if i > start {
			out = append(out, span{text[start:i], false})
		}
		out = append(out, span{text[i : i+longest], true})
		i += longest
		start = i
	}
	if start < len(text) {
		out = append(out, span{text[start:], false})
	}
	return out
}
