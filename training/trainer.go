package training

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/curriculum"
	"github.com/perpetual-ml/perpetual/models/checkpoint"
	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/models/prompt"
	"github.com/perpetual-ml/perpetual/models/tokenizer"
)

// Options configure a training run. Zero numeric values take the paper's defaults (see
// Defaults): none of those fields has a useful zero (no epochs, a zero learning rate or batch).
// The two settings whose zero is a real choice are pointers, so that zero can be said: ClipNorm
// and WeightDecay are nil for the default and otherwise used as given, 0 included. Validate
// (called by Run and Fit) refuses values out of range, unknown Mask or Order names and an
// incomplete LoRA.
type Options struct {
	Epochs       int
	LR           float64
	WarmupSteps  int // 0: default 5; negative: none
	BatchSize    int // rows per micro-batch
	Accumulation int // micro-batches per optimizer step
	MaxLength    int // row length (tokens)
	NoPacking    bool
	// ClipNorm is the global gradient-norm clipping threshold: nil takes the default 1.0, a
	// pointer to 0 turns clipping off (e.g. ClipNorm: new(0.0)).
	ClipNorm *float64
	// WeightDecay is AdamW's decoupled weight decay: nil takes the default 0.01, a pointer to 0
	// means none.
	WeightDecay *float64
	// Beta1, Beta2 and Eps are AdamW's (0: the defaults 0.9, 0.999 and 1e-8).
	Beta1, Beta2 float64
	Eps          float64
	Seed         int64
	// Mask is MaskAll (default) or MaskAnswers; Order is OrderPaper (default),
	// OrderFlashcardsFirst or OrderShuffled.
	Mask, Order string
	// Schedule is ScheduleLinear (default) or ScheduleWSD; DecayFraction is the share of the
	// steps the wsd schedule decays over.
	Schedule      string
	DecayFraction float64
	// Paraphrases, when set, trains on at most that many paraphrase flashcards per fact
	// (curriculum.LimitParaphrases; nil: all the curriculum has, 0: none), so that models of one
	// suite can share a curriculum and differ in the augmentation.
	Paraphrases *int
	// Template renders flashcards (default: Alpaca).
	Template *prompt.Template
	// LoRA, when set, trains adapters instead of all weights (merged on export).
	LoRA *LoRA
	// ReplayFile is a JSONL of general instruction data mixed in at ReplayFraction of the items.
	ReplayFile     string
	ReplayFraction float64
	// RetentionFile is a JSONL of held-out instruction data (Alpaca fields) used to measure
	// retention before and after training; RetentionLimit caps the records used (default 32).
	RetentionFile  string
	RetentionLimit int
	// CheckpointEvery and ValEvery are in optimizer steps (0: checkpoint only at the end;
	// validation only at the end).
	CheckpointEvery, ValEvery int
	// Out is the output folder: the final model (Hugging Face format), metrics.jsonl,
	// retention.json and checkpoint/ (the last checkpoint with optimizer state).
	Out string
	// Resume continues from Out/checkpoint.
	Resume bool
	// Progress receives a progress bar (nil: none).
	Progress io.Writer
	// MemoryLimit in bytes (0: MemAvailable from /proc/meminfo).
	MemoryLimit int64
	// Context, when set, is checked after every step: once it is done the run writes a
	// checkpoint and returns the context's error (resume with Resume).
	Context context.Context
	// StopAfterStep stops the run right after that optimizer step (and its checkpoint), as if the
	// process was killed there: for testing resumption. 0 disables.
	StopAfterStep int
	// Probe, when set, is called every ProbeEvery optimizer steps (and after the last) with a
	// model holding the weights of that step; its named scores go into that step's line of
	// metrics.jsonl (the learning curve of held-out probes, e.g. reading accuracy).
	Probe      func(step int, m *lm.Model) (map[string]float64, error)
	ProbeEvery int
}

// Defaults fills zero fields (nil ClipNorm and WeightDecay) with the paper's recipe: 3 epochs,
// lr 2e-4 with 5 warm-up steps and linear decay, batch 2 x 4 accumulation, AdamW (0.9, 0.999,
// 1e-8, decay 0.01), clipping 1.0, rows of 2048 tokens. Call it once: a negative WarmupSteps
// becomes 0 (none), which a second call would replace by the default.
func (o *Options) Defaults() {
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	deff := func(p *float64, v float64) {
		if *p == 0 {
			*p = v
		}
	}
	def(&o.Epochs, 3)
	deff(&o.LR, 2e-4)
	switch {
	case o.WarmupSteps == 0:
		o.WarmupSteps = 5
	case o.WarmupSteps < 0: // explicitly none
		o.WarmupSteps = 0
	}
	def(&o.BatchSize, 2)
	def(&o.Accumulation, 4)
	def(&o.MaxLength, 2048)
	if o.ClipNorm == nil {
		o.ClipNorm = new(1.0)
	}
	if o.WeightDecay == nil {
		o.WeightDecay = new(0.01)
	}
	deff(&o.Beta1, 0.9)
	deff(&o.Beta2, 0.999)
	deff(&o.Eps, 1e-8)
	def(&o.RetentionLimit, 32)
	if o.Mask == "" {
		o.Mask = MaskAll
	}
	if o.Order == "" {
		o.Order = OrderPaper
	}
}

// OptionError is an Options field Validate refuses.
type OptionError struct {
	// Field names the Options field ("BatchSize", "LoRA.Rank").
	Field string
	// Value is the refused value.
	Value any
	// Reason says what a valid value is.
	Reason string
}

func (e *OptionError) Error() string {
	v := fmt.Sprint(e.Value)
	if s, ok := e.Value.(string); ok {
		v = strconv.Quote(s)
	}
	return fmt.Sprintf("training: Options.%s = %s: %s", e.Field, v, e.Reason)
}

// Validate checks the options before any work is done, so a bad value never reaches the
// output folder: negative counts and limits, learning rate, decay, clipping and AdamW settings
// out of range (NaN and infinities included), unknown Mask or Order names, and a LoRA without a
// positive rank and alpha or with an empty target. Zero values that mean "default" are accepted.
// The error is an *OptionError naming the field.
func (o *Options) Validate() error {
	bad := func(field string, v any, reason string) error {
		return &OptionError{Field: field, Value: v, Reason: reason}
	}
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	if o.Out == "" {
		return bad("Out", o.Out, "no output folder")
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"Epochs", o.Epochs}, {"BatchSize", o.BatchSize}, {"Accumulation", o.Accumulation}, {"MaxLength", o.MaxLength},
		{"RetentionLimit", o.RetentionLimit}, {"CheckpointEvery", o.CheckpointEvery}, {"ValEvery", o.ValEvery},
		{"ProbeEvery", o.ProbeEvery}, {"StopAfterStep", o.StopAfterStep}} {
		if f.v < 0 {
			return bad(f.name, f.v, "must not be negative")
		}
	}
	if o.Paraphrases != nil && *o.Paraphrases < 0 {
		return bad("Paraphrases", *o.Paraphrases, "must not be negative (nil: all the curriculum has)")
	}
	if o.MemoryLimit < 0 {
		return bad("MemoryLimit", o.MemoryLimit, "must not be negative (0: MemAvailable)")
	}
	if !finite(o.LR) || o.LR < 0 {
		return bad("LR", o.LR, "must be positive (0 takes the default 2e-4)")
	}
	if o.ClipNorm != nil && (!finite(*o.ClipNorm) || *o.ClipNorm < 0) {
		return bad("ClipNorm", *o.ClipNorm, "must be a norm >= 0 (0: no clipping)")
	}
	if o.WeightDecay != nil && (!finite(*o.WeightDecay) || *o.WeightDecay < 0) {
		return bad("WeightDecay", *o.WeightDecay, "must be >= 0 (0: no decay)")
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"Beta1", o.Beta1}, {"Beta2", o.Beta2}} {
		if !finite(f.v) || f.v < 0 || f.v >= 1 {
			return bad(f.name, f.v, "must be in [0, 1) (0 takes the default)")
		}
	}
	if !finite(o.Eps) || o.Eps < 0 {
		return bad("Eps", o.Eps, "must not be negative (0 takes the default 1e-8)")
	}
	if !finite(o.ReplayFraction) || o.ReplayFraction < 0 {
		return bad("ReplayFraction", o.ReplayFraction, "must not be negative")
	}
	switch o.Schedule {
	case "", ScheduleLinear:
	case ScheduleWSD:
		if !(o.DecayFraction > 0 && o.DecayFraction <= 1) {
			return bad("DecayFraction", o.DecayFraction, "the wsd schedule decays over a fraction of the steps in (0, 1]")
		}
	default:
		return bad("Schedule", o.Schedule, fmt.Sprintf("unknown schedule (use %s or %s)", ScheduleLinear, ScheduleWSD))
	}
	switch o.Mask {
	case "", MaskAll, MaskAnswers:
	default:
		return bad("Mask", o.Mask, fmt.Sprintf("unknown mask (use %s or %s)", MaskAll, MaskAnswers))
	}
	switch o.Order {
	case "", OrderPaper, OrderFlashcardsFirst, OrderShuffled:
	default:
		return bad("Order", o.Order, fmt.Sprintf("unknown order (use %s, %s or %s)", OrderPaper, OrderFlashcardsFirst, OrderShuffled))
	}
	if l := o.LoRA; l != nil {
		if l.Rank < 1 {
			return bad("LoRA.Rank", l.Rank, "must be at least 1 when LoRA is requested")
		}
		if !finite(l.Alpha) || l.Alpha <= 0 {
			return bad("LoRA.Alpha", l.Alpha, "must be positive")
		}
		if len(l.Targets) == 0 || slices.Contains(l.Targets, "") {
			return bad("LoRA.Targets", strings.Join(l.Targets, ","), "needs one or more non-empty name parts (an empty one would match every weight)")
		}
	}
	return nil
}

// hyper is the optimizer settings of defaulted options (the learning rate is set per step).
func (o Options) hyper() Hyper {
	return Hyper{LR: o.LR, WeightDecay: *o.WeightDecay, Beta1: o.Beta1, Beta2: o.Beta2, Eps: o.Eps, ClipNorm: *o.ClipNorm}
}

// Metric is one line of metrics.jsonl.
type Metric struct {
	Step       int      `json:"step"`
	Epoch      float64  `json:"epoch"`
	Loss       float64  `json:"loss"`
	LR         float64  `json:"lr"`
	GradNorm   float64  `json:"grad_norm"`
	TokensPerS float64  `json:"tokens_per_s"`
	ValLoss    *float64 `json:"val_loss,omitempty"`
	// Probe holds Options.Probe's scores at the steps it ran.
	Probe map[string]float64 `json:"probe,omitempty"`
}

// Result summarises a run.
type Result struct {
	Steps   int
	Metrics []Metric
	// Stopped is true when StopAfterStep ended the run early.
	Stopped   bool
	Retention *Retention `json:",omitempty"`
}

// Learning-rate schedules (Options.Schedule).
const (
	// ScheduleLinear warms up, then decays linearly to 0 at the last step (the paper's, Hugging
	// Face's get_linear_schedule_with_warmup).
	ScheduleLinear = "linear"
	// ScheduleWSD warms up, holds the rate, then decays linearly to 0 over the last
	// Options.DecayFraction of the steps (warmup-stable-decay): long runs whose skills appear
	// after a plateau keep their full rate through it.
	ScheduleWSD = "wsd"
)

// ScheduleLR is the learning rate of the update after `done` completed steps.
func ScheduleLR(o Options, done, total int) float64 {
	if o.Schedule != ScheduleWSD {
		return LRAt(o.LR, done, o.WarmupSteps, total)
	}
	if done < o.WarmupSteps {
		return o.LR * float64(done) / float64(max(1, o.WarmupSteps))
	}
	decay := max(1, int(math.Round(o.DecayFraction*float64(total))))
	start := max(o.WarmupSteps, total-decay)
	if done < start {
		return o.LR
	}
	return o.LR * math.Max(0, float64(total-done)/float64(max(1, total-start)))
}

// scheduleName is the schedule as state.json records it.
func scheduleName(o Options) string {
	if o.Schedule == ScheduleWSD {
		return fmt.Sprintf("%s:%g", ScheduleWSD, o.DecayFraction)
	}
	return ScheduleLinear
}

// LRAt is the linear schedule with warm-up of Hugging Face's get_linear_schedule_with_warmup:
// the update after `done` completed steps uses lr·done/warmup while warming up, then decays
// linearly to 0 at total.
func LRAt(lr float64, done, warmup, total int) float64 {
	if done < warmup {
		return lr * float64(done) / float64(max(1, warmup))
	}
	return lr * math.Max(0, float64(total-done)/float64(max(1, total-warmup)))
}

// CurriculumEncoder is the encoder Run turns curriculum items into examples with: tmpl renders
// flashcards, o gives the mask, order and seed. Documents and flashcards start with BOS when the
// model folder's tokenizer adds it (tokenizer.AddsBOS: tokenizer_config.json's add_bos_token, or
// a post-processor template that starts with BOS), whatever the model family; a model without a
// folder (lm.New) gets BOS only where the template writes it.
func CurriculumEncoder(model *lm.Model, tok tokenizer.Tokenizer, tmpl prompt.Template, o Options) (*Encoder, error) {
	useBOS := false
	if dir := model.Dir(); dir != "" {
		var err error
		if useBOS, err = tokenizer.AddsBOS(dir); err != nil {
			return nil, err
		}
	}
	return &Encoder{Tok: tok, Options: DataOptions{Template: tmpl, Mask: o.Mask, Order: o.Order, Seed: o.Seed}, UseBOS: useBOS}, nil
}

// Run fine-tunes model on the curriculum's training split and leaves the trained (merged)
// weights in model. tok is the model's tokenizer. It encodes the training items with the prompt
// template (Alpaca by default) through CurriculumEncoder, mixes in Options.ReplayFile's records,
// encodes the validation items (whose loss metrics.jsonl reports) and hands the examples to Fit.
func Run(model *lm.Model, tok tokenizer.Tokenizer, cur *curriculum.Curriculum, given Options) (*Result, error) {
	if err := given.Validate(); err != nil {
		return nil, err
	}
	// o, the defaulted options, is only read here; Fit gets given and applies the defaults
	// itself. Defaults is not idempotent (a WarmupSteps of -1 becomes 0, "none", which a second
	// call would read as "default"), so the defaulted copy must not be passed on.
	o := given
	o.Defaults()
	if cur == nil || len(cur.Train) == 0 {
		return nil, fmt.Errorf("training: the curriculum has no training items")
	}
	if o.Paraphrases != nil {
		cur = cur.LimitParaphrases(*o.Paraphrases)
	}
	tmpl := o.Template
	if tmpl == nil {
		t, err := prompt.Format("alpaca")
		if err != nil {
			return nil, err
		}
		tmpl = &t
	}
	enc, err := CurriculumEncoder(model, tok, *tmpl, o)
	if err != nil {
		return nil, err
	}
	exs, err := enc.Items("train", cur.Train)
	if err != nil {
		return nil, err
	}
	if o.ReplayFile != "" && o.ReplayFraction > 0 {
		recs, err := ReadReplay(o.ReplayFile)
		if err != nil {
			return nil, err
		}
		if exs, err = enc.MixReplay(exs, recs, o.ReplayFraction, o.Seed); err != nil {
			return nil, err
		}
	}
	var vex []Example
	if len(cur.Validation) > 0 {
		if vex, err = enc.Items("validation", cur.Validation); err != nil {
			return nil, err
		}
	}
	return Fit(model, tok, *tmpl, exs, vex, given)
}

// f32Copy is a float32 master copy of a weight (a fresh tensor even when it is float32 already,
// so training never aliases the model's buffers).
func f32Copy(w *tensors.Tensor) (*tensors.Tensor, error) {
	if w.DType() == dtypes.Float32 {
		return w.Clone()
	}
	return checkpoint.Cast(w, dtypes.Float32)
}

// exportWeights returns the weights to save: the trained ones, or base + merged adapters.
func exportWeights(model *lm.Model, s *Setup, frozen, train []*tensors.Tensor, lora *LoRA) (map[string]*tensors.Tensor, error) {
	if lora != nil {
		return MergeLoRA(model.Weights(), s, train, *lora)
	}
	out := map[string]*tensors.Tensor{}
	for i, t := range s.Train {
		out[t.Name] = train[i]
	}
	return out, nil
}
