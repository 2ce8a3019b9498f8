package curriculum

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// Fact is one piece of knowledge a teacher extracted from a chunk: a flashcard (with optional
// paraphrases) and the material for one multiple-choice test question about the same fact.
type Fact struct {
	// ChunkID is the chunk stating the fact.
	ChunkID string
	// Question and Answer form the flashcard.
	Question, Answer string
	// Paraphrases are extra rephrasings of the flashcard (augmentation); trained like the flashcard.
	Paraphrases []QA
	// TestQuestion is the multiple-choice stem; empty means "use Question". Teachers word it
	// differently from the flashcard where they can, so "seen" measures recall of the fact rather
	// than of a string.
	TestQuestion string
	// TestAnswer is the correct choice text (short form); empty means "use Answer".
	TestAnswer string
	// Distractors are wrong choices of the same type as the answer (same field, same entity type).
	Distractors []string
}

// QA is a question and its answer.
type QA struct {
	Question string `json:"question"`
	Answer   string `json:"answer"`
}

// AssembleOptions control how chunks and facts become a curriculum.
type AssembleOptions struct {
	// Seed drives the split and the letter shuffle.
	Seed int64
	// DocumentOnlyFraction of the chunks (by document) get no flashcards: their facts are tested
	// as "document_only" questions. Default 0.3 when zero; negative means none.
	DocumentOnlyFraction float64
	// ValidationFraction of the chunks (by document) give their flashcards to the validation set
	// instead of training (their documents are still trained on; their facts are not tested).
	// Default 0.1 when zero; negative means none.
	ValidationFraction float64
	// Choices per question (default 4). Facts with too few distinct distractors are dropped.
	Choices int
}

func (o *AssembleOptions) defaults() {
	if o.DocumentOnlyFraction == 0 {
		o.DocumentOnlyFraction = 0.3
	}
	if o.DocumentOnlyFraction < 0 {
		o.DocumentOnlyFraction = 0
	}
	if o.ValidationFraction == 0 {
		o.ValidationFraction = 0.1
	}
	if o.ValidationFraction < 0 {
		o.ValidationFraction = 0
	}
	if o.Choices == 0 {
		o.Choices = 4
	}
}

// Chunk roles decided by SplitByDocument.
const (
	RoleSeen         = "seen"
	RoleDocumentOnly = "document_only"
	RoleValidation   = "validation"
)

// SplitByDocument assigns each chunk ID a role, seeded and reproducible: a shuffled order puts
// round(valFrac*n) chunks in validation, round(docOnlyFrac*n) in document-only, the rest in seen.
// Whole documents move together, so a document-only fact never has a flashcard sibling that gives
// it away.
func SplitByDocument(ids []string, seed int64, docOnlyFrac, valFrac float64) map[string]string {
	order := make([]string, len(ids))
	copy(order, ids)
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5eed5))
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	n := len(order)
	nVal := int(valFrac*float64(n) + 0.5)
	nDoc := int(docOnlyFrac*float64(n) + 0.5)
	if nVal+nDoc > n {
		nDoc = n - nVal
	}
	roles := make(map[string]string, n)
	for i, id := range order {
		switch {
		case i < nVal:
			roles[id] = RoleValidation
		case i < nVal+nDoc:
			roles[id] = RoleDocumentOnly
		default:
			roles[id] = RoleSeen
		}
	}
	return roles
}

// DocText is the text of a "doc" item for a chunk: the title on its own line before the text
// (as the paper's product documents were title + description), unless the text already starts
// with it.
func DocText(ch Chunk) string {
	t := strings.TrimSpace(ch.Title)
	if t == "" || strings.HasPrefix(strings.TrimSpace(ch.Text), t) {
		return ch.Text
	}
	return t + "\n\n" + ch.Text
}

// Assemble builds a curriculum from chunks and the facts a teacher extracted. Every chunk becomes
// a "doc" training item (the knowledge must be in training); facts of "seen" chunks become
// flashcards right after their document and "seen" test questions; facts of document-only chunks
// become "document_only" test questions only; facts of validation chunks become validation
// flashcards. Answer letters are balanced by a seeded shuffle (BalanceLetters). The returned
// manifest has Seed and Options set; the caller fills in Source, Teacher and Skipped.
func Assemble(chunks []Chunk, facts []Fact, opt AssembleOptions) (*Curriculum, error) {
	opt.defaults()
	byChunk := map[string][]Fact{}
	known := map[string]bool{}
	for _, ch := range chunks {
		known[ch.ID] = true
	}
	for _, f := range facts {
		if !known[f.ChunkID] {
			return nil, fmt.Errorf("fact %q refers to unknown chunk %q", f.Question, f.ChunkID)
		}
		byChunk[f.ChunkID] = append(byChunk[f.ChunkID], f)
	}
	var withFacts []string
	for _, ch := range chunks {
		if len(byChunk[ch.ID]) > 0 {
			withFacts = append(withFacts, ch.ID)
		}
	}
	roles := SplitByDocument(withFacts, opt.Seed, opt.DocumentOnlyFraction, opt.ValidationFraction)
	c := &Curriculum{Manifest: Manifest{Seed: opt.Seed, Options: map[string]string{
		"document_only_fraction": fmt.Sprint(opt.DocumentOnlyFraction),
		"validation_fraction":    fmt.Sprint(opt.ValidationFraction),
		"choices":                fmt.Sprint(opt.Choices),
	}}}
	c.Chunks = append(c.Chunks, chunks...)
	dropped := 0
	for _, ch := range chunks {
		c.Train = append(c.Train, Item{Type: TypeDoc, ChunkID: ch.ID, Text: DocText(ch)})
		role := roles[ch.ID]
		for _, f := range byChunk[ch.ID] {
			cards := append([]QA{{f.Question, f.Answer}}, f.Paraphrases...)
			for i, qa := range cards {
				it := Item{Type: TypeQnA, ChunkID: ch.ID, Question: qa.Question, Answer: qa.Answer, Paraphrase: i}
				switch role {
				case RoleSeen:
					c.Train = append(c.Train, it)
				case RoleValidation:
					c.Validation = append(c.Validation, it)
				}
			}
			if role == RoleValidation {
				continue
			}
			q, ok := testQuestion(f, opt.Choices)
			if !ok {
				dropped++
				continue
			}
			q.Kind = KindSeen
			if role == RoleDocumentOnly {
				q.Kind = KindDocumentOnly
			}
			q.ID = fmt.Sprintf("q%05d", len(c.Test))
			c.Test = append(c.Test, q)
		}
	}
	if dropped > 0 {
		c.Manifest.Notes = append(c.Manifest.Notes, fmt.Sprintf("%d facts had fewer than %d distinct choices and gave no test question", dropped, opt.Choices))
	}
	BalanceLetters(c.Test, opt.Seed)
	c.Manifest.Counts = c.ComputeCounts()
	return c, nil
}

// testQuestion makes a question from a fact: the answer plus the first distinct distractors.
func testQuestion(f Fact, k int) (Question, bool) {
	stem := f.TestQuestion
	if stem == "" {
		stem = f.Question
	}
	ans := f.TestAnswer
	if ans == "" {
		ans = f.Answer
	}
	choices := []string{ans}
	seen := map[string]bool{norm(ans): true}
	for _, d := range f.Distractors {
		if len(choices) == k {
			break
		}
		if n := norm(d); n != "" && !seen[n] {
			seen[n] = true
			choices = append(choices, d)
		}
	}
	if len(choices) < k {
		return Question{}, false
	}
	return Question{Question: stem, Choices: choices, Answer: 0, ChunkID: f.ChunkID}, true
}

func norm(s string) string { return strings.ToLower(strings.Join(strings.Fields(s), " ")) }

// BalanceLetters permutes the choices of every question so the correct letters are as balanced
// as possible (counts differ by at most one per choice count) and their order is a seeded
// shuffle; the other choices are shuffled too. Always answering one letter then scores chance.
func BalanceLetters(qs []Question, seed int64) {
	rng := rand.New(rand.NewPCG(uint64(seed), 0xba1a))
	// Group by number of choices so each group is balanced on its own letters.
	groups := map[int][]int{}
	for i := range qs {
		groups[len(qs[i].Choices)] = append(groups[len(qs[i].Choices)], i)
	}
	for k := 2; k <= 26; k++ {
		idx := groups[k]
		if len(idx) == 0 {
			continue
		}
		targets := make([]int, len(idx))
		for i := range targets {
			targets[i] = i % k
		}
		rng.Shuffle(len(targets), func(i, j int) { targets[i], targets[j] = targets[j], targets[i] })
		for n, qi := range idx {
			q := &qs[qi]
			correct := q.Choices[q.Answer]
			var others []string
			for i, c := range q.Choices {
				if i != q.Answer {
					others = append(others, c)
				}
			}
			rng.Shuffle(len(others), func(i, j int) { others[i], others[j] = others[j], others[i] })
			out := make([]string, 0, k)
			out = append(out, others[:targets[n]]...)
			out = append(out, correct)
			out = append(out, others[targets[n]:]...)
			q.Choices, q.Answer = out, targets[n]
		}
	}
}
