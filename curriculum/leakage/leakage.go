// Package leakage measures how much a multiple-choice test gives away: overlap between test
// questions and training flashcards (verbatim, normalised, and near-duplicate), the distribution
// of correct answer letters, and the accuracy of answering always the same letter.
//
// Near-duplicates use token-set Jaccard similarity: both questions are lower-cased, split into
// letter/digit tokens, and a test question counts as near-duplicate when some training flashcard
// question shares at least Threshold (default 0.8) of the union of their token sets. Exact Jaccard
// over an inverted index is cheap at these sizes (thousands of questions), so no MinHash
// approximation is needed and the numbers are exact.
package leakage

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode"

	"github.com/perpetual-ml/perpetual/curriculum"
)

// DefaultThreshold is the token Jaccard similarity at or above which two questions are
// near-duplicates.
const DefaultThreshold = 0.8

// Overlap counts test questions that appear among the training flashcard questions.
type Overlap struct {
	// Questions is the number of test questions considered.
	Questions int `json:"questions"`
	// Verbatim is the number identical, character for character, to a training flashcard question.
	Verbatim int `json:"verbatim"`
	// Normalized is the number equal after lower-casing and keeping only letters and digits.
	Normalized int `json:"normalized"`
	// Near is the number with token Jaccard >= threshold to some flashcard question (includes the
	// normalised matches).
	Near int `json:"near"`
}

// Frac returns n/Questions (0 when empty).
func (o Overlap) Frac(n int) float64 {
	if o.Questions == 0 {
		return 0
	}
	return float64(n) / float64(o.Questions)
}

// Report is the leakage report of a curriculum/test pair.
type Report struct {
	// Threshold is the Jaccard threshold used for near-duplicates.
	Threshold float64 `json:"threshold"`
	// Flashcards is the number of training flashcards compared against.
	Flashcards int `json:"flashcards"`
	// All is the overlap over the whole test; ByKind splits it by question kind.
	All    Overlap            `json:"all"`
	ByKind map[string]Overlap `json:"by_kind"`
	// Letters counts correct answers per letter (index 0 = "A").
	Letters []int `json:"letters"`
	// AlwaysLetter is the accuracy of answering always letter i, over questions that have one.
	AlwaysLetter []float64 `json:"always_letter"`
}

// Tokens lower-cases s and splits it into runs of letters and digits.
func Tokens(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

func normalize(s string) string { return strings.Join(Tokens(s), " ") }

func tokenSet(s string) map[string]bool {
	set := map[string]bool{}
	for _, t := range Tokens(s) {
		set[t] = true
	}
	return set
}

// Index finds near-duplicates of questions among a fixed set of flashcard questions.
type Index struct {
	exact    map[string]bool
	norm     map[string]bool
	sets     []int            // token-set size per flashcard
	postings map[string][]int // token -> flashcards containing it
}

// NewIndex indexes flashcard questions.
func NewIndex(questions []string) *Index {
	ix := &Index{exact: map[string]bool{}, norm: map[string]bool{}, postings: map[string][]int{}}
	for i, q := range questions {
		ix.exact[q] = true
		ix.norm[normalize(q)] = true
		set := tokenSet(q)
		ix.sets = append(ix.sets, len(set))
		for t := range set {
			ix.postings[t] = append(ix.postings[t], i)
		}
	}
	return ix
}

// MaxJaccard returns the highest token Jaccard similarity between q and any indexed question.
func (ix *Index) MaxJaccard(q string) float64 {
	set := tokenSet(q)
	if len(set) == 0 {
		return 0
	}
	shared := map[int]int{}
	for t := range set {
		for _, i := range ix.postings[t] {
			shared[i]++
		}
	}
	best := 0.0
	for i, n := range shared {
		if j := float64(n) / float64(len(set)+ix.sets[i]-n); j > best {
			best = j
		}
	}
	return best
}

// Analyze computes the report; threshold <= 0 means DefaultThreshold.
func Analyze(c *curriculum.Curriculum, threshold float64) Report {
	if threshold <= 0 {
		threshold = DefaultThreshold
	}
	var cards []string
	for _, it := range c.Train {
		if it.Type == curriculum.TypeQnA {
			cards = append(cards, it.Question)
		}
	}
	ix := NewIndex(cards)
	r := Report{Threshold: threshold, Flashcards: len(cards), ByKind: map[string]Overlap{}}
	maxChoices := 0
	for _, q := range c.Test {
		maxChoices = max(maxChoices, len(q.Choices))
	}
	r.Letters = make([]int, maxChoices)
	has := make([]int, maxChoices)
	for _, q := range c.Test {
		k := r.ByKind[q.Kind]
		add := func(o *Overlap) {
			o.Questions++
			if ix.exact[q.Question] {
				o.Verbatim++
			}
			if ix.norm[normalize(q.Question)] {
				o.Normalized++
				o.Near++
			} else if ix.MaxJaccard(q.Question) >= threshold {
				o.Near++
			}
		}
		add(&r.All)
		add(&k)
		r.ByKind[q.Kind] = k
		r.Letters[q.Answer]++
		for i := range q.Choices {
			has[i]++
		}
	}
	r.AlwaysLetter = make([]float64, maxChoices)
	for i := range r.AlwaysLetter {
		if has[i] > 0 {
			r.AlwaysLetter[i] = float64(r.Letters[i]) / float64(len(c.Test))
		}
	}
	return r
}

// Format writes the report as a readable table.
func (r Report) Format(w io.Writer) {
	row := func(name string, o Overlap) {
		fmt.Fprintf(w, "  %-14s %6d questions  verbatim %6d (%5.1f%%)  normalised %6d (%5.1f%%)  near %6d (%5.1f%%)\n",
			name, o.Questions, o.Verbatim, 100*o.Frac(o.Verbatim), o.Normalized, 100*o.Frac(o.Normalized), o.Near, 100*o.Frac(o.Near))
	}
	fmt.Fprintf(w, "test questions found among the %d training flashcard questions (near = token Jaccard >= %.2f):\n", r.Flashcards, r.Threshold)
	row("all", r.All)
	kinds := make([]string, 0, len(r.ByKind))
	for k := range r.ByKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	if len(kinds) > 1 {
		for _, k := range kinds {
			row(k, r.ByKind[k])
		}
	}
	fmt.Fprintf(w, "correct answer letters:")
	for i, n := range r.Letters {
		fmt.Fprintf(w, "  %s %d (%.1f%%)", curriculum.Letter(i), n, 100*r.All.Frac(n))
	}
	fmt.Fprintf(w, "\nalways-the-same-letter accuracy:")
	for i, a := range r.AlwaysLetter {
		fmt.Fprintf(w, "  %s %.3f", curriculum.Letter(i), a)
	}
	chance := 0.0
	if len(r.Letters) > 0 {
		chance = 1 / float64(len(r.Letters))
	}
	fmt.Fprintf(w, "  (chance %.3f)\n", chance)
}
