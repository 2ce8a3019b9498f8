package synthetic

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/perpetual-ml/perpetual/curriculum"
)

// Alpaca is an instruction-tuning record in the Alpaca format; Input is the optional context
// (a passage for reading comprehension), empty for closed-book questions.
type Alpaca struct {
	Instruction string `json:"instruction"`
	Input       string `json:"input"`
	Output      string `json:"output"`
}

// ReadingQuestion is a multiple-choice question to be answered from the passage given with it.
type ReadingQuestion struct {
	Passage  string              `json:"passage"`
	Question curriculum.Question `json:"question"`
}

// World is general pre-training and instruction data about a fictional land, separate from the
// knowledge to inject: documents to pre-train on, closed-book and reading-comprehension
// instruction pairs, and multiple-choice questions in both forms.
type World struct {
	// Docs are plain-text documents (one town each, plus river overviews).
	Docs []string
	// Pairs are instruction pairs: closed-book questions about the world (Input empty) and
	// reading-comprehension questions about fresh passages (Input holds the passage).
	Pairs []Alpaca
	// Questions are closed-book multiple-choice questions about the world, letters balanced.
	Questions []curriculum.Question
	// Reading are multiple-choice questions answerable only from their passage (practice for RAG).
	Reading []ReadingQuestion
}

// WorldOptions size the world.
type WorldOptions struct {
	Seed int64
	// Towns is the number of towns described (default 80).
	Towns int
	// ReadingPassages is the number of fresh passages for reading comprehension (default 200).
	ReadingPassages int
}

var (
	crafts   = []string{"pottery", "weaving", "glassblowing", "cheese making", "boat building", "bell casting", "paper making", "dyeing", "rope making", "clock making"}
	months   = []string{"January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"}
	animals  = []string{"herons", "otters", "goats", "bees", "ravens", "foxes", "eels", "deer"}
	terrains = []string{"hills", "marshes", "plains", "forest", "cliffs", "valley"}
)

type town struct {
	name, river, craft, month, animal, terrain, neighbour string
	population, founded                                   int
}

func (t town) facts() []attribute {
	return []attribute{
		{"river", t.river, fmt.Sprintf("%s lies on the river %s.", t.name, t.river),
			fmt.Sprintf("Which river flows through %s?", t.name), fmt.Sprintf("The river %s flows through %s.", t.river, t.name), "", nil},
		{"craft", t.craft, fmt.Sprintf("The people of %s are known for %s.", t.name, t.craft),
			fmt.Sprintf("What craft is %s known for?", t.name), fmt.Sprintf("%s is known for %s.", t.name, t.craft), "", nil},
		{"month", t.month, fmt.Sprintf("Its harvest festival is held every %s.", t.month),
			fmt.Sprintf("In which month is the harvest festival of %s?", t.name), fmt.Sprintf("The festival of %s is held in %s.", t.name, t.month), "", nil},
		{"animal", t.animal, fmt.Sprintf("Many %s live around the town.", t.animal),
			fmt.Sprintf("Which animals are common around %s?", t.name), fmt.Sprintf("Many %s live around %s.", t.animal, t.name), "", nil},
		{"terrain", t.terrain, fmt.Sprintf("The town is surrounded by %s.", t.terrain),
			fmt.Sprintf("What surrounds %s?", t.name), fmt.Sprintf("%s is surrounded by %s.", t.name, t.terrain), "", nil},
		{"population", thousands(t.population), fmt.Sprintf("About %s people live there.", thousands(t.population)),
			fmt.Sprintf("How many people live in %s?", t.name), fmt.Sprintf("About %s people live in %s.", thousands(t.population), t.name), "", nil},
		{"founded", fmt.Sprint(t.founded), fmt.Sprintf("It was founded in the year %d.", t.founded),
			fmt.Sprintf("When was %s founded?", t.name), fmt.Sprintf("%s was founded in %d.", t.name, t.founded), "", nil},
		{"neighbour", t.neighbour, fmt.Sprintf("Its nearest neighbour is %s.", t.neighbour),
			fmt.Sprintf("What is the nearest town to %s?", t.name), fmt.Sprintf("The nearest town to %s is %s.", t.name, t.neighbour), "", nil},
	}
}

func newTowns(rng *rand.Rand, nm *namer, n int, rivers []string) []town {
	ts := make([]town, n)
	for i := range ts {
		ts[i] = town{name: nm.word(), river: pick(rng, rivers), craft: pick(rng, crafts), month: pick(rng, months),
			animal: pick(rng, animals), terrain: pick(rng, terrains), population: 100 * (5 + rng.IntN(400)), founded: 1100 + rng.IntN(800)}
	}
	for i := range ts {
		ts[i].neighbour = ts[(i+1+rng.IntN(n-1))%n].name
	}
	return ts
}

func townText(rng *rand.Rand, t town) string {
	fs := t.facts()
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = f.sentence
	}
	rng.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	return fmt.Sprintf("%s is a town in the land of Belmor. %s", t.name, strings.Join(s, " "))
}

// mcFrom builds a multiple-choice question for attribute a of town t, distractors from the same
// field of the other towns.
func mcFrom(rng *rand.Rand, id string, a attribute, pool []string) (curriculum.Question, bool) {
	cands := append([]string(nil), pool...)
	rng.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
	d := distinct(3, a.value, func() string {
		if len(cands) == 0 {
			return a.value
		}
		v := cands[0]
		cands = cands[1:]
		return v
	})
	if len(d) < 3 {
		return curriculum.Question{}, false
	}
	return curriculum.Question{ID: id, Question: a.question, Choices: append([]string{a.value}, d...), Kind: curriculum.KindUnknown}, true
}

// NewWorld generates the world; the same options always give the same world.
func NewWorld(opt WorldOptions) *World {
	if opt.Towns < 4 {
		opt.Towns = 80
	}
	if opt.ReadingPassages <= 0 {
		opt.ReadingPassages = 200
	}
	rng := rand.New(rand.NewPCG(uint64(opt.Seed), 0x3091d))
	nm := newNamer(rng, worldOnsets)
	var rivers []string
	for i := 0; i < 8; i++ {
		rivers = append(rivers, nm.word())
	}
	towns := newTowns(rng, nm, opt.Towns, rivers)
	w := &World{}
	pools := map[string][]string{}
	for _, t := range towns {
		w.Docs = append(w.Docs, townText(rng, t))
		for _, a := range t.facts() {
			pools[a.field] = append(pools[a.field], a.value)
		}
	}
	for _, r := range rivers {
		var on []string
		for _, t := range towns {
			if t.river == r {
				on = append(on, t.name)
			}
		}
		if len(on) > 0 {
			w.Docs = append(w.Docs, fmt.Sprintf("The river %s runs through Belmor. Towns on its banks include %s.", r, strings.Join(on, ", ")))
		}
	}
	for _, t := range towns {
		for _, a := range t.facts() {
			w.Pairs = append(w.Pairs, Alpaca{Instruction: a.question, Output: a.answer})
			if q, ok := mcFrom(rng, fmt.Sprintf("world/q%05d", len(w.Questions)), a, pools[a.field]); ok {
				w.Questions = append(w.Questions, q)
			}
		}
	}
	// Reading comprehension: fresh towns that appear nowhere else, so only the passage can answer.
	fresh := newTowns(rng, nm, opt.ReadingPassages, rivers)
	freshPools := map[string][]string{}
	for _, t := range fresh {
		for _, a := range t.facts() {
			freshPools[a.field] = append(freshPools[a.field], a.value)
		}
	}
	for i, t := range fresh {
		passage := townText(rng, t)
		fs := t.facts()
		a := fs[rng.IntN(len(fs))]
		w.Pairs = append(w.Pairs, Alpaca{Instruction: a.question, Input: passage, Output: a.answer})
		if q, ok := mcFrom(rng, fmt.Sprintf("world/r%05d", i), a, freshPools[a.field]); ok {
			w.Reading = append(w.Reading, ReadingQuestion{Passage: passage, Question: q})
		}
	}
	rng.Shuffle(len(w.Pairs), func(i, j int) { w.Pairs[i], w.Pairs[j] = w.Pairs[j], w.Pairs[i] })
	curriculum.BalanceLetters(w.Questions, opt.Seed)
	rq := make([]curriculum.Question, len(w.Reading))
	for i := range w.Reading {
		rq[i] = w.Reading[i].Question
	}
	curriculum.BalanceLetters(rq, opt.Seed+1)
	for i := range w.Reading {
		w.Reading[i].Question = rq[i]
	}
	return w
}

// World file names written by WriteWorld.
const (
	WorldDocsFile      = "docs.jsonl"      // {"text": ...} per line
	WorldPairsFile     = "alpaca.jsonl"    // Alpaca records
	WorldQuestionsFile = "questions.jsonl" // curriculum.Question per line (closed book)
	WorldReadingFile   = "reading.jsonl"   // ReadingQuestion per line
)

// WriteWorld writes the world as JSON Lines files into dir (created if needed).
func WriteWorld(dir string, w *World) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	write := func(name string, n int, rec func(i int) any) error {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		for i := 0; i < n; i++ {
			if err := enc.Encode(rec(i)); err != nil {
				return err
			}
		}
		tmp := filepath.Join(dir, "."+name+".tmp")
		if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil {
			return err
		}
		return os.Rename(tmp, filepath.Join(dir, name))
	}
	if err := write(WorldDocsFile, len(w.Docs), func(i int) any { return map[string]string{"text": w.Docs[i]} }); err != nil {
		return err
	}
	if err := write(WorldPairsFile, len(w.Pairs), func(i int) any { return w.Pairs[i] }); err != nil {
		return err
	}
	if err := write(WorldQuestionsFile, len(w.Questions), func(i int) any { return w.Questions[i] }); err != nil {
		return err
	}
	return write(WorldReadingFile, len(w.Reading), func(i int) any { return w.Reading[i] })
}
