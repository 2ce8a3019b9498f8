// Package offline holds the teachers that need no network and no model: they write flashcards
// and multiple-choice questions from structure already in the knowledge base.
//
//   - Products: every field of a record (brand, price, category, each spec) gives an exact
//     question and answer; distractors are the same field's values in other records.
//   - Go code: declarations read with go/parser give questions on which package defines a
//     function, what it returns, how many parameters it takes and what they are; distractors are
//     the same property of other functions of the repository.
//   - Python code: the same from a small line parser of def/class headers.
//   - Prose: cloze items that blank out a number or a named entity of a sentence; distractors
//     are other numbers of the same shape or other entities from the corpus.
//
// Every teacher is deterministic given its seed.
package offline

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/perpetual-ml/perpetual/curriculum"
	"github.com/perpetual-ml/perpetual/curriculum/sources/products"
)

// pickDistractors returns up to n values from pool that differ (case- and space-insensitively)
// from answer and from each other, in a seeded order.
func pickDistractors(rng *rand.Rand, pool []string, answer string, n int) []string {
	cands := append([]string(nil), pool...)
	sort.Strings(cands) // independent of map order upstream
	rng.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
	seen := map[string]bool{key(answer): true}
	var out []string
	for _, c := range cands {
		if k := key(c); k != "" && !seen[k] {
			seen[k] = true
			out = append(out, c)
			if len(out) == n {
				break
			}
		}
	}
	return out
}

func key(s string) string { return strings.ToLower(strings.Join(strings.Fields(s), " ")) }

// maxValueLen keeps choices short: a field value longer than this is prose, not a fact to test.
const maxValueLen = 120

// Products writes one fact per filled field of each record. Fields whose values are all alike
// (fewer than four distinct values across records) cannot give a fair question and are skipped.
func Products(recs []products.Record, seed int64) []curriculum.Fact {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x9a0d))
	type fv struct{ field, value string }
	fields := func(r *products.Record) []fv {
		out := []fv{{"brand", r.Brand}, {"price", r.Price}, {"category", r.Category}}
		for _, s := range r.Specs {
			out = append(out, fv{s.Name, s.Value})
		}
		return out
	}
	pools := map[string][]string{}
	for i := range recs {
		for _, f := range fields(&recs[i]) {
			if f.value != "" && len(f.value) <= maxValueLen {
				pools[strings.ToLower(f.field)] = append(pools[strings.ToLower(f.field)], f.value)
			}
		}
	}
	var facts []curriculum.Fact
	for i := range recs {
		r := &recs[i]
		if len(r.ChunkIDs) == 0 {
			continue
		}
		for _, f := range fields(r) {
			if f.value == "" || len(f.value) > maxValueLen {
				continue
			}
			d := pickDistractors(rng, pools[strings.ToLower(f.field)], f.value, 3)
			if len(d) < 3 {
				continue
			}
			name := strings.ToLower(f.field)
			facts = append(facts, curriculum.Fact{
				ChunkID:      r.ChunkIDs[0],
				Question:     fmt.Sprintf("What is the %s of %s?", name, r.Title),
				Answer:       fmt.Sprintf("The %s of %s is %s.", name, r.Title, f.value),
				TestQuestion: fmt.Sprintf("Which %s does %s have?", name, r.Title),
				TestAnswer:   f.value,
				Distractors:  d,
			})
		}
	}
	return facts
}
