package synthetic

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// namer makes pronounceable invented words from a syllable inventory, never the same word twice.
// The knowledge bases and the general world use disjoint inventories, so no name of the
// knowledge to inject can occur in the pre-training world.
type namer struct {
	rng   *rand.Rand
	onset []string
	first []string // onsets of a word's first syllable when set (practice knowledge bases)
	nucl  []string
	coda  []string
	used  map[string]bool
}

// knowledgeSyllables and worldSyllables are disjoint in their onsets, so their words never match.
var (
	knowledgeOnsets = []string{"z", "v", "qu", "x", "kr", "thr", "zh", "vl"}
	worldOnsets     = []string{"b", "d", "l", "m", "n", "s", "t", "p", "r", "h"}
	// practiceOnsets start every word of a practice knowledge base: disjoint from both inventories
	// above, so practice names never equal a test name or a world name; the later syllables are
	// the knowledge inventory's, so their sub-words are the ones test names are made of.
	practiceOnsets = []string{"g", "f", "w", "j"}
	nuclei         = []string{"a", "e", "i", "o", "u", "ae", "io", "ou"}
	codas          = []string{"", "", "n", "r", "l", "s", "th", "x", "m"}
)

func newNamer(rng *rand.Rand, onsets []string) *namer {
	return &namer{rng: rng, onset: onsets, nucl: nuclei, coda: codas, used: map[string]bool{}}
}

func (n *namer) syllable(onsets []string) string {
	return onsets[n.rng.IntN(len(onsets))] + n.nucl[n.rng.IntN(len(n.nucl))] + n.coda[n.rng.IntN(len(n.coda))]
}

// word returns a new capitalised word of 2-3 syllables.
func (n *namer) word() string {
	for {
		var b strings.Builder
		k := 2 + n.rng.IntN(2)
		for i := 0; i < k; i++ {
			onsets := n.onset
			if i == 0 && n.first != nil {
				onsets = n.first
			}
			b.WriteString(n.syllable(onsets))
		}
		w := capitalize(b.String())
		if !n.used[w] && len(w) <= 12 {
			n.used[w] = true
			return w
		}
	}
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func pick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

// distinct draws values from gen until it has n that differ from each other and from exclude.
func distinct(n int, exclude string, gen func() string) []string {
	seen := map[string]bool{exclude: true}
	var out []string
	for tries := 0; len(out) < n && tries < 1000; tries++ {
		v := gen()
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// thousands formats 1240 as "1,240".
func thousands(v int) string {
	s := fmt.Sprint(v)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
