// Package bench times Perpetual's production paths on one model and says how close they come
// to the machine: scoring through lm.Model.LogLikelihood (what evaluation runs) and the
// trainer's optimizer step (training.Bench: Fit's own step, loss, packing and AdamW). Each is
// run Warmup times (compilation), then Repeats times under the clock; the report has the median
// and range of the seconds per run, tokens/s, the achieved GFLOP/s from the architecture's FLOP
// count (lm.FLOPCounter; a training step is 3 x the forward), the float32 matmul rate measured
// in the same process on the same backend and the resulting utilisation, and peak memory (the
// process's peak RSS, VmHWM, and the Go heap). The generation phase, asked for by name, times
// lm.Model.Generate (what `perpetual generate` runs) per prompt length: prefill and decoding
// speed. `perpetual bench` prints it as text or JSON.
package bench

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/training"
)

// Phases that Options.Phases may name.
const (
	// PhaseScoring is LogLikelihood on Batch requests of Length context tokens and a one-token
	// continuation (the evaluation's scoring path, one graph call per batch).
	PhaseScoring = "scoring"
	// PhaseTraining is one optimizer step of the trainer on Batch packed rows of Length tokens.
	PhaseTraining = "training"
	// PhaseGeneration is greedy lm.Model.Generate of GenTokens tokens after a random prompt of
	// each GenPrompts length, with the decoding cache (or recurrent state) of production. It is
	// timed only when named, so the default run (scoring and training) stays what it was.
	PhaseGeneration = "generation"
)

// Options say what to time.
type Options struct {
	// Batch is the number of rows (requests for scoring, packed rows for training) per run.
	Batch int
	// Length is the number of tokens per row.
	Length int
	// Warmup runs are not timed (the first compiles the graphs); at least 1.
	Warmup int
	// Repeats are the timed runs; at least 1.
	Repeats int
	// Matmul is the side of the square float32 matrix product that measures the machine's
	// peak (0 skips it, and the report has no utilisation).
	Matmul int
	// Seed makes the tokens (and the training bench's packing) reproducible.
	Seed int64
	// Phases are PhaseScoring, PhaseTraining and/or PhaseGeneration (empty: scoring and
	// training).
	Phases []string
	// GenPrompts are the prompt lengths of the generation phase, in tokens (empty:
	// DefaultGenPrompts, lowered to fit the window; see GenPromptsFor).
	GenPrompts []int
	// GenTokens is the number of tokens each generation run produces, at least 2 (the first
	// comes from the prefill, the others from decoding steps); checked only when the
	// generation phase is asked for or the field is set, so callers that time scoring and
	// training need not set it.
	GenTokens int
	// MemoryLimit in bytes bounds the trainer's memory estimate of the training phase, which is
	// refused above it before any copy of the weights is made (0: MemAvailable, as the trainer).
	MemoryLimit int64
	// Progress, when set, receives a line as each part starts.
	Progress io.Writer
}

// Validate checks the options before anything is loaded; errors name the flag of `perpetual
// bench` that sets the field.
func (o Options) Validate() error {
	// --batch and --length shape the scoring and training runs only; a generation-only run
	// does not read them.
	rows := o.wants(PhaseScoring) || o.wants(PhaseTraining)
	switch {
	case rows && o.Batch < 1:
		return fmt.Errorf("bench: --batch %d: need at least 1 row per run", o.Batch)
	case rows && o.Length < 2:
		return fmt.Errorf("bench: --length %d: a row needs at least 2 tokens (training predicts each next token)", o.Length)
	case (o.wants(PhaseGeneration) || o.GenTokens != 0) && o.GenTokens < 2:
		return fmt.Errorf("bench: --gen-tokens %d: need at least 2 new tokens (the first comes from the prefill, the rest are the timed decoding steps)", o.GenTokens)
	case o.Warmup < 1:
		return fmt.Errorf("bench: --warmup %d: need at least 1 untimed run (the first run compiles the graphs)", o.Warmup)
	case o.Repeats < 1:
		return fmt.Errorf("bench: --repeats %d: need at least 1 timed run", o.Repeats)
	case o.MemoryLimit < 0:
		return fmt.Errorf("bench: --memory-limit: %d bytes must not be negative (0: MemAvailable)", o.MemoryLimit)
	case o.Matmul < 0:
		return fmt.Errorf("bench: --matmul %d: the side of the probe's square matrices must be positive (0 skips the probe)", o.Matmul)
	}
	for _, p := range o.Phases {
		if p != PhaseScoring && p != PhaseTraining && p != PhaseGeneration {
			return fmt.Errorf("bench: --phases: unknown phase %q (use %s, %s and/or %s)", p, PhaseScoring, PhaseTraining, PhaseGeneration)
		}
	}
	for _, p := range o.GenPrompts {
		if p < 1 {
			return fmt.Errorf("bench: --gen-prompts %d: a prompt needs at least 1 token", p)
		}
	}
	return nil
}

// ValidateFor checks the options against the model's architecture (its window), before its
// weights are loaded or made.
func (o Options) ValidateFor(arch lm.Architecture) error {
	if err := o.Validate(); err != nil {
		return err
	}
	if ml := arch.MaxLength(); ml > 0 && o.Length > ml && (o.wants(PhaseScoring) || o.wants(PhaseTraining)) {
		return fmt.Errorf("bench: --length %d exceeds the %s model's maximum length %d (max_position_embeddings); use --length %d or less", o.Length, arch.Family(), ml, ml)
	}
	if o.wants(PhaseGeneration) {
		if _, err := o.GenPromptsFor(arch); err != nil {
			return err
		}
	}
	return nil
}

// wants says whether phase is to be timed; no Phases means the scoring and training phases
// (the generation phase is opt-in: it was added later, and default runs keep their cost).
func (o Options) wants(phase string) bool {
	if len(o.Phases) == 0 {
		return phase == PhaseScoring || phase == PhaseTraining
	}
	return slices.Contains(o.Phases, phase)
}

// Report is the result of Run; its JSON form is what `perpetual bench --json` prints.
type Report struct {
	// Date is when the run started, RFC 3339 in UTC.
	Date    string    `json:"date"`
	Machine Machine   `json:"machine"`
	Model   ModelInfo `json:"model"`
	Batch   int       `json:"batch"`
	Length  int       `json:"length"`
	Warmup  int       `json:"warmup"`
	Repeats int       `json:"repeats"`
	// Matmul is the measured float32 matmul rate (nil when skipped).
	Matmul   *MatmulPeak `json:"matmul_peak,omitempty"`
	Scoring  *Phase      `json:"scoring,omitempty"`
	Training *Phase      `json:"training,omitempty"`
	// Generation is the generation phase (nil when not asked for).
	Generation *Generation `json:"generation,omitempty"`
}

// ModelInfo identifies the model timed.
type ModelInfo struct {
	Family string `json:"family"`
	// Source is the model folder or the config file (random weights).
	Source string `json:"source"`
	Params int64  `json:"params"`
	Vocab  int    `json:"vocab"`
	DType  string `json:"dtype"`
}

// Phase is the timing of one production path.
type Phase struct {
	// Tokens is the number of tokens one run processes (Batch x Length; scoring's padding
	// excluded).
	Tokens int `json:"tokens"`
	// Seconds are the timed runs, in order.
	Seconds []float64 `json:"seconds"`
	// MedianS, MinS and MaxS summarise Seconds.
	MedianS float64 `json:"median_s"`
	MinS    float64 `json:"min_s"`
	MaxS    float64 `json:"max_s"`
	// TokensPerS is Tokens / MedianS; TokensPerSMin and TokensPerSMax come from MaxS and MinS.
	TokensPerS    float64 `json:"tokens_per_s"`
	TokensPerSMin float64 `json:"tokens_per_s_min"`
	TokensPerSMax float64 `json:"tokens_per_s_max"`
	// FLOPs is the arithmetic of one run from the architecture's count (0: the architecture
	// does not count); scoring counts its padded rows and width, which the graph computes.
	FLOPs float64 `json:"flops"`
	// GFLOPS is FLOPs / MedianS / 1e9, and Utilisation that over the matmul peak.
	GFLOPS      float64 `json:"gflops"`
	Utilisation float64 `json:"utilisation"`
	// CPUSeconds is the process's CPU time (user + system, all threads) of each timed run,
	// CPUGFLOPS FLOPs over their median / 1e9 (the work per CPU second, which other processes
	// on the machine lower far less than the wall-clock rate) and CPUUtilisation that over the
	// matmul probe's CPUGFLOPS. Empty or zero where the CPU time is unknown.
	CPUSeconds     []float64 `json:"cpu_seconds,omitempty"`
	CPUGFLOPS      float64   `json:"cpu_gflops,omitempty"`
	CPUUtilisation float64   `json:"cpu_utilisation,omitempty"`
	Memory         Memory    `json:"memory"`

	// Scoring: graph calls per run, rows run in all (padding included) and their width.
	Calls      int `json:"calls,omitempty"`
	PaddedRows int `json:"padded_rows,omitempty"`
	Width      int `json:"width,omitempty"`

	// Training: loss targets per step, the mean loss of the first and last step run (the
	// same batch every step, so it falls).
	Targets   int     `json:"targets,omitempty"`
	LossFirst float64 `json:"loss_first,omitempty"`
	LossLast  float64 `json:"loss_last,omitempty"`

	// EstimatedBytes is lm.EstimateMemory for the phase (training: the trainer's pre-flight
	// check; scoring: the largest call), to compare with Memory.PeakRSSBytes.
	EstimatedBytes int64 `json:"estimated_bytes,omitempty"`
}

// Memory is what a phase used at its peak.
type Memory struct {
	// PeakRSSBytes is the process's peak resident set (VmHWM of /proc/self/status), weights
	// included.
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	// PeakRSSScope is "phase" when the peak was reset before the phase (writing 5 to
	// /proc/self/clear_refs), "process" when it could not be (the peak since the start).
	PeakRSSScope string `json:"peak_rss_scope"`
	// GoHeapPeakBytes is the largest live Go heap seen after a run (a lower bound: it is
	// sampled between runs); GoSysBytes the memory the Go runtime held from the OS at the end.
	GoHeapPeakBytes uint64 `json:"go_heap_peak_bytes"`
	GoSysBytes      uint64 `json:"go_sys_bytes"`
}

// Run times the phases o asks for on model. source names the model in the report (its folder,
// or the config file of random weights).
func Run(model *lm.Model, source string, o Options) (*Report, error) {
	arch := model.Arch()
	if err := o.ValidateFor(arch); err != nil {
		return nil, err
	}
	if o.wants(PhaseTraining) {
		if err := checkTrainingMemory(model, o); err != nil {
			return nil, err
		}
	}
	var genPrompts []int
	if o.wants(PhaseGeneration) {
		var err error
		if genPrompts, err = o.GenPromptsFor(arch); err != nil {
			return nil, err
		}
	}
	r := &Report{
		Date:    time.Now().UTC().Format(time.RFC3339),
		Machine: machineInfo(model.Backend()),
		Model:   ModelInfo{Family: arch.Family(), Source: source, Params: numParams(arch), Vocab: arch.VocabSize(), DType: model.DType().String()},
		Batch:   o.Batch, Length: o.Length, Warmup: o.Warmup, Repeats: o.Repeats,
	}
	progress := func(format string, args ...any) {
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, format+"\n", args...)
		}
	}
	var forward float64 // FLOPs of Logits on one row of Length tokens
	counter, counts := arch.(lm.FLOPCounter)
	if counts {
		forward = counter.LogitsFLOPs(o.Length)
	}
	if o.Matmul > 0 {
		progress("bench: float32 matmul peak (%d^3)", o.Matmul)
		peak, err := MeasureMatmul(model.Backend(), o.Matmul, o.Warmup, o.Repeats)
		if err != nil {
			return nil, err
		}
		r.Matmul = peak
	}
	if o.wants(PhaseScoring) {
		progress("bench: scoring %d x %d tokens (LogLikelihood)", o.Batch, o.Length)
		reqs, err := scoringRequests(o.Batch, o.Length, arch.VocabSize(), o.Seed)
		if err != nil {
			return nil, err
		}
		p, err := timePhase(o, func() error {
			res, err := model.LogLikelihood(reqs, o.Batch)
			if err != nil {
				return err
			}
			for i, x := range res {
				if math.IsNaN(x.LogProb) || math.IsInf(x.LogProb, 0) {
					return fmt.Errorf("bench: scoring request %d: log-probability %v", i, x.LogProb)
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		p.Tokens = o.Batch * o.Length
		p.Calls, p.PaddedRows, p.Width = model.ScoringShape(o.Batch, o.Length, o.Batch)
		p.EstimatedBytes = scoringEstimate(model, p)
		if counts {
			p.FLOPs = float64(p.PaddedRows) * counter.LogitsFLOPs(p.Width)
		}
		r.Scoring = p
	}
	if o.wants(PhaseTraining) {
		progress("bench: training step %d x %d tokens (trainer: packing, loss, AdamW)", o.Batch, o.Length)
		tb, err := training.NewBench(model, o.Batch, o.Length, o.Seed)
		if err != nil {
			return nil, err
		}
		var first, last float64
		steps := 0
		p, err := timePhase(o, func() error {
			stats, err := tb.Step()
			if err != nil {
				return err
			}
			if steps == 0 {
				first = stats.Loss()
			}
			last = stats.Loss()
			steps++
			return nil
		})
		if err != nil {
			return nil, err
		}
		p.Tokens, p.Targets = tb.Tokens(), tb.Targets()
		p.LossFirst, p.LossLast = first, last
		p.EstimatedBytes = tb.Memory(model).Total
		p.FLOPs = 3 * float64(o.Batch) * forward
		r.Training = p
	}
	if o.wants(PhaseGeneration) {
		g, err := runGeneration(model, o, genPrompts, progress)
		if err != nil {
			return nil, err
		}
		r.Generation = g
	}
	for _, p := range []*Phase{r.Scoring, r.Training} {
		if p == nil {
			continue
		}
		p.TokensPerS = float64(p.Tokens) / p.MedianS
		p.TokensPerSMin, p.TokensPerSMax = float64(p.Tokens)/p.MaxS, float64(p.Tokens)/p.MinS
		if p.FLOPs > 0 {
			p.GFLOPS = p.FLOPs / p.MedianS / 1e9
			if r.Matmul != nil && r.Matmul.GFLOPS > 0 {
				p.Utilisation = p.GFLOPS / r.Matmul.GFLOPS
			}
			if len(p.CPUSeconds) > 0 {
				if cpu, _, _ := summarize(p.CPUSeconds); cpu > 0 {
					p.CPUGFLOPS = p.FLOPs / cpu / 1e9
					if r.Matmul != nil && r.Matmul.CPUGFLOPS > 0 {
						p.CPUUtilisation = p.CPUGFLOPS / r.Matmul.CPUGFLOPS
					}
				}
			}
		}
	}
	return r, nil
}

// checkTrainingMemory refuses a training phase whose memory estimate (the trainer's pre-flight
// check, lm.EstimateMemory: weights, 5 float32 copies of every trained tensor, the
// architecture's activations and the loss) exceeds o.MemoryLimit or MemAvailable, before the
// float32 master copies are made.
func checkTrainingMemory(model *lm.Model, o Options) error {
	limit := o.MemoryLimit
	if limit == 0 {
		limit = training.AvailableMemory()
	}
	if limit <= 0 {
		return nil
	}
	e := training.EstimateMemory(training.FullSetup(model.Arch(), model.DType()), model, o.Batch, o.Length)
	if e.Total > limit {
		return fmt.Errorf("bench: the training step needs about %s (%s, for %d x %d tokens) but the limit is %s; lower --batch or --length, time --phases scoring only, or raise --memory-limit",
			lm.GiB(e.Total), e, o.Batch, o.Length, lm.GiB(limit))
	}
	return nil
}

// scoringEstimate is lm.EstimateMemory for the largest scoring call of p (rows per call rounded
// up to a power of two, as LogLikelihood runs them).
func scoringEstimate(model *lm.Model, p *Phase) int64 {
	rows := 1
	for rows*p.Calls < p.PaddedRows {
		rows *= 2
	}
	var weights int64
	for _, w := range model.WeightList() {
		weights += int64(w.Shape().Memory())
	}
	return lm.EstimateMemory(model.Arch(), lm.MemoryRequest{Mode: lm.Scoring, Batch: rows, Length: p.Width,
		DType: model.DType(), WeightBytes: weights}).Total
}

// timePhase runs fn o.Warmup times, then o.Repeats times under the clock, and records the
// memory peaks of the phase (the peak RSS reset first where the kernel allows it).
func timePhase(o Options, fn func() error) (*Phase, error) {
	p := &Phase{}
	p.Memory.PeakRSSScope = "process"
	if resetPeakRSS() {
		p.Memory.PeakRSSScope = "phase"
	}
	var heap heapSampler
	for range o.Warmup {
		if err := fn(); err != nil {
			return nil, err
		}
		heap.sample()
	}
	cpuKnown := true
	for range o.Repeats {
		c0, ok0 := cpuSeconds()
		t0 := time.Now()
		if err := fn(); err != nil {
			return nil, err
		}
		p.Seconds = append(p.Seconds, time.Since(t0).Seconds())
		c1, ok1 := cpuSeconds()
		cpuKnown = cpuKnown && ok0 && ok1
		p.CPUSeconds = append(p.CPUSeconds, c1-c0)
		heap.sample()
	}
	if !cpuKnown {
		p.CPUSeconds = nil
	}
	p.MedianS, p.MinS, p.MaxS = summarize(p.Seconds)
	p.Memory.PeakRSSBytes = peakRSS()
	p.Memory.GoHeapPeakBytes, p.Memory.GoSysBytes = heap.peak, heap.sys
	return p, nil
}

// summarize returns the median (the mean of the middle two for an even count), minimum and
// maximum of xs (non-empty).
func summarize(xs []float64) (median, lo, hi float64) {
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	median = s[n/2]
	if n%2 == 0 {
		median = (s[n/2-1] + s[n/2]) / 2
	}
	return median, s[0], s[n-1]
}

// scoringRequests are batch distinct requests whose model input is exactly length tokens: a
// context of length random tokens and a one-token continuation (LogLikelihood reads
// (context + continuation)[:-1], and requests with the same input would share a row).
func scoringRequests(batch, length, vocab int, seed int64) ([]lm.Request, error) {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5c0e))
	reqs := make([]lm.Request, batch)
	seen := map[string]bool{}
	for i := range reqs {
		ctx := make([]int32, length)
		for try := 0; ; try++ {
			if try == 100 {
				return nil, fmt.Errorf("bench: cannot draw %d distinct rows of %d tokens from a vocabulary of %d; use a larger --length", batch, length, vocab)
			}
			for j := range ctx {
				ctx[j] = int32(rng.IntN(vocab))
			}
			if key := fmt.Sprint(ctx); !seen[key] {
				seen[key] = true
				break
			}
		}
		reqs[i] = lm.Request{Context: ctx, Continuation: []int32{int32(rng.IntN(vocab))}}
	}
	return reqs, nil
}

func numParams(arch lm.Architecture) int64 {
	var n int64
	for _, s := range arch.Specs() {
		k := int64(1)
		for _, d := range s.Shape {
			k *= int64(d)
		}
		n += k
	}
	return n
}
