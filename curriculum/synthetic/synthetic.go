// Package synthetic generates knowledge bases whose facts are guaranteed new to any model:
// fictional products, research papers and a Go code module, built deterministically from a seed
// out of invented names. They are the knowledge the embedded default injects (issue 9).
//
// Every fact is stated in a document chunk. Assemble (package curriculum) then gives some chunks'
// facts as flashcards ("seen" test questions) and keeps others document-only. Distractors come
// from the same field of the other entities (other prices, other institutions, other return
// types), so without the knowledge a model answers at chance; the answer letter is balanced by a
// seeded shuffle.
//
// World generates a separate fictional world (towns, rivers, crafts) for pre-training and
// instruction tuning the miniature models; its names come from a disjoint syllable inventory, so
// none of the knowledge to inject leaks into pre-training.
package synthetic

import (
	"fmt"
	"math/rand/v2"

	"github.com/perpetual-ml/perpetual/curriculum"
)

// Tasks are the synthetic knowledge bases, named as the paper's tasks.
var Tasks = []string{"products", "research", "code"}

// Options size a knowledge base.
type Options struct {
	// Seed makes everything reproducible.
	Seed int64
	// Chunks is the number of entities (products, papers, source files), one chunk each. Default 36.
	Chunks int
	// FactsPerChunk is how many facts of each entity are questioned (the document states more).
	// Default 5, at most the number of attributes of the task (7).
	FactsPerChunk int
	// Assemble controls the seen / document-only / validation split; its Seed is overridden.
	Assemble curriculum.AssembleOptions
}

func (o *Options) defaults() {
	if o.Chunks <= 0 {
		o.Chunks = 36
	}
	if o.FactsPerChunk <= 0 {
		o.FactsPerChunk = 5
	}
}

// attribute is one fact about an entity.
type attribute struct {
	field    string // distractor pool key: values of the same field of other entities
	value    string // short answer (a choice)
	sentence string // how the document states it
	question string // flashcard question
	answer   string // flashcard answer sentence
	test     string // multiple-choice stem, worded differently from the flashcard
	gen      func() string
}

type entity struct {
	chunk curriculum.Chunk
	attrs []attribute
}

// facts turns entities into chunks and facts: each entity keeps k attributes, chosen by rng;
// distractors are the same field's values of other entities, topped up by the field's generator.
func facts(rng *rand.Rand, ents []entity, k int) ([]curriculum.Chunk, []curriculum.Fact) {
	pools := map[string][]string{}
	for _, e := range ents {
		for _, a := range e.attrs {
			if a.field != "" {
				pools[a.field] = append(pools[a.field], a.value)
			}
		}
	}
	var chunks []curriculum.Chunk
	var out []curriculum.Fact
	for _, e := range ents {
		chunks = append(chunks, e.chunk)
		order := rng.Perm(len(e.attrs))
		for _, i := range order[:min(k, len(order))] {
			a := e.attrs[i]
			cands := append([]string(nil), pools[a.field]...)
			rng.Shuffle(len(cands), func(x, y int) { cands[x], cands[y] = cands[y], cands[x] })
			d := distinct(3, a.value, func() string {
				if len(cands) > 0 {
					v := cands[0]
					cands = cands[1:]
					return v
				}
				return a.gen()
			})
			out = append(out, curriculum.Fact{ChunkID: e.chunk.ID, Question: a.question, Answer: a.answer,
				TestQuestion: a.test, TestAnswer: a.value, Distractors: d})
		}
	}
	return chunks, out
}

// Generate returns the chunks and facts of one task ("products", "research" or "code").
func Generate(task string, opt Options) ([]curriculum.Chunk, []curriculum.Fact, error) {
	opt.defaults()
	// Each task has its own stream, so changing one task's size leaves the others unchanged.
	var salt uint64
	for _, c := range task {
		salt = salt*131 + uint64(c)
	}
	rng := rand.New(rand.NewPCG(uint64(opt.Seed), salt))
	var ents []entity
	switch task {
	case "products":
		ents = products(rng, opt.Chunks)
	case "research":
		ents = papers(rng, opt.Chunks)
	case "code":
		ents = codeFiles(rng, opt.Chunks)
	default:
		return nil, nil, fmt.Errorf("synthetic: unknown task %q (want one of %v)", task, Tasks)
	}
	chunks, fs := facts(rng, ents, opt.FactsPerChunk)
	return chunks, fs, nil
}

// Build generates a task's knowledge base and assembles it into a curriculum with a test.
func Build(task string, opt Options) (*curriculum.Curriculum, error) {
	opt.defaults()
	chunks, fs, err := Generate(task, opt)
	if err != nil {
		return nil, err
	}
	ao := opt.Assemble
	ao.Seed = opt.Seed
	c, err := curriculum.Assemble(chunks, fs, ao)
	if err != nil {
		return nil, err
	}
	c.Manifest.Source = "synthetic"
	c.Manifest.Teacher = "synthetic"
	c.Manifest.Inputs = []string{"synthetic:" + task}
	c.Manifest.Options["task"] = task
	c.Manifest.Options["chunks"] = fmt.Sprint(opt.Chunks)
	c.Manifest.Options["facts_per_chunk"] = fmt.Sprint(opt.FactsPerChunk)
	return c, nil
}
