package rag

import (
	"fmt"
	"strings"
)

// DefaultK is how many chunks the paper prepended to each question.
const DefaultK = 3

// PassageSeparator goes between passages and between the last passage and the question.
const PassageSeparator = "\n\n"

// Augment prepends the passages to the question, best first, in the layout of the evaluation's
// embedded tasks (evaluation/tasks/*.yaml, the default suite's, which the zoo was trained on): the
// passage texts as they are, joined by PassageSeparator, then PassageSeparator, then the
// question. The paper stripped each passage and joined them with a single newline; evaluation
// renders that with the task options strip_passages and passage_delimiter "\n" (the paper suite
// sets them). With no passages the question comes back unchanged.
func Augment(question string, hits []Hit) string {
	if len(hits) == 0 {
		return question
	}
	var b strings.Builder
	for _, h := range hits {
		b.WriteString(h.Text)
		b.WriteString(PassageSeparator)
	}
	b.WriteString(question)
	return b.String()
}

// Fit is the result of FitBudget.
type Fit struct {
	// Prompt is the augmented prompt that fits.
	Prompt string
	// Kept are the passages in Prompt, best first.
	Kept []Hit
	// Dropped are the passages left out, best first (never partially included).
	Dropped []Hit
	// Tokens is countTokens(Prompt).
	Tokens int
}

// FitBudget builds the augmented prompt for question from hits (best first) within budget
// tokens, as counted by countTokens on the whole prompt (whatever the model will see, so
// template and separators count too). Rule: passages are dropped whole, lowest-ranked first,
// until the prompt fits; retrieved text is never truncated. It reports how many were dropped.
// If even the bare question exceeds the budget it returns an error rather than cutting the
// question.
func FitBudget(question string, hits []Hit, budget int, countTokens func(string) (int, error)) (Fit, error) {
	for n := len(hits); n >= 0; n-- {
		prompt := Augment(question, hits[:n])
		t, err := countTokens(prompt)
		if err != nil {
			return Fit{}, fmt.Errorf("rag: counting tokens: %w", err)
		}
		if t <= budget {
			return Fit{Prompt: prompt, Kept: hits[:n], Dropped: hits[n:], Tokens: t}, nil
		}
	}
	t, _ := countTokens(question)
	return Fit{}, fmt.Errorf("rag: the question alone is %d tokens, over the budget of %d", t, budget)
}
