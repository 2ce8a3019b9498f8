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
	"strings"

	"github.com/perpetual-ml/perpetual/curriculum"
)

// Tasks are the synthetic knowledge bases, named as the paper's tasks.
var Tasks = []string{"products", "research", "code"}

// MaxParaphrases is how many flashcard paraphrases per fact Options.Paraphrases can ask for.
const MaxParaphrases = 2

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
	// DocVariants adds that many extra training documents per chunk, restating all of the
	// chunk's facts in other words and order (document augmentation, a lever for learning facts
	// from documents alone). Default 0. Variants never change the base curriculum or the test.
	DocVariants int
	// Paraphrases adds up to MaxParaphrases extra flashcards per fact in other formats (short
	// answer; a prompt-prefixed question). Default 0.
	Paraphrases int
	// Practice makes a practice knowledge base for training models (the zoo's): every invented
	// name starts with a syllable no test knowledge base uses, so no entity, brand, author or
	// package of a practice base can be one of a test base's, whatever the seeds and sizes.
	Practice bool
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
// paraphrases (0-2) adds flashcards in other formats without touching rng.
func facts(rng *rand.Rand, ents []entity, k, paraphrases int) ([]curriculum.Chunk, []curriculum.Fact) {
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
			var paras []curriculum.QA
			if paraphrases >= 1 {
				paras = append(paras, curriculum.QA{Question: a.question, Answer: a.value + "."})
			}
			if paraphrases >= 2 {
				paras = append(paras, curriculum.QA{Question: "Answer from what you have read: " + a.question, Answer: a.answer})
			}
			out = append(out, curriculum.Fact{ChunkID: e.chunk.ID, Question: a.question, Answer: a.answer,
				TestQuestion: a.test, TestAnswer: a.value, Distractors: d, Paraphrases: paras})
		}
	}
	return chunks, out
}

// Generate returns the chunks and facts of one task ("products", "research" or "code").
func Generate(task string, opt Options) ([]curriculum.Chunk, []curriculum.Fact, error) {
	chunks, fs, _, err := generate(task, opt)
	return chunks, fs, err
}

// docVariants restates every fact of an entity (all attributes, not only the questioned ones)
// as its flashcard answer sentence, in a shuffled order, n times.
func docVariants(seed int64, ents []entity, n int) map[string][]string {
	rng := rand.New(rand.NewPCG(uint64(seed), 0xd0c5))
	out := map[string][]string{}
	for _, e := range ents {
		for v := 0; v < n; v++ {
			s := make([]string, len(e.attrs))
			for i, a := range e.attrs {
				s[i] = a.answer
			}
			rng.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
			text := strings.Join(s, " ")
			if e.chunk.Title != "" {
				text = e.chunk.Title + "\n\n" + text
			}
			out[e.chunk.ID] = append(out[e.chunk.ID], text)
		}
	}
	return out
}

func generate(task string, opt Options) ([]curriculum.Chunk, []curriculum.Fact, map[string][]string, error) {
	opt.defaults()
	// Each task has its own stream, so changing one task's size leaves the others unchanged.
	var salt uint64
	for _, c := range task {
		salt = salt*131 + uint64(c)
	}
	rng := rand.New(rand.NewPCG(uint64(opt.Seed), salt))
	nm := newNamer(rng, knowledgeOnsets)
	if opt.Practice {
		nm.first = practiceOnsets
	}
	var ents []entity
	switch task {
	case "products":
		ents = products(rng, opt.Chunks, nm)
	case "research":
		ents = papers(rng, opt.Chunks, nm)
	case "code":
		ents = codeFiles(rng, opt.Chunks, nm)
	default:
		return nil, nil, nil, fmt.Errorf("synthetic: unknown task %q (want one of %v)", task, Tasks)
	}
	chunks, fs := facts(rng, ents, opt.FactsPerChunk, opt.Paraphrases)
	return chunks, fs, docVariants(opt.Seed, ents, opt.DocVariants), nil
}

// Build generates a task's knowledge base and assembles it into a curriculum with a test.
func Build(task string, opt Options) (*curriculum.Curriculum, error) {
	opt.defaults()
	chunks, fs, variants, err := generate(task, opt)
	if err != nil {
		return nil, err
	}
	ao := opt.Assemble
	ao.Seed = opt.Seed
	c, err := curriculum.Assemble(chunks, fs, ao)
	if err != nil {
		return nil, err
	}
	if opt.DocVariants > 0 {
		var train []curriculum.Item
		for _, it := range c.Train {
			train = append(train, it)
			if it.Type == curriculum.TypeDoc {
				for _, v := range variants[it.ChunkID] {
					train = append(train, curriculum.Item{Type: curriculum.TypeDoc, ChunkID: it.ChunkID, Text: v})
				}
			}
		}
		c.Train = train
		c.Manifest.Counts = c.ComputeCounts()
	}
	c.Manifest.Source = "synthetic"
	c.Manifest.Teacher = "synthetic"
	c.Manifest.Inputs = []string{"synthetic:" + task}
	c.Manifest.Options["task"] = task
	c.Manifest.Options["chunks"] = fmt.Sprint(opt.Chunks)
	c.Manifest.Options["facts_per_chunk"] = fmt.Sprint(opt.FactsPerChunk)
	c.Manifest.Options["doc_variants"] = fmt.Sprint(opt.DocVariants)
	c.Manifest.Options["paraphrases"] = fmt.Sprint(opt.Paraphrases)
	return c, nil
}
