package tokenizer

import (
	"os"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

var fuzzTokenizers = sync.OnceValues(func() ([]Tokenizer, error) {
	data, err := Train(append(trainingCorpus(), conformanceCorpus...), 600, TrainOptions{SpecialTokens: []string{"<|endoftext|>"}})
	if err != nil {
		return nil, err
	}
	trained, err := LoadJSON(data, "trained")
	if err != nil {
		return nil, err
	}
	tiny, err := LoadJSON([]byte(tinyJSON(`["a b","▁ ab"]`)), "tiny")
	if err != nil {
		return nil, err
	}
	return []Tokenizer{trained, tiny}, nil
})

// FuzzEncode: encoding never panics, ids are in range, and the tokenizers (byte-level, Replace
// normalizer with full byte fallback, SentencePiece with byte fallback) give back valid UTF-8
// text exactly.
func FuzzEncode(f *testing.F) {
	for _, s := range conformanceCorpus {
		f.Add(s)
	}
	f.Add("\xff\xfe invalid \xc3")
	f.Add("<|endoftext|><eos><|endoftext")
	f.Fuzz(func(t *testing.T, s string) {
		toks, err := fuzzTokenizers()
		if err != nil {
			t.Fatal(err)
		}
		for _, tok := range append(toks, fuzzSPM(t)) {
			ids := tok.Encode(s)
			for _, id := range ids {
				if id < 0 || int(id) >= tok.VocabSize() {
					t.Fatalf("id %d out of range for %q", id, s)
				}
			}
			got := tok.Decode(ids)
			if utf8.ValidString(s) && got != s {
				t.Fatalf("Decode(Encode(%q)) = %q", s, got)
			}
		}
	})
}

// FuzzLoadJSON: any bytes give a tokenizer or an error, never a panic; a tokenizer that loads
// encodes without panicking.
func FuzzLoadJSON(f *testing.F) {
	for _, seed := range goodJSONSeeds() {
		f.Add([]byte(seed))
	}
	f.Add([]byte(`{"model":{"vocab":{}}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := LoadJSON(data, "fuzz.json")
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.json") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, s := range []string{"", "ab ab", " <x> 12 x\n", "\xff"} {
			tok.Decode(tok.Encode(s))
		}
		tok.Pieces([]int32{-1, 0, 1 << 30})
	})
}

// goodJSONSeeds are small valid tokenizer.json files covering the supported components. Small:
// the fuzzer minimizes every new input, which takes long on kilobyte inputs.
func goodJSONSeeds() []string {
	var seeds []string
	small := `{"added_tokens":[{"id":0,"content":"<eos>","special":true,"rstrip":true}],` +
		`"normalizer":{"type":"Replace","pattern":{"String":" "},"content":"▁"},"pre_tokenizer":null,` +
		`"decoder":{"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":"▁"},"content":" "},` +
		`{"type":"ByteFallback"},{"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]},` +
		`"model":{"type":"BPE","unk_token":"<unk>","fuse_unk":true,"byte_fallback":true,` +
		`"vocab":{"<eos>":0,"<unk>":1,"<0x31>":2,"▁":3,"a":4,"b":5,"ab":6,"▁ab":7},"merges":MERGES}}`
	seeds = append(seeds, (strings.Replace(small, "MERGES", `["a b","▁ ab"]`, 1)))
	seeds = append(seeds, (strings.Replace(small, "MERGES", `[["a","b"],["▁","ab"]]`, 1)))
	seeds = append(seeds, (strings.Replace(strings.Replace(small, "MERGES", `["a b"]`, 1), `"pre_tokenizer":null`,
		`"pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"\\d+"},"behavior":"MergedWithNext","invert":true},{"type":"Metaspace","prepend_scheme":"first"},{"type":"Digits","individual_digits":true}]}`, 1)))
	seeds = append(seeds, (`{"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"],"ignore_merges":true,"continuing_subword_prefix":"##","end_of_word_suffix":"</w>"},"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":true},"decoder":{"type":"ByteLevel"}}`))
	seeds = append(seeds, (`{"model":{"vocab":{"x":3}},"added_tokens":[{"id":7,"content":"<x>","lstrip":true,"rstrip":true}],"normalizer":{"type":"Sequence","normalizers":[{"type":"NFKC"},{"type":"Lowercase"},{"type":"Strip","strip_left":true}]}}`))
	return seeds
}

func TestFuzzSeedsLoad(t *testing.T) {
	for _, s := range goodJSONSeeds() {
		tok, err := LoadJSON([]byte(s), "seed")
		if err != nil {
			t.Fatalf("%v\n%s", err, s)
		}
		tok.Decode(tok.Encode("ab ab<eos> 1 <x>"))
	}
}

var spmOnce struct {
	sync.Once
	tok Tokenizer
	err error
}

// fuzzSPM is the hand-built SentencePiece model of TestSentencePiece, built once per process.
func fuzzSPM(t *testing.T) Tokenizer {
	spmOnce.Do(func() {
		dir, err := os.MkdirTemp("", "spm")
		if err != nil {
			spmOnce.err = err
			return
		}
		defer os.RemoveAll(dir)
		spmOnce.tok, spmOnce.err = Load(spmModel(t, dir, true))
	})
	if spmOnce.err != nil {
		t.Fatal(spmOnce.err)
	}
	return spmOnce.tok
}
