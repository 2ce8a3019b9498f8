package training

import (
	"math"
	"slices"

	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/models/prompt"
	"github.com/perpetual-ml/perpetual/models/tokenizer"
)

// RetentionScores measure assistant behaviour on held-out instruction data.
type RetentionScores struct {
	// Perplexity of the reference responses (EOS included) after the template.
	Perplexity float64 `json:"perplexity"`
	// StopRate is the fraction of prompts whose greedy continuation ends with EOS within
	// MaxNewTokens (the model answers and stops).
	StopRate float64 `json:"stop_rate"`
	// MaxNewTokens is the generation limit of the stop check.
	MaxNewTokens int `json:"max_new_tokens"`
	// Sample is the first prompt's greedy answer.
	Sample string `json:"sample"`
}

// Retention is written to retention.json: scores before and after training.
type Retention struct {
	Before RetentionScores `json:"before"`
	After  RetentionScores `json:"after"`
}

// MeasureRetention scores recs with the model: response perplexity and a greedy stop check.
func MeasureRetention(model *lm.Model, tok tokenizer.Tokenizer, tmpl prompt.Template, recs []ReplayRecord) (*RetentionScores, error) {
	const maxNew = 64
	eos := tok.Special().EOS
	var reqs []lm.Request
	var prompts [][]int32
	for _, r := range recs {
		enc, err := tmpl.Encode(tok, prompt.Example{Instruction: r.Instruction, Input: r.Input, Response: r.Output})
		if err != nil {
			return nil, err
		}
		ids := enc.IDs
		if !tmpl.AddEOS && eos >= 0 {
			ids = append(ids, eos)
		}
		reqs = append(reqs, lm.Request{Context: ids[:enc.PromptLen], Continuation: ids[enc.PromptLen:]})
		prompts = append(prompts, ids[:enc.PromptLen])
	}
	res, err := model.LogLikelihood(reqs, 8)
	if err != nil {
		return nil, err
	}
	var lp float64
	var n int
	for _, r := range res {
		lp += r.LogProb
		n += r.NumTokens
	}
	s := &RetentionScores{Perplexity: math.Exp(-lp / float64(max(1, n))), MaxNewTokens: maxNew}
	stops := 0
	for i, p := range prompts {
		out, err := model.Generate(p, lm.GenerateOptions{MaxNewTokens: maxNew, StopTokens: []int32{eos}})
		if err != nil {
			return nil, err
		}
		if slices.Contains(out, eos) {
			stops++
		}
		if i == 0 {
			s.Sample = tok.Decode(out)
		}
	}
	s.StopRate = float64(stops) / float64(max(1, len(prompts)))
	return s, nil
}
