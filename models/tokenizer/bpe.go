package tokenizer

import (
	"container/heap"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"
)

// bpe is the BPE model of a tokenizer.json: it turns one pre-tokenized word into ids by applying
// the ranked merges, lowest rank first and leftmost first among equal ranks.
type bpe struct {
	vocab        map[string]int32
	merges       map[uint64]merge // key: left id << 32 | right id
	unk          int32            // -1: none
	fuseUnk      bool
	byteFallback bool
	ignoreMerges bool
	prefix       string // continuing_subword_prefix
	suffix       string // end_of_word_suffix
	byteIDs      [256]int32

	mu    sync.Mutex
	cache map[string][]int32
}

type merge struct {
	rank int32
	id   int32
}

const (
	maxCachedWord = 256
	maxCacheSize  = 1 << 16
)

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// newBPE builds the merge table; pairs are the merges in rank order.
func newBPE(vocab map[string]int32, pairs [][2]string, prefix string) (*bpe, error) {
	m := &bpe{vocab: vocab, merges: make(map[uint64]merge, len(pairs)), unk: -1, prefix: prefix, cache: map[string][]int32{}}
	for i, p := range pairs {
		a, okA := vocab[p[0]]
		b, okB := vocab[p[1]]
		right := p[1]
		if prefix != "" {
			right = strings.TrimPrefix(right, prefix)
		}
		id, okM := vocab[p[0]+right]
		if !okA || !okB || !okM {
			return nil, fmt.Errorf("merge %d (%q %q): token %q not in the vocabulary", i, p[0], p[1], firstMissing(vocab, p[0], p[1], p[0]+right))
		}
		m.merges[pairKey(a, b)] = merge{rank: int32(i), id: id} // a repeated pair keeps its last rank, as both reference libraries do
	}
	for b := range 256 {
		m.byteIDs[b] = -1
		if id, ok := vocab[fmt.Sprintf("<0x%02X>", b)]; ok {
			m.byteIDs[b] = id
		}
	}
	return m, nil
}

func firstMissing(vocab map[string]int32, names ...string) string {
	for _, n := range names {
		if _, ok := vocab[n]; !ok {
			return n
		}
	}
	return ""
}

// symbol is one node of the doubly linked list a word is merged in.
type symbol struct {
	id         int32
	prev, next int
	gone       bool
}

// candidate is a possible merge of the symbol at pos with its successor.
type candidate struct {
	rank, pos int
	left      int32 // ids at push time, to detect stale candidates
	right     int32
	id        int32
}

type candidates []candidate

func (c candidates) Len() int { return len(c) }
func (c candidates) Less(i, j int) bool {
	if c[i].rank != c[j].rank {
		return c[i].rank < c[j].rank
	}
	return c[i].pos < c[j].pos
}
func (c candidates) Swap(i, j int) { c[i], c[j] = c[j], c[i] }
func (c *candidates) Push(x any)   { *c = append(*c, x.(candidate)) }
func (c *candidates) Pop() any {
	old := *c
	x := old[len(old)-1]
	*c = old[:len(old)-1]
	return x
}

// encodeWord appends the ids of word to out.
func (m *bpe) encodeWord(word string, out []int32) []int32 {
	if word == "" {
		return out
	}
	if m.ignoreMerges {
		if id, ok := m.vocab[word]; ok {
			return append(out, id)
		}
	}
	if len(word) <= maxCachedWord {
		m.mu.Lock()
		ids, ok := m.cache[word]
		m.mu.Unlock()
		if ok {
			return append(out, ids...)
		}
	}
	ids := m.merge(m.symbols(word))
	if len(word) <= maxCachedWord {
		m.mu.Lock()
		if len(m.cache) >= maxCacheSize {
			m.cache = map[string][]int32{}
		}
		m.cache[word] = ids
		m.mu.Unlock()
	}
	return append(out, ids...)
}

// symbols splits word into the ids of its characters, with byte fallback and unknown-token
// handling as in the Hugging Face BPE model.
func (m *bpe) symbols(word string) []symbol {
	var syms []symbol
	lastUnk := false
	for i := 0; i < len(word); {
		_, w := utf8.DecodeRuneInString(word[i:])
		ch := word[i : i+w]
		if i > 0 && m.prefix != "" {
			ch = m.prefix + ch
		}
		if i+w == len(word) && m.suffix != "" {
			ch += m.suffix
		}
		raw := word[i : i+w]
		i += w
		if id, ok := m.vocab[ch]; ok {
			syms = append(syms, symbol{id: id})
			lastUnk = false
			continue
		}
		if m.byteFallback && m.allBytes(raw) {
			for j := 0; j < len(raw); j++ {
				syms = append(syms, symbol{id: m.byteIDs[raw[j]]})
			}
			lastUnk = false
			continue
		}
		if m.unk < 0 {
			continue // no unknown token: the character is dropped (the reference libraries fail here)
		}
		if m.fuseUnk && lastUnk {
			continue
		}
		syms = append(syms, symbol{id: m.unk})
		lastUnk = true
	}
	for i := range syms {
		syms[i].prev, syms[i].next = i-1, i+1
	}
	if len(syms) > 0 {
		syms[len(syms)-1].next = -1
	}
	return syms
}

func (m *bpe) allBytes(s string) bool {
	for j := 0; j < len(s); j++ {
		if m.byteIDs[s[j]] < 0 {
			return false
		}
	}
	return true
}

// merge applies merges until none applies and returns the remaining ids.
func (m *bpe) merge(syms []symbol) []int32 {
	var q candidates
	push := func(pos int) {
		next := syms[pos].next
		if next < 0 {
			return
		}
		if mg, ok := m.merges[pairKey(syms[pos].id, syms[next].id)]; ok {
			heap.Push(&q, candidate{rank: int(mg.rank), pos: pos, left: syms[pos].id, right: syms[next].id, id: mg.id})
		}
	}
	for i := range syms {
		push(i)
	}
	for q.Len() > 0 {
		c := heap.Pop(&q).(candidate)
		s := &syms[c.pos]
		if s.gone || s.next < 0 || s.id != c.left || syms[s.next].id != c.right {
			continue
		}
		right := &syms[s.next]
		s.id = c.id
		right.gone = true
		s.next = right.next
		if s.next >= 0 {
			syms[s.next].prev = c.pos
		}
		if s.prev >= 0 {
			push(s.prev)
		}
		push(c.pos)
	}
	ids := make([]int32, 0, len(syms))
	for i := 0; i >= 0 && i < len(syms); i = syms[i].next {
		ids = append(ids, syms[i].id)
	}
	return ids
}
