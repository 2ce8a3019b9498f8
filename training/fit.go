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
// trained weights and o.Out the saved model, metrics.jsonl and the last checkpoint. A run that
// halts at a known step (a NaN/Inf loss or gradient norm, a cancelled Options.Context) returns
// the metrics so far with its error; one that Options.StopAfterStep ends returns them with
// Result.Stopped set and no error; any other failure returns no result.
//
// Its body is the run's steps in order, each a method of fitRun below (docs/training.md lists
// them).
func Fit(model *lm.Model, tok tokenizer.Tokenizer, tmpl prompt.Template, exs, validation []Example, o Options) (*Result, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o.Defaults()
	if len(exs) == 0 {
		return nil, fmt.Errorf("training: no training examples")
	}
	r := &fitRun{o: o, model: model, tok: tok, tmpl: tmpl, res: &Result{}}
	if err := r.pack(exs, validation); err != nil {
		return nil, err
	}
	if err := r.prepare(exs); err != nil {
		return nil, err
	}
	if err := r.resume(); err != nil {
		return nil, err
	}
	if err := r.compile(); err != nil {
		return nil, err
	}
	if err := r.openMetrics(); err != nil {
		return nil, err
	}
	defer r.metrics.Close()
	if err := r.retentionBefore(); err != nil {
		return nil, err
	}

	r.startProgress()
	for r.st.Step < r.total {
		met, err := r.trainStep()
		if err != nil {
			return r.failed(err)
		}
		if err := r.record(met); err != nil {
			return r.failed(err)
		}
		stopped, err := r.maybeCheckpoint()
		if err != nil {
			return r.failed(err)
		}
		if stopped {
			r.res.Steps, r.res.Stopped = r.st.Step, true
			return r.res, nil
		}
	}
	r.endProgress()

	r.res.Steps = r.st.Step
	if err := r.export(); err != nil {
		return nil, err
	}
	if err := r.retentionAfter(); err != nil {
		return nil, err
	}
	return r.res, nil
}

// fitRun is one call of Fit: its inputs, and what each of its steps hands to the next.
type fitRun struct {
	o     Options // defaulted
	model *lm.Model
	tok   tokenizer.Tokenizer // retention only
	tmpl  prompt.Template     // retention only

	// pack: the training and validation rows, the row length cap (MaxLength, at most the model's
	// window) and the padded row length, one compiled shape for the whole run.
	rows, valRows  []Row
	maxLen, rowLen int

	// prepare and resume: the trained tensors with their optimizer moments, the run's length,
	// and st, the optimizer steps done with what a checkpoint records about the run.
	setup                               *Setup
	state                               *State
	microPerEpoch, stepsPerEpoch, total int
	st                                  runState

	steps     *Steps                   // compile: the step graphs
	metrics   *os.File                 // openMetrics: metrics.jsonl, appended to
	retRecs   []ReplayRecord           // retentionBefore: the held-out records scored
	retBefore *RetentionScores         // and their scores before training (nil: no RetentionFile)
	bar       *progressbar.ProgressBar // nil without Options.Progress
	res       *Result                  // its Metrics: those kept by openMetrics, then one per step
}

// halted is an error that ends the run at a known step: a NaN/Inf loss or gradient norm (the
// weights stay those of the step before) or a cancelled Options.Context (after its checkpoint).
// Fit returns the error inside it with the result so far.
type halted struct{ err error }

func (h halted) Error() string { return h.err.Error() }

// failed is what Fit returns when a step of its loop fails: the result so far with a halted
// error's own error, no result with any other error.
func (r *fitRun) failed(err error) (*Result, error) {
	if h, ok := err.(halted); ok {
		return r.res, h.err
	}
	return nil, err
}

// pack packs the training and validation examples into rows (one item per row with NoPacking)
// and fixes the padded row length: the longest row of either, rounded up to a multiple of 16.
func (r *fitRun) pack(exs, validation []Example) error {
	r.maxLen = r.o.MaxLength
	if ml := r.model.Arch().MaxLength(); ml > 0 && ml < r.maxLen {
		r.maxLen = ml
	}
	var err error
	if r.rows, err = Pack(exs, r.maxLen, !r.o.NoPacking); err != nil {
		return err
	}
	if len(validation) > 0 {
		if r.valRows, err = Pack(validation, r.maxLen, !r.o.NoPacking); err != nil {
			return err
		}
	}
	r.rowLen = rowLength(append(slices.Clone(r.rows), r.valRows...), r.maxLen)
	return nil
}

// prepare makes the trained state (all weights, or LoRA adapters), refuses a run whose memory
// estimate exceeds the limit, counts the optimizer steps and records what identifies the run
// (seed, schedule, data hash, recipe) in st, at step 0.
func (r *fitRun) prepare(exs []Example) error {
	o := &r.o
	var err error
	if r.setup, r.state, err = NewState(r.model, o.LoRA, o.Seed); err != nil {
		return err
	}
	if err := checkMemory(r.setup, r.model, *o, r.rowLen); err != nil {
		return err
	}
	r.microPerEpoch = (len(r.rows) + o.BatchSize - 1) / o.BatchSize
	r.stepsPerEpoch = (r.microPerEpoch + o.Accumulation - 1) / o.Accumulation
	r.total = r.stepsPerEpoch * o.Epochs
	if r.total < 1 {
		return fmt.Errorf("training: %d rows, batch %d x %d and %d epochs make no optimizer step", len(r.rows), o.BatchSize, o.Accumulation, o.Epochs)
	}
	r.st = runState{Seed: o.Seed, Total: r.total, LR: o.LR, Warmup: o.WarmupSteps, Schedule: scheduleName(*o),
		DataHash: dataHash(exs), Recipe: recipeOf(*o, r.maxLen)}
	return nil
}

// resume creates the output folder and, with Options.Resume, continues from its checkpoint:
// st, the trained tensors and the moments become the checkpoint's, or the resume is refused
// when the checkpoint recorded other settings or data (loadCheckpoint).
func (r *fitRun) resume() error {
	if err := os.MkdirAll(r.o.Out, 0o755); err != nil {
		return err
	}
	if !r.o.Resume {
		return nil
	}
	want := r.st
	var err error
	if r.st, r.state.Train, r.state.M, r.state.V, err = loadCheckpoint(r.o.Out, r.setup, want); err != nil {
		return err
	}
	// A checkpoint written before the data hash and recipe were recorded gets them now.
	r.st.DataHash, r.st.Recipe = want.DataHash, want.Recipe
	return nil
}

// compile builds the step graphs: after resume, so a refused resume costs no compilation.
func (r *fitRun) compile() error {
	var err error
	r.steps, err = NewSteps(r.model.Backend(), r.setup)
	return err
}

// openMetrics takes metrics.jsonl's lines up to the steps done into the result (a resumed run
// drops those after its checkpoint, a fresh run all) and opens the file for appending.
func (r *fitRun) openMetrics() error {
	path := filepath.Join(r.o.Out, "metrics.jsonl")
	var err error
	if r.res.Metrics, err = truncateMetrics(path, r.st.Step); err != nil {
		return err
	}
	r.metrics, err = os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	return err
}

// retentionBefore scores the model as given on the first RetentionLimit records of
// Options.RetentionFile (nothing without one); retentionAfter scores them again once trained.
func (r *fitRun) retentionBefore() error {
	if r.o.RetentionFile == "" {
		return nil
	}
	recs, err := ReadReplay(r.o.RetentionFile)
	if err != nil {
		return err
	}
	r.retRecs = recs[:min(len(recs), r.o.RetentionLimit)]
	r.retBefore, err = MeasureRetention(r.model, r.tok, r.tmpl, r.retRecs)
	return err
}

// startProgress starts the progress bar at the steps done (nothing without Options.Progress).
func (r *fitRun) startProgress() {
	if r.o.Progress == nil {
		return
	}
	r.bar = progressbar.NewOptions(r.total, progressbar.OptionSetWriter(r.o.Progress), progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionSetDescription("training"))
	_ = r.bar.Set(r.st.Step)
}

// trainStep runs optimizer step st.Step+1 on its micro-batches at the scheduled learning rate
// and advances st, returning the step's metrics. A NaN/Inf loss or gradient norm halts the run
// without updating the weights, naming the last checkpoint (which stays as it was).
func (r *fitRun) trainStep() (Metric, error) {
	o := &r.o
	order := epochOrder(len(r.rows), o.Order == OrderShuffled, o.Seed, r.st.Step/r.stepsPerEpoch)
	t0 := time.Now()
	micro, tokens := r.microBatches(order)
	hyper := o.hyper()
	hyper.LR = ScheduleLR(*o, r.st.Step, r.total)
	stats, err := r.steps.Step(r.state, micro, hyper, r.st.Step+1)
	ckptDir := filepath.Join(o.Out, checkpointDir)
	if nf := (*NonFiniteLossError)(nil); errors.As(err, &nf) {
		return Metric{}, halted{fmt.Errorf("training: loss is %v at step %d (the weights after step %d); stopped without updating them — the last good checkpoint (step %d, loss finite when written) is in %s; lower --lr and --resume from it or restart",
			nf.Loss, r.st.Step+1, r.st.Step, lastCheckpointStep(o.Out), ckptDir)}
	}
	if err != nil {
		return Metric{}, err
	}
	loss, gn := stats.Loss(), stats.GradNorm
	if math.IsNaN(gn) || math.IsInf(gn, 0) {
		return Metric{}, halted{fmt.Errorf("training: gradient norm is %v at step %d; stopped without applying it — the last good checkpoint (step %d) is in %s", gn, r.st.Step+1, lastCheckpointStep(o.Out), ckptDir)}
	}
	r.st.Step++
	r.st.Epoch = r.st.Step / r.stepsPerEpoch
	return Metric{Step: r.st.Step, Epoch: float64(r.st.Step) / float64(r.stepsPerEpoch), Loss: loss, LR: hyper.LR, GradNorm: gn,
		TokensPerS: float64(tokens) / time.Since(t0).Seconds()}, nil
}

// microBatches are the Accumulation micro-batches of step st.Step+1 (fewer at the end of an
// epoch), taken from the epoch's row order, and their token count.
func (r *fitRun) microBatches(order []int) (micro []Batch, tokens int) {
	o := &r.o
	inEpoch := r.st.Step % r.stepsPerEpoch
	for k := 0; k < o.Accumulation; k++ {
		mb := inEpoch*o.Accumulation + k
		if mb >= r.microPerEpoch {
			break
		}
		var brows []Row
		for _, i := range order[mb*o.BatchSize : min((mb+1)*o.BatchSize, len(order))] {
			brows = append(brows, r.rows[i])
			tokens += len(r.rows[i].Tokens)
		}
		micro = append(micro, MakeBatch(brows, o.BatchSize, r.rowLen))
	}
	return micro, tokens
}

// record completes the metrics of the step just done with the validation loss and the probe's
// scores when they are due (every ValEvery and ProbeEvery steps, and after the last), appends
// them to the result and as a line to metrics.jsonl, and moves the progress bar.
func (r *fitRun) record(met Metric) error {
	o := &r.o
	last := r.st.Step == r.total
	var err error
	if (o.ValEvery > 0 && r.st.Step%o.ValEvery == 0) || last {
		if met.ValLoss, err = r.validationLoss(); err != nil {
			return err
		}
	}
	if o.Probe != nil && ((o.ProbeEvery > 0 && r.st.Step%o.ProbeEvery == 0) || last) {
		if met.Probe, err = probe(o.Probe, r.st.Step, r.model, r.setup, r.state.Frozen, r.state.Train, o.LoRA); err != nil {
			return fmt.Errorf("training: probe at step %d: %w", r.st.Step, err)
		}
	}
	r.res.Metrics = append(r.res.Metrics, met)
	line, _ := json.Marshal(met)
	if _, err := r.metrics.Write(append(line, '\n')); err != nil {
		return err
	}
	if r.bar != nil {
		r.bar.Describe(fmt.Sprintf("loss %.4f  %.0f tok/s", met.Loss, met.TokensPerS))
		_ = r.bar.Set(r.st.Step)
	}
	return nil
}

// validationLoss is the loss of the current weights over all target tokens of the validation
// rows (nil without them).
func (r *fitRun) validationLoss() (*float64, error) {
	if len(r.valRows) == 0 {
		return nil, nil
	}
	B := r.o.BatchSize
	var sum, cnt float64
	for i := 0; i < len(r.valRows); i += B {
		s, c, err := r.steps.Loss(r.state.Frozen, r.state.Train, MakeBatch(r.valRows[i:min(i+B, len(r.valRows))], B, r.rowLen))
		if err != nil {
			return nil, err
		}
		sum, cnt = sum+s, cnt+c
	}
	l := sum / math.Max(1, cnt)
	return &l, nil
}

// maybeCheckpoint saves a checkpoint when one is due: every CheckpointEvery steps, after the
// last step, at StopAfterStep, and once Options.Context is done. The latter two end the run
// here unless this was its last step: StopAfterStep reports stopped, a done context halts.
func (r *fitRun) maybeCheckpoint() (stopped bool, err error) {
	o := &r.o
	stop := o.StopAfterStep > 0 && r.st.Step == o.StopAfterStep
	var cancelled error
	if o.Context != nil {
		cancelled = o.Context.Err()
	}
	if (o.CheckpointEvery > 0 && r.st.Step%o.CheckpointEvery == 0) || r.st.Step == r.total || stop || cancelled != nil {
		if err := saveCheckpoint(o.Out, r.model, r.setup, r.st, r.state.Frozen, r.state.Train, r.state.M, r.state.V, o.LoRA); err != nil {
			return false, err
		}
	}
	if cancelled != nil && r.st.Step < r.total {
		return false, halted{fmt.Errorf("training interrupted after step %d (checkpoint written to %s; continue with resume): %w", r.st.Step, filepath.Join(o.Out, checkpointDir), cancelled)}
	}
	return stop && r.st.Step < r.total, nil
}

// endProgress completes the progress bar's line.
func (r *fitRun) endProgress() {
	if r.bar == nil {
		return
	}
	_ = r.bar.Finish()
	fmt.Fprintln(r.o.Progress)
}

// export leaves the trained weights in the model (LoRA adapters merged into the base) and saves
// it in Hugging Face format into Out, beside metrics.jsonl and the checkpoint.
func (r *fitRun) export() error {
	final, err := exportWeights(r.model, r.setup, r.state.Frozen, r.state.Train, r.o.LoRA)
	if err != nil {
		return err
	}
	if err := r.model.SetWeights(final); err != nil {
		return err
	}
	return saveModelInto(r.o.Out, r.model)
}

// retentionAfter scores the trained model on the records retentionBefore scored and writes both
// scores to retention.json (nothing without Options.RetentionFile).
func (r *fitRun) retentionAfter() error {
	if r.retBefore == nil {
		return nil
	}
	after, err := MeasureRetention(r.model, r.tok, r.tmpl, r.retRecs)
	if err != nil {
		return err
	}
	r.res.Retention = &Retention{Before: *r.retBefore, After: *after}
	data, _ := json.MarshalIndent(r.res.Retention, "", "  ")
	return atomicfile.WriteFile(filepath.Join(r.o.Out, "retention.json"), data)
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
