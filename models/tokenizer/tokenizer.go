// Package tokenizer turns text into token ids and back for the model families of Perpetual.
//
// It reads Hugging Face tokenizer.json files with its own BPE implementation (bpe.go), and
// SentencePiece tokenizer.model files through github.com/eliben/go-sentencepiece.
//
// Why its own BPE: the Go libraries measured on these machines were not exact (go-huggingface's
// hftokenizer splits digit and whitespace runs wrongly) or panicked on real files
// (sugarme/tokenizer on the Llama-3 pre-tokenizer regex, which uses a lookahead that Go's regexp
// lacks). The BPE algorithm itself is small; what matters is reproducing the Hugging Face pipeline
// exactly: added tokens matched first, then normalizer, pre-tokenizer (the GPT-2 and Llama-3
// splitting regexes are written out by hand in split.go), BPE with ranks, byte fallback,
// ignore_merges, and the decoder chain. Conformance against the JS implementation
// (@lenml/tokenizers, a fork of transformers.js) on real tokenizer.json files is tested in
// conformance_test.go.
//
// Train (train.go) learns a byte-level BPE tokenizer from a corpus and writes a tokenizer.json
// that Load and the Hugging Face libraries read.
package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Tokenizer encodes text to token ids and decodes ids to text.
type Tokenizer interface {
	// Encode returns the ids of text, without BOS/EOS or any other post-processing tokens.
	// Added-token strings that occur in text (e.g. "<start_of_turn>") become their ids
	// (tokenizer.json added tokens; user-defined pieces of a SentencePiece model).
	Encode(text string) []int32
	// Decode returns the text of ids, special tokens included as their strings.
	Decode(ids []int32) string
	// Pieces returns the vocabulary strings of ids ("" for ids out of range).
	Pieces(ids []int32) []string
	// VocabSize is the number of ids (one more than the largest id).
	VocabSize() int
	// Special returns the BOS, EOS, PAD and UNK ids (-1 where absent).
	Special() SpecialTokens
	// TokenID returns the id of a vocabulary string.
	TokenID(piece string) (int32, bool)
}

// SpecialTokens are the ids of the tokens models treat specially; -1 means absent.
type SpecialTokens struct {
	BOS, EOS, PAD, UNK int32
}

// Load reads a tokenizer from a tokenizer.json file, a SentencePiece tokenizer.model file, or a
// model folder holding either (tokenizer.json is preferred). tokenizer_config.json and
// special_tokens_map.json beside the file name the special tokens.
func Load(path string) (Tokenizer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	file := path
	if st.IsDir() {
		file = ""
		for _, name := range []string{"tokenizer.json", "tokenizer.model"} {
			if _, err := os.Stat(filepath.Join(path, name)); err == nil {
				file = filepath.Join(path, name)
				break
			}
		}
		if file == "" {
			return nil, fmt.Errorf("tokenizer: %s has neither tokenizer.json nor tokenizer.model", path)
		}
	}
	names, err := readSpecialNames(filepath.Dir(file))
	if err != nil {
		return nil, err
	}
	if filepath.Ext(file) == ".model" {
		return loadSentencePiece(file, names)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	return parseHF(data, file, names)
}

// LoadJSON parses tokenizer.json content; name is used in error messages. No
// tokenizer_config.json is read: special tokens come from the added tokens.
func LoadJSON(data []byte, name string) (Tokenizer, error) {
	return parseHF(data, name, specialNames{})
}

// specialNames are the special-token strings named by tokenizer_config.json or
// special_tokens_map.json ("" when not named).
type specialNames struct {
	bos, eos, pad, unk string
}

// readSpecialNames reads tokenizer_config.json, then special_tokens_map.json for what the first
// leaves unnamed. Missing files are fine; corrupt ones are errors naming the file.
func readSpecialNames(dir string) (specialNames, error) {
	var names specialNames
	for _, file := range []string{"tokenizer_config.json", "special_tokens_map.json"} {
		path := filepath.Join(dir, file)
		data, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return names, fmt.Errorf("tokenizer: %w", err)
		}
		var cfg map[string]json.RawMessage
		if err := json.Unmarshal(data, &cfg); err != nil {
			return names, fmt.Errorf("tokenizer: %s: %v", path, err)
		}
		for key, dst := range map[string]*string{"bos_token": &names.bos, "eos_token": &names.eos, "pad_token": &names.pad, "unk_token": &names.unk} {
			if *dst != "" {
				continue
			}
			s, err := tokenString(cfg[key])
			if err != nil {
				return names, fmt.Errorf("tokenizer: %s: %s: %v", path, key, err)
			}
			*dst = s
		}
	}
	return names, nil
}

// tokenString reads a special token written either as a string or as {"content": ...}.
func tokenString(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var obj struct {
		Content string `json:"content"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return "", fmt.Errorf("want a string or {\"content\": ...}, got %s", truncate(string(raw), 60))
	}
	return obj.Content, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// resolveSpecial picks the ids of the named special tokens, falling back to the conventional
// names of the model families when the config names none.
func resolveSpecial(names specialNames, lookup func(string) (int32, bool)) SpecialTokens {
	pick := func(named string, conventional ...string) int32 {
		if named != "" {
			if id, ok := lookup(named); ok {
				return id
			}
			return -1
		}
		for _, c := range conventional {
			if id, ok := lookup(c); ok {
				return id
			}
		}
		return -1
	}
	return SpecialTokens{
		BOS: pick(names.bos, "<bos>", "<s>", "<|begin_of_text|>", "<|startoftext|>"),
		EOS: pick(names.eos, "<eos>", "</s>", "<|end_of_text|>", "<|endoftext|>"),
		PAD: pick(names.pad, "<pad>", "<|pad|>", "<|padding|>"),
		UNK: pick(names.unk, "<unk>", "<|unk|>"),
	}
}
