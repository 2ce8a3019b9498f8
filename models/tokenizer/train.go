package tokenizer

import (
	"container/heap"
	"encoding/json"
	"fmt"
	"sort"
)

// TrainOptions configure Train.
type TrainOptions struct {
	// SpecialTokens get the first ids, in order (e.g. "<|endoftext|>", "<|pad|>"). They are
	// matched whole in text, like the added tokens of any tokenizer.json.
	SpecialTokens []string
	// MinFrequency is the least number of occurrences a pair needs to be merged (default 2).
	MinFrequency int
}

// Train learns a byte-level BPE tokenizer (GPT-2 pre-tokenizer, 256 byte tokens, merges) from
// corpus and returns its tokenizer.json. vocabSize counts special tokens, bytes and merges;
// training stops early when no pair reaches MinFrequency. Ties between equally frequent pairs go
// to the pair whose tokens sort first, so the result is deterministic.
func Train(corpus []string, vocabSize int, opts TrainOptions) ([]byte, error) {
	if opts.MinFrequency <= 0 {
		opts.MinFrequency = 2
	}
	base := len(opts.SpecialTokens) + 256
	if vocabSize < base {
		return nil, fmt.Errorf("tokenizer: Train: vocabSize %d is below %d (special tokens + 256 bytes)", vocabSize, base)
	}
	vocab := map[string]int32{}
	var added []map[string]any
	specials := newTrie()
	for _, s := range opts.SpecialTokens {
		if s == "" {
			return nil, fmt.Errorf("tokenizer: Train: empty special token")
		}
		if _, dup := vocab[s]; dup {
			return nil, fmt.Errorf("tokenizer: Train: special token %q given twice", s)
		}
		id := int32(len(vocab))
		vocab[s] = id
		specials.insert(s)
		added = append(added, map[string]any{"id": id, "content": s, "single_word": false, "lstrip": false,
			"rstrip": false, "normalized": false, "special": true})
	}
	for b := range 256 {
		s := string(byteToRune[b])
		if _, clash := vocab[s]; clash {
			return nil, fmt.Errorf("tokenizer: Train: special token %q clashes with a byte token", s)
		}
		vocab[s] = int32(len(vocab))
	}
	sym := func(s string) int32 { return vocab[s] }

	// Count the distinct pre-tokenized words.
	counts := map[string]int{}
	for _, doc := range corpus {
		for _, sec := range specials.split(doc) {
			if sec.match {
				continue
			}
			for _, w := range splitGPT2(sec.s) {
				counts[byteLevelEncode(w)]++
			}
		}
	}
	keys := make([]string, 0, len(counts))
	for w := range counts {
		keys = append(keys, w)
	}
	sort.Strings(keys)
	words := make([][]int32, len(keys))
	freq := make([]int, len(keys))
	for i, w := range keys {
		freq[i] = counts[w]
		for _, r := range w {
			words[i] = append(words[i], sym(string(r)))
		}
	}

	strs := make([]string, len(vocab)) // id -> token string
	for s, id := range vocab {
		strs[id] = s
	}
	nameOf := func(id int32) string { return strs[id] }

	pairCount := map[uint64]int{}
	pairWords := map[uint64]map[int]struct{}{}
	addPairs := func(w int, sign int) {
		ids := words[w]
		for j := 0; j+1 < len(ids); j++ {
			k := pairKey(ids[j], ids[j+1])
			pairCount[k] += sign * freq[w]
			if sign > 0 {
				if pairWords[k] == nil {
					pairWords[k] = map[int]struct{}{}
				}
				pairWords[k][w] = struct{}{}
			}
		}
	}
	for w := range words {
		addPairs(w, 1)
	}
	q := &pairQueue{name: nameOf}
	for k, c := range pairCount {
		heap.Push(q, pairEntry{k, c})
	}

	var merges [][2]string
	for len(vocab) < vocabSize && q.Len() > 0 {
		e := heap.Pop(q).(pairEntry)
		if pairCount[e.key] != e.count { // stale entry
			continue
		}
		if e.count < opts.MinFrequency {
			break
		}
		a, b := int32(e.key>>32), int32(uint32(e.key))
		sa, sb := nameOf(a), nameOf(b)
		merged := sa + sb
		id, ok := vocab[merged]
		if !ok {
			id = int32(len(vocab))
			vocab[merged] = id
			strs = append(strs, merged)
		}
		merges = append(merges, [2]string{sa, sb})
		changed := map[uint64]bool{}
		affected := make([]int, 0, len(pairWords[e.key]))
		for w := range pairWords[e.key] {
			affected = append(affected, w)
		}
		sort.Ints(affected)
		for _, w := range affected {
			ids := words[w]
			for j := 0; j+1 < len(ids); j++ {
				changed[pairKey(ids[j], ids[j+1])] = true
			}
			addPairs(w, -1)
			out := ids[:0:0]
			for j := 0; j < len(ids); j++ {
				if j+1 < len(ids) && ids[j] == a && ids[j+1] == b {
					out = append(out, id)
					j++
				} else {
					out = append(out, ids[j])
				}
			}
			words[w] = out
			addPairs(w, 1)
			for j := 0; j+1 < len(out); j++ {
				changed[pairKey(out[j], out[j+1])] = true
			}
		}
		delete(pairCount, e.key)
		delete(pairWords, e.key)
		for k := range changed {
			if c := pairCount[k]; c > 0 {
				heap.Push(q, pairEntry{k, c})
			}
		}
	}

	// "a b" strings, readable by every tokenizers version (pairs need 0.20+); byte-level tokens
	// never contain a space, so the format is unambiguous.
	mergeStrings := make([]string, len(merges))
	for i, m := range merges {
		mergeStrings[i] = m[0] + " " + m[1]
	}
	f := map[string]any{
		"version":      "1.0",
		"truncation":   nil,
		"padding":      nil,
		"added_tokens": added,
		"normalizer":   nil,
		"pre_tokenizer": map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
			"use_regex": true},
		"post_processor": map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false,
			"use_regex": true},
		"decoder": map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
			"use_regex": true},
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
			"vocab": vocab, "merges": mergeStrings},
	}
	return json.MarshalIndent(f, "", " ")
}

type pairEntry struct {
	key   uint64
	count int
}

// pairQueue is a max-heap of pair counts; ties go to the pair whose token strings sort first.
type pairQueue struct {
	items []pairEntry
	name  func(int32) string
}

func (q *pairQueue) Len() int { return len(q.items) }
func (q *pairQueue) Less(i, j int) bool {
	a, b := q.items[i], q.items[j]
	if a.count != b.count {
		return a.count > b.count
	}
	la, lb := q.name(int32(a.key>>32)), q.name(int32(b.key>>32))
	if la != lb {
		return la < lb
	}
	return q.name(int32(uint32(a.key))) < q.name(int32(uint32(b.key)))
}
func (q *pairQueue) Swap(i, j int) { q.items[i], q.items[j] = q.items[j], q.items[i] }
func (q *pairQueue) Push(x any)    { q.items = append(q.items, x.(pairEntry)) }
func (q *pairQueue) Pop() any {
	x := q.items[len(q.items)-1]
	q.items = q.items[:len(q.items)-1]
	return x
}
