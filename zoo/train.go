package zoo

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"time"

	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/models/prompt"
	"github.com/perpetual-ml/perpetual/models/tokenizer"
	"github.com/perpetual-ml/perpetual/training"
)

// PhaseLog is what one training phase did: steps, loss tokens, the mean loss of the first and
// last tenth of its steps, and wall time.
type PhaseLog struct {
	Name       string    `json:"name"`
	Examples   int       `json:"examples"`
	Epochs     int       `json:"epochs"`
	Steps      int       `json:"steps"`
	Tokens     int       `json:"tokens"` // loss targets per epoch times epochs
	FirstLoss  float64   `json:"first_loss"`
	FinalLoss  float64   `json:"final_loss"`
	Losses     []float64 `json:"losses"` // mean loss of every 10 steps
	WallSecond float64   `json:"wall_seconds"`
}

// runPhase trains model on exs for epochs with the project's trainer (package training: packed
// rows, AdamW, warmup and linear decay, global-norm clipping) in a scratch folder; the model
// keeps the trained weights. The examples are shuffled once (seeded) so every packed row mixes
// kinds of data; rows are reshuffled every epoch.
func runPhase(ctx context.Context, model *lm.Model, tok tokenizer.Tokenizer, tpl prompt.Template, cfg TrainConfig, name string,
	exs []training.Example, epochs int, seed int64, bar io.Writer, say func(string, ...any)) (PhaseLog, error) {
	start := time.Now()
	log := PhaseLog{Name: name, Examples: len(exs), Epochs: epochs}
	order := append([]training.Example(nil), exs...)
	rng := rand.New(rand.NewPCG(uint64(seed), 0x7a11))
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	for _, ex := range order {
		for i := 1; i < len(ex.Train); i++ {
			if ex.Train[i] {
				log.Tokens++
			}
		}
	}
	log.Tokens *= epochs
	out, err := os.MkdirTemp("", "zoo-"+name+"-*")
	if err != nil {
		return log, err
	}
	defer os.RemoveAll(out)
	warmup := cfg.WarmupSteps
	if warmup == 0 {
		warmup = -1 // training.Options: negative means none
	}
	res, err := training.Fit(model, tok, tpl, order, nil, training.Options{
		Epochs: epochs, LR: cfg.LR, WarmupSteps: warmup, BatchSize: cfg.BatchSize, Accumulation: 1,
		MaxLength: cfg.SeqLen, ClipNorm: cfg.Clip, WeightDecay: cfg.WeightDecay, Beta2: 0.95,
		Seed: seed, Order: training.OrderShuffled, Out: out, Context: ctx, Progress: bar,
	})
	if err != nil {
		return log, fmt.Errorf("zoo: %s: %w", name, err)
	}
	losses := make([]float64, len(res.Metrics))
	for i, m := range res.Metrics {
		losses[i] = m.Loss
	}
	for i := 0; i < len(losses); i += 10 {
		log.Losses = append(log.Losses, round4(mean(losses[i:min(i+10, len(losses))])))
	}
	log.Steps = len(losses)
	if k := max(1, log.Steps/10); log.Steps > 0 {
		log.FirstLoss, log.FinalLoss = round4(mean(losses[:k])), round4(mean(losses[log.Steps-k:]))
	}
	log.WallSecond = math.Round(time.Since(start).Seconds()*10) / 10
	say("%s: %d steps, loss %.4f -> %.4f, %.0fs", name, log.Steps, log.FirstLoss, log.FinalLoss, log.WallSecond)
	return log, nil
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

func round4(x float64) float64 { return math.Round(x*1e4) / 1e4 }
