package training

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/schollz/progressbar/v3"

	"github.com/perpetual-ml/perpetual/models/checkpoint"
	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/models/prompt"
	"github.com/perpetual-ml/perpetual/models/tokenizer"

	"github.com/perpetual-ml/perpetual/internal/atomicfile"
)

// Fit trains model on encoded examples (validation may be empty): the loop behind Run, for
// callers that make their own data (the zoo's pre-training and instruction tuning). tok and tmpl
// are used only to measure retention (Options.RetentionFile). On success the model holds the
// trained weights and o.Out the saved model, metrics.jsonl and the last checkpoint.
func Fit(model *lm.Model, tok tokenizer.Tokenizer, tmpl prompt.Template, exs, validation []Example, o Options) (*Result, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o.Defaults()
	if len(exs) == 0 {
		return nil, fmt.Errorf("training: no training examples")
	}
	arch := model.Arch()
	maxLen := o.MaxLength
	if ml := arch.MaxLength(); ml > 0 && ml < maxLen {
		maxLen = ml
	}
	rows, err := Pack(exs, maxLen, !o.NoPacking)
	if err != nil {
		return nil, err
	}
	var valRows []Row
	if len(validation) > 0 {
		if valRows, err = Pack(validation, maxLen, !o.NoPacking); err != nil {
			return nil, err
		}
	}
	T := rowLength(append(slices.Clone(rows), valRows...), maxLen)

	setup, state, err := NewState(model, o.LoRA, o.Seed)
	if err != nil {
		return nil, err
	}
	if err := checkMemory(setup, model, o, T); err != nil {
		return nil, err
	}

	microPerEpoch := (len(rows) + o.BatchSize - 1) / o.BatchSize
	stepsPerEpoch := (microPerEpoch + o.Accumulation - 1) / o.Accumulation
	total := stepsPerEpoch * o.Epochs
	if total < 1 {
		return nil, fmt.Errorf("training: %d rows, batch %d x %d and %d epochs make no optimizer step", len(rows), o.BatchSize, o.Accumulation, o.Epochs)
	}
	st := runState{Seed: o.Seed, Total: total, LR: o.LR, Warmup: o.WarmupSteps, Schedule: scheduleName(o),
		DataHash: dataHash(exs), Recipe: recipeOf(o, maxLen)}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	ckptDir := filepath.Join(o.Out, checkpointDir)
	if o.Resume {
		want := st
		if st, state.Train, state.M, state.V, err = loadCheckpoint(o.Out, setup, want); err != nil {
			return nil, err
		}
		// A checkpoint written before the data hash and recipe were recorded gets them now.
		st.DataHash, st.Recipe = want.DataHash, want.Recipe
	}
	steps, err := NewSteps(model.Backend(), setup) // compiled once the resume is known to be valid
	if err != nil {
		return nil, err
	}
	metricsPath := filepath.Join(o.Out, "metrics.jsonl")
	res := &Result{}
	if res.Metrics, err = truncateMetrics(metricsPath, st.Step); err != nil {
		return nil, err
	}
	mf, err := os.OpenFile(metricsPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	defer mf.Close()

	var retBefore *RetentionScores
	var retRecs []ReplayRecord
	if o.RetentionFile != "" {
		if retRecs, err = ReadReplay(o.RetentionFile); err != nil {
			return nil, err
		}
		retRecs = retRecs[:min(len(retRecs), o.RetentionLimit)]
		if retBefore, err = MeasureRetention(model, tok, tmpl, retRecs); err != nil {
			return nil, err
		}
	}

	var bar *progressbar.ProgressBar
	if o.Progress != nil {
		bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(o.Progress), progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionSetDescription("training"))
		_ = bar.Set(st.Step)
	}
	hyper := o.hyper()
	valLoss := func() (*float64, error) {
		if len(valRows) == 0 {
			return nil, nil
		}
		var sum, cnt float64
		for i := 0; i < len(valRows); i += o.BatchSize {
			s, c, err := steps.Loss(state.Frozen, state.Train, MakeBatch(valRows[i:min(i+o.BatchSize, len(valRows))], o.BatchSize, T))
			if err != nil {
				return nil, err
			}
			sum, cnt = sum+s, cnt+c
		}
		l := sum / math.Max(1, cnt)
		return &l, nil
	}
	for st.Step < total {
		epoch := st.Step / stepsPerEpoch
		order := epochOrder(len(rows), o.Order == OrderShuffled, o.Seed, epoch)
		inEpoch := st.Step % stepsPerEpoch
		t0 := time.Now()
		var micro []Batch
		var tokens int
		for k := 0; k < o.Accumulation; k++ {
			mb := inEpoch*o.Accumulation + k
			if mb >= microPerEpoch {
				break
			}
			var brows []Row
			for _, r := range order[mb*o.BatchSize : min((mb+1)*o.BatchSize, len(order))] {
				brows = append(brows, rows[r])
				tokens += len(rows[r].Tokens)
			}
			micro = append(micro, MakeBatch(brows, o.BatchSize, T))
		}
		hyper.LR = ScheduleLR(o, st.Step, total)
		stats, err := steps.Step(state, micro, hyper, st.Step+1)
		if nf := (*NonFiniteLossError)(nil); errors.As(err, &nf) {
			return res, fmt.Errorf("training: loss is %v at step %d (the weights after step %d); stopped without updating them — the last good checkpoint (step %d, loss finite when written) is in %s; lower --lr and --resume from it or restart",
				nf.Loss, st.Step+1, st.Step, lastCheckpointStep(o.Out), ckptDir)
		}
		if err != nil {
			return nil, err
		}
		loss, gn := stats.Loss(), stats.GradNorm
		if math.IsNaN(gn) || math.IsInf(gn, 0) {
			return res, fmt.Errorf("training: gradient norm is %v at step %d; stopped without applying it — the last good checkpoint (step %d) is in %s", gn, st.Step+1, lastCheckpointStep(o.Out), ckptDir)
		}
		st.Step++
		st.Epoch = st.Step / stepsPerEpoch
		met := Metric{Step: st.Step, Epoch: float64(st.Step) / float64(stepsPerEpoch), Loss: loss, LR: hyper.LR, GradNorm: gn,
			TokensPerS: float64(tokens) / time.Since(t0).Seconds()}
		if (o.ValEvery > 0 && st.Step%o.ValEvery == 0) || st.Step == total {
			if met.ValLoss, err = valLoss(); err != nil {
				return nil, err
			}
		}
		if o.Probe != nil && ((o.ProbeEvery > 0 && st.Step%o.ProbeEvery == 0) || st.Step == total) {
			if met.Probe, err = probe(o.Probe, st.Step, model, setup, state.Frozen, state.Train, o.LoRA); err != nil {
				return nil, fmt.Errorf("training: probe at step %d: %w", st.Step, err)
			}
		}
		res.Metrics = append(res.Metrics, met)
		line, _ := json.Marshal(met)
		if _, err := mf.Write(append(line, '\n')); err != nil {
			return nil, err
		}
		if bar != nil {
			bar.Describe(fmt.Sprintf("loss %.4f  %.0f tok/s", loss, met.TokensPerS))
			_ = bar.Set(st.Step)
		}
		stop := o.StopAfterStep > 0 && st.Step == o.StopAfterStep
		var cancelled error
		if o.Context != nil {
			cancelled = o.Context.Err()
		}
		if (o.CheckpointEvery > 0 && st.Step%o.CheckpointEvery == 0) || st.Step == total || stop || cancelled != nil {
			if err := saveCheckpoint(o.Out, model, setup, st, state.Frozen, state.Train, state.M, state.V, o.LoRA); err != nil {
				return nil, err
			}
		}
		if cancelled != nil && st.Step < total {
			return res, fmt.Errorf("training interrupted after step %d (checkpoint written to %s; continue with resume): %w", st.Step, ckptDir, cancelled)
		}
		if stop && st.Step < total {
			res.Steps, res.Stopped = st.Step, true
			return res, nil
		}
	}
	if bar != nil {
		_ = bar.Finish()
		fmt.Fprintln(o.Progress)
	}
	res.Steps = st.Step
	final, err := exportWeights(model, setup, state.Frozen, state.Train, o.LoRA)
	if err != nil {
		return nil, err
	}
	if err := model.SetWeights(final); err != nil {
		return nil, err
	}
	if err := saveModelInto(o.Out, model); err != nil {
		return nil, err
	}
	if retBefore != nil {
		after, err := MeasureRetention(model, tok, tmpl, retRecs)
		if err != nil {
			return nil, err
		}
		res.Retention = &Retention{Before: *retBefore, After: *after}
		data, _ := json.MarshalIndent(res.Retention, "", "  ")
		if err := atomicfile.WriteFile(filepath.Join(o.Out, "retention.json"), data); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// probe runs fn on a model holding this step's weights: the training model itself for full
// training (its own weights are unused while training), a copy when training LoRA adapters
// (whose frozen base must stay the model's). The weights are cloned: the next step donates them.
func probe(fn func(int, *lm.Model) (map[string]float64, error), step int, model *lm.Model, s *Setup, frozen, train []*tensors.Tensor, lora *LoRA) (map[string]float64, error) {
	ws, err := exportWeights(model, s, frozen, train, lora)
	if err != nil {
		return nil, err
	}
	for name, w := range ws {
		if ws[name], err = w.Clone(); err != nil {
			return nil, err
		}
	}
	target := model
	if lora != nil {
		if target, err = lm.New(model.Arch(), model.Config(), ws, lm.LoadOptions{Backend: model.Backend(), DType: model.DType()}); err != nil {
			return nil, err
		}
	} else if err := model.SetWeights(ws); err != nil {
		return nil, err
	}
	return fn(step, target)
}

// rowLength is the padded row length: the longest row rounded up to a multiple of 16 (one
// compiled shape per run), at most maxLen.
func rowLength(rows []Row, maxLen int) int {
	n := 1
	for _, r := range rows {
		n = max(n, len(r.Tokens))
	}
	return min(maxLen, (n+15)/16*16)
}

// epochOrder is the row order of an epoch: in order, or a permutation seeded by (seed, epoch)
// so a resumed run sees the same order.
func epochOrder(n int, shuffle bool, seed int64, epoch int) []int {
	if !shuffle {
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		return idx
	}
	return rand.New(rand.NewPCG(uint64(seed), uint64(epoch)+1)).Perm(n)
}

// saveModelInto writes the model's HF files into dir (which keeps its other files): saved into
// a temporary folder inside dir, then each file renamed into place.
func saveModelInto(dir string, model *lm.Model) error {
	tmp := filepath.Join(dir, ".model-tmp")
	_ = os.RemoveAll(tmp)
	if err := model.Save(tmp, checkpoint.SaveOptions{TokenizerFrom: model.Dir()}); err != nil {
		return err
	}
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.Rename(filepath.Join(tmp, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return os.RemoveAll(tmp)
}
