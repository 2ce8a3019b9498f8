package zoo

import (
	"fmt"
	"math/rand/v2"
	"sort"

	"github.com/perpetual-ml/perpetual/curriculum"
	"github.com/perpetual-ml/perpetual/curriculum/synthetic"
	"github.com/perpetual-ml/perpetual/evaluation"
	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/models/prompt"
	"github.com/perpetual-ml/perpetual/models/tokenizer"
	"github.com/perpetual-ml/perpetual/rag"
	"github.com/perpetual-ml/perpetual/training"
)

// Prober scores the learning curve of recipe v3: held-out knowledge bases (never trained on,
// one per task) asked with the evaluation's own task definitions, chat template and BM25 top-2
// retrieval, as `make results` asks the default suite's (reading), the same questions without
// passages (closed book: should stay at chance), and the practice knowledge bases' test
// questions closed book (facts taught in pre-training: the fine-tuned condition's skill).
type Prober struct {
	tasks    map[string]*evaluation.Task // by formulation
	enc      evaluation.Encoder
	held     []probeSet
	practice []curriculum.Question
	// drills are held-out copy and recall drills (by kind), scored by argmax accuracy on their
	// targets: where the in-context lookup mechanism shows first.
	drills map[string][]training.Example
}

type probeSet struct {
	questions []curriculum.Question
	index     *rag.BM25
}

// probeReach and probeFar bound the far drills: lookups probeFar to probeReach tokens back.
const (
	probeReach = 400
	probeFar   = 200
)

// probeK is the number of passages retrieved for a probe question: the default suite's k.
const probeK = 2

// NewProber builds the probe sets: n questions per task from held-out knowledge bases (seeds
// practice.seed + probeSeedBase + task, 30 entities x 4 facts as the default suite) and n per
// task of the practice bases' tests.
func NewProber(tok tokenizer.Tokenizer, tpl prompt.Template, useBOS bool, maxLength int, practiceSeed int64, practice []*curriculum.Curriculum, n int) (*Prober, error) {
	p := &Prober{tasks: map[string]*evaluation.Task{}}
	for _, f := range []string{"cloze", "letters"} {
		t, err := evaluation.DefaultTask(f)
		if err != nil {
			return nil, err
		}
		t.ChatTemplate = tpl.ChatTemplate()
		p.tasks[f] = t
	}
	sp := tok.Special()
	prefix := sp.BOS
	if prefix < 0 {
		prefix = sp.EOS
	}
	p.enc = evaluation.Encoder{Tokenizer: tok, AddBOS: useBOS, BOS: prefix, MaxLength: maxLength}
	for i, task := range synthetic.Tasks {
		cur, err := synthetic.Build(task, synthetic.Options{Seed: practiceSeed + probeSeedBase + int64(i), Chunks: 30, FactsPerChunk: 4, Practice: true})
		if err != nil {
			return nil, fmt.Errorf("zoo: probe knowledge base %s: %w", task, err)
		}
		idx, err := rag.NewBM25(rag.BM25Params{})
		if err != nil {
			return nil, err
		}
		if err := idx.Add(cur.Chunks...); err != nil {
			return nil, err
		}
		p.held = append(p.held, probeSet{questions: spread(cur.Test, n), index: idx})
	}
	for _, cur := range practice {
		p.practice = append(p.practice, spread(cur.Test, n)...)
	}
	vocab := drillVocab(tok)
	rng := rand.New(rand.NewPCG(uint64(practiceSeed+probeSeedBase), 0xd1))
	p.drills = map[string][]training.Example{}
	for range 32 {
		p.drills["copy_drill"] = append(p.drills["copy_drill"], copyDrill(vocab, rng))
		p.drills["recall_drill"] = append(p.drills["recall_drill"], recallDrill(vocab, rng))
	}
	// Far drills: the same lookups 200 to ~400 tokens back, where a RAG passage sits from its
	// question (the reach short drills do not teach).
	// Models with a shorter window than the far drills get none.
	for maxLength >= probeReach+longDrillSlack && len(p.drills["copy_far"]) < 32 {
		if ex := longCopyDrill(vocab, probeReach, rng); len(ex.IDs) >= probeFar {
			p.drills["copy_far"] = append(p.drills["copy_far"], ex)
		}
	}
	for maxLength >= probeReach+longDrillSlack && len(p.drills["recall_far"]) < 32 {
		if ex := longRecallDrill(vocab, probeReach, rng); len(ex.IDs) >= probeFar {
			p.drills["recall_far"] = append(p.drills["recall_far"], ex)
		}
	}
	// Letter drills: the letters formulation's step beyond reading (drawn last, so the other
	// probes' drills are those of runs made before it).
	layout := newLetterLayout(tok)
	for range 32 {
		p.drills["letter_drill"] = append(p.drills["letter_drill"], letterDrill(vocab, layout, rng))
	}
	// Keyed letter drills with four options (drawn after the others, for the same reason).
	for range 32 {
		p.drills["letter_keyed"] = append(p.drills["letter_keyed"], keyedLetterDrill(vocab, layout, 4, 4, rng))
	}
	return p, nil
}

// drillAccuracy is the share of drill targets that are the model's most likely next token.
func drillAccuracy(m *lm.Model, drills []training.Example) (float64, error) {
	seqs := make([][]int32, len(drills))
	for i, d := range drills {
		seqs[i] = d.IDs
	}
	logits, err := m.Logits(seqs)
	if err != nil {
		return 0, err
	}
	hit, n := 0, 0
	for s, d := range drills {
		for i := 1; i < len(d.IDs); i++ {
			if !d.Train[i] {
				continue
			}
			row := logits[s][i-1]
			best := 0
			for j, x := range row {
				if x > row[best] {
					best = j
				}
			}
			n++
			if int32(best) == d.IDs[i] {
				hit++
			}
		}
	}
	return float64(hit) / float64(max(1, n)), nil
}

// spread takes n questions evenly across the test (every chunk and kind represented), in a
// fixed seeded order.
func spread(qs []curriculum.Question, n int) []curriculum.Question {
	if n <= 0 || n >= len(qs) {
		return qs
	}
	idx := rand.New(rand.NewPCG(uint64(len(qs)), 0x9e0b)).Perm(len(qs))[:n]
	sort.Ints(idx)
	out := make([]curriculum.Question, n)
	for i, j := range idx {
		out[i] = qs[j]
	}
	return out
}

// bm25Retriever adapts a BM25 index to the evaluation's Retriever.
type bm25Retriever struct{ x *rag.BM25 }

func (r bm25Retriever) Retrieve(query string, k int) ([]evaluation.Passage, error) {
	hits, err := r.x.Retrieve(query, k)
	if err != nil {
		return nil, err
	}
	out := make([]evaluation.Passage, len(hits))
	for i, h := range hits {
		out[i] = evaluation.Passage{ID: h.ChunkID, Text: h.Text, Score: h.Score}
	}
	return out, nil
}

// Probe scores m: read_cloze / read_letters (held-out bases, top-2 BM25 passages in the prompt),
// closed_cloze (the same questions without passages), book_cloze (practice facts, closed book)
// and copy_drill / recall_drill / copy_far / recall_far / letter_drill / letter_keyed (argmax
// accuracy on held-out drills, within ~70 tokens and 200-400 tokens back; letter drills answer
// the letter of the option found in the context, keyed ones that of the queried key's value).
// Accuracies in [0, 1].
func (p *Prober) Probe(_ int, m *lm.Model) (map[string]float64, error) {
	acc := func(qs []curriculum.Question, formulation string, retr evaluation.Retriever) (float64, int, error) {
		run, err := evaluation.Evaluate(qs, evaluation.Options{Task: p.tasks[formulation], Encoder: p.enc, Scorer: m,
			Retriever: retr, K: probeK, BatchSize: 16})
		if err != nil {
			return 0, 0, err
		}
		sum := 0.0
		for _, s := range run.Samples {
			sum += s.Acc
		}
		return sum, len(run.Samples), nil
	}
	out := map[string]float64{}
	for _, c := range []struct {
		name, formulation string
		rag               bool
	}{{"read_cloze", "cloze", true}, {"read_letters", "letters", true}, {"closed_cloze", "cloze", false}} {
		var sum float64
		var n int
		for _, set := range p.held {
			var retr evaluation.Retriever
			if c.rag {
				retr = bm25Retriever{set.index}
			}
			s, k, err := acc(set.questions, c.formulation, retr)
			if err != nil {
				return nil, err
			}
			sum, n = sum+s, n+k
		}
		out[c.name] = sum / float64(max(1, n))
	}
	if len(p.practice) > 0 {
		s, k, err := acc(p.practice, "cloze", nil)
		if err != nil {
			return nil, err
		}
		out["book_cloze"] = s / float64(max(1, k))
	}
	for name, drills := range p.drills {
		a, err := drillAccuracy(m, drills)
		if err != nil {
			return nil, err
		}
		out[name] = a
	}
	return out, nil
}
