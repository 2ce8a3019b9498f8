// Package curriculum defines the on-disk format every other part of Perpetual reads: a knowledge
// base cut into chunks, a training curriculum of document chunks interleaved with flashcards, a
// validation set, and a multiple-choice test whose questions say whether their fact was also
// given as a flashcard ("seen") or only appeared in a document ("document_only").
//
// A curriculum is a folder of JSON Lines files plus manifest.json:
//
//	chunks.jsonl      one Chunk per line (what RAG indexes)
//	train.jsonl       one Item per line, in training order ("doc" chunk, then its "qna" flashcards)
//	validation.jsonl  one Item per line (flashcards never trained on, for validation loss)
//	test.jsonl        one Question per line (choices stored WITHOUT letter prefixes)
//	manifest.json     Manifest: source, teacher, seed, counts, SHA-256 of every file, skipped inputs
//
// JSON Lines rather than one big JSON array so a reader can point at the failing line, files can
// be streamed and diffed, and a partly written file is detectable. Write is atomic (temporary
// folder, then rename), so a reader never sees a half-written curriculum.
package curriculum

import (
	"fmt"
	"strings"
)

// Item types.
const (
	// TypeDoc is a raw document chunk given to the model as plain text.
	TypeDoc = "doc"
	// TypeQnA is a flashcard: a question and its answer.
	TypeQnA = "qna"
)

// Question kinds.
const (
	// KindSeen marks a test question whose fact was also given as a training flashcard.
	KindSeen = "seen"
	// KindDocumentOnly marks a test question whose fact appears only in a training document.
	KindDocumentOnly = "document_only"
	// KindUnknown marks imported questions whose provenance is not known (the original Perpetual files).
	KindUnknown = "unknown"
)

// Chunk is a piece of the knowledge base; RAG indexes these and "doc" items quote them.
type Chunk struct {
	// ID is unique within a curriculum, e.g. "products/0003" or "cobra/command.go#2".
	ID string `json:"id"`
	// Source names where the chunk came from (a file path, a record key, a generator).
	Source string `json:"source"`
	// Title is a human title (product name, paper title, file name); may be empty.
	Title string `json:"title,omitempty"`
	// Text is the chunk content.
	Text string `json:"text"`
}

// Item is one training example.
type Item struct {
	// Type is TypeDoc (raw text chunk) or TypeQnA (flashcard).
	Type string `json:"type"`
	// ChunkID is the chunk the item comes from ("" if unknown).
	ChunkID string `json:"chunk_id,omitempty"`
	// Text is, for doc items, the chunk text (with the title included, as the paper did for products).
	Text string `json:"text,omitempty"`
	// Question is the flashcard question (qna items).
	Question string `json:"question,omitempty"`
	// Answer is the flashcard answer (qna items).
	Answer string `json:"answer,omitempty"`
	// Paraphrase numbers, from 1, the flashcards that rephrase a fact's first flashcard (an
	// augmentation); it is 0 for documents and first flashcards. Curriculum.LimitParaphrases
	// keeps the first n of each fact.
	Paraphrase int `json:"paraphrase,omitempty"`
}

// Question is one multiple-choice test item.
type Question struct {
	// ID is unique within the test.
	ID string `json:"id"`
	// Question is the question text.
	Question string `json:"question"`
	// Choices are the option texts WITHOUT letter prefixes (usually 4).
	Choices []string `json:"choices"`
	// Answer is the index of the correct choice.
	Answer int `json:"answer"`
	// Kind is KindSeen, KindDocumentOnly or KindUnknown.
	Kind string `json:"kind"`
	// ChunkID is the chunk the question was generated from ("" if unknown).
	ChunkID string `json:"chunk_id,omitempty"`
}

// Curriculum is a whole curriculum in memory.
type Curriculum struct {
	Manifest   Manifest
	Chunks     []Chunk
	Train      []Item
	Validation []Item
	Test       []Question
}

// Letter returns "A", "B", ... for a choice index.
func Letter(i int) string {
	if i < 0 || i >= 26 {
		return "?"
	}
	return string(rune('A' + i))
}

// Validate checks an item; the error says what is wrong (callers add the file and line).
func (it *Item) Validate() error {
	switch it.Type {
	case TypeDoc:
		if strings.TrimSpace(it.Text) == "" {
			return fmt.Errorf("doc item has empty text")
		}
	case TypeQnA:
		if strings.TrimSpace(it.Question) == "" {
			return fmt.Errorf("qna item has empty question")
		}
		if strings.TrimSpace(it.Answer) == "" {
			return fmt.Errorf("qna item has empty answer")
		}
	default:
		return fmt.Errorf("item type %q is neither %q nor %q", it.Type, TypeDoc, TypeQnA)
	}
	if it.Paraphrase < 0 {
		return fmt.Errorf("item has paraphrase number %d; it must be 0 (none) or more", it.Paraphrase)
	}
	if it.Paraphrase > 0 && it.Type != TypeQnA {
		return fmt.Errorf("%s item has paraphrase number %d; only %s items rephrase a flashcard", it.Type, it.Paraphrase, TypeQnA)
	}
	return nil
}

// LimitParaphrases is c with at most n paraphrase flashcards per fact in Train and Validation
// (those numbered 1 to n), so one curriculum serves models trained with and without the
// augmentation. Chunks, Test and Manifest are shared with c, not copied.
func (c *Curriculum) LimitParaphrases(n int) *Curriculum {
	keep := func(items []Item) []Item {
		var out []Item
		for _, it := range items {
			if it.Paraphrase <= n {
				out = append(out, it)
			}
		}
		return out
	}
	out := *c
	out.Train, out.Validation = keep(c.Train), keep(c.Validation)
	return &out
}

// Validate checks a question: at least two non-empty choices, the answer in range and a
// known kind.
func (q *Question) Validate() error {
	if strings.TrimSpace(q.Question) == "" {
		return fmt.Errorf("question %q has empty text", q.ID)
	}
	if len(q.Choices) < 2 {
		return fmt.Errorf("question %q has %d choices, need at least 2", q.ID, len(q.Choices))
	}
	for i, c := range q.Choices {
		if strings.TrimSpace(c) == "" {
			return fmt.Errorf("question %q: choice %s is empty", q.ID, Letter(i))
		}
	}
	if q.Answer < 0 || q.Answer >= len(q.Choices) {
		return fmt.Errorf("question %q: answer index %d out of range [0,%d)", q.ID, q.Answer, len(q.Choices))
	}
	switch q.Kind {
	case KindSeen, KindDocumentOnly, KindUnknown:
	default:
		return fmt.Errorf("question %q: kind %q is not one of %q, %q, %q", q.ID, q.Kind, KindSeen, KindDocumentOnly, KindUnknown)
	}
	return nil
}

// ChunkByID indexes the chunks by ID.
func (c *Curriculum) ChunkByID() map[string]*Chunk {
	m := make(map[string]*Chunk, len(c.Chunks))
	for i := range c.Chunks {
		m[c.Chunks[i].ID] = &c.Chunks[i]
	}
	return m
}

// Validate checks every record and cross-references: unique chunk and question IDs, and every
// non-empty ChunkID naming a chunk (when the curriculum has chunks at all).
func (c *Curriculum) Validate() error {
	ids := make(map[string]bool, len(c.Chunks))
	for i, ch := range c.Chunks {
		if ch.ID == "" {
			return fmt.Errorf("chunk %d has an empty id", i)
		}
		if ids[ch.ID] {
			return fmt.Errorf("chunk id %q is duplicated", ch.ID)
		}
		if strings.TrimSpace(ch.Text) == "" {
			return fmt.Errorf("chunk %q has empty text", ch.ID)
		}
		ids[ch.ID] = true
	}
	checkRef := func(where, id string) error {
		if id != "" && len(ids) > 0 && !ids[id] {
			return fmt.Errorf("%s refers to unknown chunk %q", where, id)
		}
		return nil
	}
	for name, items := range map[string][]Item{"train": c.Train, "validation": c.Validation} {
		for i := range items {
			if err := items[i].Validate(); err != nil {
				return fmt.Errorf("%s item %d: %w", name, i, err)
			}
			if err := checkRef(fmt.Sprintf("%s item %d", name, i), items[i].ChunkID); err != nil {
				return err
			}
		}
	}
	qids := make(map[string]bool, len(c.Test))
	for i := range c.Test {
		q := &c.Test[i]
		if q.ID == "" {
			return fmt.Errorf("test question %d has an empty id", i)
		}
		if qids[q.ID] {
			return fmt.Errorf("test question id %q is duplicated", q.ID)
		}
		qids[q.ID] = true
		if err := q.Validate(); err != nil {
			return fmt.Errorf("test question %d: %w", i, err)
		}
		if err := checkRef(fmt.Sprintf("test question %q", q.ID), q.ChunkID); err != nil {
			return err
		}
	}
	return nil
}
