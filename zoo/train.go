package zoo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/models/prompt"
	"github.com/perpetual-ml/perpetual/models/tokenizer"
	"github.com/perpetual-ml/perpetual/training"

	"github.com/perpetual-ml/perpetual/internal/atomicfile"
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
	// Probes is the learning curve of recipe v3 (Prober's scores every reading.probe_every steps).
	Probes []ProbePoint `json:"probes,omitempty"`
}

// ProbePoint is one point of a learning curve.
type ProbePoint struct {
	Step   int                `json:"step"`
	Scores map[string]float64 `json:"scores"`
}

// phase is one training phase of a recipe.
type phase struct {
	name   string
	exs    []training.Example
	epochs int
	// reportEpochs is the number of data epochs laid out in exs (0: epochs), for the log.
	reportEpochs int
	lr           float64
	warmup       int
	seqLen       int
	// keepOrder trains the examples in their order (a curriculum laid out by the recipe);
	// otherwise they are shuffled once and the packed rows again every epoch.
	keepOrder  bool
	probe      func(int, *lm.Model) (map[string]float64, error)
	probeEvery int
	// schedule and decayFraction choose the learning-rate schedule (training.Options).
	schedule      string
	decayFraction float64
	// batchSize overrides train.batch_size (0: keep it).
	batchSize int
	// init is the hash of the weights the phase starts from when they are not the phase
	// before's (reading.init); empty otherwise.
	init string
}

// phaseCheckpointEvery is how often (in steps) a phase with a work folder writes a checkpoint.
const phaseCheckpointEvery = 25

// phaseLogFile, in a phase's work folder, marks it finished (its PhaseLog; the trained weights
// are the folder's model files).
const phaseLogFile = "phase.json"

// runPhase trains model on ph.exs with the project's trainer (package training: packed rows,
// AdamW, warmup and linear decay, global-norm clipping); the model keeps the trained weights.
// With opt.WorkDir the phase trains in WorkDir/NAME and resumes from its checkpoint there, and a
// phase already finished there is loaded instead of trained.
func runPhase(ctx context.Context, model *lm.Model, tok tokenizer.Tokenizer, tpl prompt.Template, cfg TrainConfig, ph phase,
	seed int64, opt Options, say func(string, ...any)) (PhaseLog, error) {
	start := time.Now()
	log := PhaseLog{Name: ph.name, Examples: len(ph.exs), Epochs: ph.epochs}
	if ph.reportEpochs > 0 {
		log.Epochs = ph.reportEpochs
	}
	order := append([]training.Example(nil), ph.exs...)
	if !ph.keepOrder {
		rng := rand.New(rand.NewPCG(uint64(seed), 0x7a11))
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	}
	for _, ex := range order {
		for i := 1; i < len(ex.Train); i++ {
			if ex.Train[i] {
				log.Tokens++
			}
		}
	}
	log.Tokens *= ph.epochs
	out, resume := "", false
	if opt.WorkDir != "" {
		out = filepath.Join(opt.WorkDir, ph.name+"-"+phaseKey(ph, cfg, seed))
		if done, err := finishedPhase(out, model); err != nil || done != nil {
			if done != nil {
				say("%s: finished earlier in %s, loaded", ph.name, out)
				return *done, nil
			}
			return log, err
		}
		resume = training.HasCheckpoint(out) // a save interrupted mid-swap counts: the resume recovers it
		if resume {
			say("%s: resuming from %s", ph.name, filepath.Join(out, "checkpoint"))
		} else {
			say("%s: training in %s", ph.name, out)
		}
	} else {
		dir, err := os.MkdirTemp("", "zoo-"+ph.name+"-*")
		if err != nil {
			return log, err
		}
		defer os.RemoveAll(dir)
		out = dir
	}
	batch := cfg.BatchSize
	if ph.batchSize > 0 {
		batch = ph.batchSize
	}
	warmup := ph.warmup
	if warmup == 0 {
		warmup = -1 // training.Options: negative means none
	}
	o := training.Options{
		Epochs: ph.epochs, LR: ph.lr, WarmupSteps: warmup, BatchSize: batch, Accumulation: 1,
		MaxLength: ph.seqLen, ClipNorm: new(cfg.Clip), WeightDecay: new(cfg.WeightDecay), Beta2: 0.95,
		Seed: seed, Order: training.OrderShuffled, Out: out, Context: ctx, Progress: opt.Bar, Resume: resume,
		Probe: ph.probe, ProbeEvery: ph.probeEvery, Schedule: ph.schedule, DecayFraction: ph.decayFraction,
	}
	if ph.keepOrder {
		o.Order = training.OrderPaper
	}
	if opt.WorkDir != "" {
		o.CheckpointEvery = phaseCheckpointEvery
	}
	res, err := training.Fit(model, tok, tpl, order, nil, o)
	if err != nil {
		return log, fmt.Errorf("zoo: %s: %w", ph.name, err)
	}
	losses := make([]float64, len(res.Metrics))
	for i, m := range res.Metrics {
		losses[i] = m.Loss
		if m.Probe != nil {
			log.Probes = append(log.Probes, ProbePoint{Step: m.Step, Scores: m.Probe})
		}
	}
	for i := 0; i < len(losses); i += 10 {
		log.Losses = append(log.Losses, round4(mean(losses[i:min(i+10, len(losses))])))
	}
	log.Steps = len(losses)
	if k := max(1, log.Steps/10); log.Steps > 0 {
		log.FirstLoss, log.FinalLoss = round4(mean(losses[:k])), round4(mean(losses[log.Steps-k:]))
	}
	log.WallSecond = math.Round(time.Since(start).Seconds()*10) / 10
	if opt.WorkDir != "" {
		data, _ := json.MarshalIndent(log, "", "  ")
		if err := atomicfile.WriteFile(filepath.Join(out, phaseLogFile), data); err != nil {
			return log, err
		}
		// Finished: the model files and phase.json are all a rerun needs; the optimizer state
		// is three times the model's size.
		if err := os.RemoveAll(filepath.Join(out, "checkpoint")); err != nil {
			return log, err
		}
	}
	say("%s: %d steps, loss %.4f -> %.4f, %.0fs", ph.name, log.Steps, log.FirstLoss, log.FinalLoss, log.WallSecond)
	return log, nil
}

// phaseKey identifies what a phase trains (its examples in order, hyper-parameters and seed),
// so a work folder is reused only by the same phase: a changed recipe trains afresh beside it.
func phaseKey(ph phase, cfg TrainConfig, seed int64) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s|%d|%g|%d|%d|%v|%d|%g|%g|%d|%d\n", ph.name, ph.epochs, ph.lr, ph.warmup, ph.seqLen, ph.keepOrder, seed,
		cfg.Clip, cfg.WeightDecay, cfg.BatchSize, ph.probeEvery)
	if ph.schedule != "" || ph.batchSize > 0 { // absent from the key of runs made before these options
		fmt.Fprintf(h, "schedule %s %g batch %d\n", ph.schedule, ph.decayFraction, ph.batchSize)
	}
	if ph.init != "" {
		fmt.Fprintf(h, "init %s\n", ph.init)
	}
	for _, ex := range ph.exs {
		fmt.Fprintf(h, "%v:%v\n", ex.Train, ex.IDs)
		if ex.Weights != nil { // absent from the key of unweighted data, as before weights existed
			fmt.Fprintf(h, "w%v\n", ex.Weights)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// finishedPhase loads a phase finished earlier in dir into model and returns its log; nil
// when the phase has not finished there.
func finishedPhase(dir string, model *lm.Model) (*PhaseLog, error) {
	data, err := os.ReadFile(filepath.Join(dir, phaseLogFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var log PhaseLog
	if err := json.Unmarshal(data, &log); err != nil {
		return nil, fmt.Errorf("zoo: %s: %w (delete it to train the phase again)", filepath.Join(dir, phaseLogFile), err)
	}
	done, err := lm.Load(dir, lm.LoadOptions{Backend: model.Backend(), DType: model.DType()})
	if err != nil {
		return nil, fmt.Errorf("zoo: loading the finished phase in %s: %w", dir, err)
	}
	if err := model.SetWeights(done.Weights()); err != nil {
		return nil, err
	}
	return &log, nil
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
