package training

import (
	"fmt"
	"math"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph code reads like the equations
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/models/lm"
)

// Trainable is one parameter the optimizer updates.
type Trainable struct {
	Name  string
	Shape []int
	// Decay says whether AdamW's decoupled weight decay applies (not for norms, biases, 1-D).
	Decay bool
}

// Setup is what the step graphs need to know about the model: its architecture, the frozen
// inputs (full fine-tuning: none; LoRA: the base weights), the trainables, and how to build the
// architecture's Params from both.
type Setup struct {
	Arch lm.Architecture
	// Frozen are names of graph inputs that are read but not trained.
	Frozen []lm.ParamSpec
	// Train are the trained parameters.
	Train []Trainable
	// Params builds the architecture's parameter accessor from the frozen and trained nodes.
	Params func(frozen, train []*Node) lm.Params
}

// FullSetup trains every parameter of arch. Trained weights are float32 master copies; with a
// bfloat16/float16 compute dtype they are converted to it where the architecture reads them, so
// the forward pass runs in the model's dtype while updates accumulate in float32.
func FullSetup(arch lm.Architecture, compute dtypes.DType) *Setup {
	specs := arch.Specs()
	tr := make([]Trainable, len(specs))
	for i, s := range specs {
		tr[i] = Trainable{Name: s.Name, Shape: s.Shape, Decay: decays(s.Name, s.Shape)}
	}
	return &Setup{Arch: arch, Train: tr, Params: func(_, train []*Node) lm.Params {
		if compute != dtypes.Float32 && compute != dtypes.InvalidDType {
			cast := make([]*Node, len(train))
			for i, t := range train {
				cast[i] = ConvertDType(t, compute)
			}
			train = cast
		}
		return lm.ParamsFor(arch.Family(), specs, train)
	}}
}

// decays follows the usual recipe (Hugging Face Trainer): no weight decay on biases, norm
// weights and other 1-D parameters, nor on Mamba's A_log (a log-decay rate, not a weight:
// decaying it towards 0 would pull every state's decay towards exp(-1)).
func decays(name string, shape []int) bool {
	if len(shape) < 2 {
		return false
	}
	n := strings.ToLower(name)
	return !strings.Contains(n, "norm") && !strings.HasSuffix(n, ".bias") && !strings.HasSuffix(n, "a_log")
}

// Hyper are the optimizer settings of one update.
type Hyper struct {
	LR, WeightDecay, Beta1, Beta2, Eps, ClipNorm float64
}

// Steps holds the compiled graphs of one Setup: the accumulate step (loss and gradients of one
// micro-batch added to on-device accumulators), the apply step (clipping + AdamW) and the
// evaluation step (loss only).
type Steps struct {
	setup                       *Setup
	backend                     compute.Backend
	first, accum, apply, evalLs *Exec
}

// NewSteps compiles (lazily, on first use) the step graphs on backend.
func NewSteps(backend compute.Backend, s *Setup) (*Steps, error) {
	nf, nt := len(s.Frozen), len(s.Train)
	st := &Steps{setup: s, backend: backend}
	var err error
	// The first micro-batch of a step starts the accumulators from its own gradients, so no
	// zeros are uploaded each step.
	st.first, err = NewExec(backend, func(in []*Node) []*Node {
		frozen, train, batch := in[:nf], in[nf:nf+nt], in[nf+nt:]
		sum, count := lossSum(s, frozen, train, batch, true)
		return append(Gradient(sum, train...), sum, count)
	})
	if err != nil {
		return nil, err
	}
	// Inputs: frozen..., train..., acc..., tokens, positions, segments, targets, weights.
	st.accum, err = NewExec(backend, func(in []*Node) []*Node {
		frozen, train, acc, batch := in[:nf], in[nf:nf+nt], in[nf+nt:nf+2*nt], in[nf+2*nt:]
		sum, count := lossSum(s, frozen, train, batch, true)
		grads := Gradient(sum, train...)
		out := make([]*Node, 0, nt+2)
		for i, g := range grads {
			out = append(out, Add(acc[i], g))
		}
		return append(out, sum, count)
	})
	if err != nil {
		return nil, err
	}
	// Inputs: train..., m..., v..., acc..., lr, bc1, bc2, count, wd, b1, b2, eps, clip (f32 scalars).
	st.apply, err = NewExec(backend, func(in []*Node) []*Node {
		train, m, v, acc, sc := in[:nt], in[nt:2*nt], in[2*nt:3*nt], in[3*nt:4*nt], in[4*nt:]
		lr, bc1, bc2, count, wd, b1, b2, eps, clip := sc[0], sc[1], sc[2], sc[3], sc[4], sc[5], sc[6], sc[7], sc[8]
		inv := Inverse(Max(count, OnePlus(ZerosLike(count))))
		grads := make([]*Node, nt)
		sq := ScalarZero(train[0].Graph(), dtypes.Float32)
		for i := range acc {
			grads[i] = Mul(acc[i], inv)
			sq = Add(sq, ReduceAllSum(Square(grads[i])))
		}
		norm := Sqrt(sq)
		// Global-norm clipping as torch.nn.utils.clip_grad_norm_: scale = min(1, clip/(norm+1e-6)).
		scale := Min(OnePlus(ZerosLike(norm)), Div(clip, AddScalar(norm, 1e-6)))
		outW, outM, outV := make([]*Node, nt), make([]*Node, nt), make([]*Node, nt)
		for i, p := range train {
			g := Mul(grads[i], scale)
			p2 := p
			if s.Train[i].Decay {
				p2 = Sub(p, Mul(Mul(lr, wd), p)) // decoupled weight decay (AdamW), before the Adam step
			}
			mi := Add(Mul(b1, m[i]), Mul(OneMinus(b1), g))
			vi := Add(Mul(b2, v[i]), Mul(OneMinus(b2), Square(g)))
			mhat := Div(mi, bc1)
			vhat := Div(vi, bc2)
			outW[i] = Sub(p2, Mul(lr, Div(mhat, Add(Sqrt(vhat), eps))))
			outM[i], outV[i] = mi, vi
		}
		out := append(append(outW, outM...), outV...)
		return append(out, norm)
	})
	if err != nil {
		return nil, err
	}
	st.evalLs, err = NewExec(backend, func(in []*Node) []*Node {
		sum, count := lossSum(s, in[:nf], in[nf:nf+nt], in[nf+nt:], false)
		return []*Node{sum, count}
	})
	if err != nil {
		return nil, err
	}
	for _, e := range []*Exec{st.first, st.accum, st.apply, st.evalLs} {
		e.SetMaxCache(-1)
	}
	return st, nil
}

// lossSum is the summed cross-entropy over weighted target positions, and the number of them
// (the sum of the weights); grad says the graph takes its gradient (lm.TrainingLogits).
func lossSum(s *Setup, frozen, train, batch []*Node, grad bool) (sum, count *Node) {
	tokens, positions, segments, targets, weights := batch[0], batch[1], batch[2], batch[3], batch[4]
	var logits *Node // f32 [B,T,V]
	if ta, ok := s.Arch.(lm.TrainingLogits); ok && grad {
		logits = ta.TrainingLogits(s.Params(frozen, train), tokens, positions, segments)
	} else {
		logits = s.Arch.Logits(s.Params(frozen, train), tokens, positions, segments)
	}
	nll := TokenLoss(logits, targets) // [B,T]
	return ReduceAllSum(Mul(nll, weights)), ReduceAllSum(weights)
}

// TokenLoss is the next-token cross-entropy -log softmax(logits)[target] at every position:
// float32 logits [B, T, V] and integer targets [B, T] (each in [0, V)) give float32 [B, T].
// It is logsumexp(logits) - logits[target], the logsumexp shifted by the (gradient-stopped)
// row maximum so exp never overflows, and the target's logit gathered by index: no [B, T, V]
// one-hot or log-softmax tensor is built (at gemma-2b's vocabulary and 2 x 2,048 tokens each
// of those is 4 GiB). Its gradient with respect to the logits is softmax - one-hot, as for
// the log-softmax form.
func TokenLoss(logits, targets *Node) *Node {
	g := logits.Graph()
	dims := targets.Shape().Dimensions
	if logits.Rank() != 3 || len(dims) != 2 || logits.Shape().Dimensions[0] != dims[0] || logits.Shape().Dimensions[1] != dims[1] {
		panic(fmt.Sprintf("training.TokenLoss: logits %s and targets %s: want [B, T, V] and [B, T]", logits.Shape(), targets.Shape()))
	}
	maxLogit := StopGradient(ReduceAndKeep(logits, ReduceMax, -1))                    // [B,T,1]
	lse := Add(Log(ReduceSum(Exp(Sub(logits, maxLogit)), -1)), Squeeze(maxLogit, -1)) // [B,T]
	index := shapes.Make(dtypes.Int32, dims...)
	at := Concatenate([]*Node{
		ExpandAxes(Iota(g, index, 0), -1),
		ExpandAxes(Iota(g, index, 1), -1),
		ExpandAxes(ConvertDType(targets, dtypes.Int32), -1),
	}, -1) // [B,T,3]: (row, position, target)
	return Sub(lse, Gather(logits, at))
}

func batchArgs(b Batch) []any {
	return []any{
		tensors.FromFlatDataAndDimensions(b.Tokens, b.B, b.T),
		tensors.FromFlatDataAndDimensions(b.Positions, b.B, b.T),
		tensors.FromFlatDataAndDimensions(b.Segments, b.B, b.T),
		tensors.FromFlatDataAndDimensions(b.Targets, b.B, b.T),
		tensors.FromFlatDataAndDimensions(b.Weights, b.B, b.T),
	}
}

func exec(e *Exec, args []any) (out []*tensors.Tensor, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("training graph: %v", r)
		}
	}()
	return e.Exec(args...)
}

func anys(ts ...[]*tensors.Tensor) []any {
	var out []any
	for _, l := range ts {
		for _, t := range l {
			out = append(out, t)
		}
	}
	return out
}

// Accumulate adds one micro-batch's gradients (of the summed loss) to acc (nil: start new
// accumulators) and returns the new accumulators, the summed loss and the number of target
// tokens. acc's buffers are donated to the result: do not use them afterwards.
func (st *Steps) Accumulate(frozen, train, acc []*tensors.Tensor, b Batch) ([]*tensors.Tensor, float64, float64, error) {
	var out []*tensors.Tensor
	var err error
	if acc == nil {
		out, err = exec(st.first, append(anys(frozen, train), batchArgs(b)...))
	} else {
		var donated []any
		if donated, err = st.donate(acc); err == nil {
			out, err = exec(st.accum, append(append(anys(frozen, train), donated...), batchArgs(b)...))
		}
	}
	if err != nil {
		return nil, 0, 0, err
	}
	n := len(st.setup.Train)
	return out[:n], float64(tensors.ToScalar[float32](out[n])), float64(tensors.ToScalar[float32](out[n+1])), nil
}

// donate hands the buffers of ts to the next graph run, which may reuse them for its outputs
// (the state of a training loop is replaced every step, so this halves its memory).
func (st *Steps) donate(lists ...[]*tensors.Tensor) ([]any, error) {
	var out []any
	for _, l := range lists {
		for _, t := range l {
			d, err := DonateTensorBuffer(t, st.backend, 0)
			if err != nil {
				return nil, fmt.Errorf("training: donating a buffer: %w", err)
			}
			out = append(out, d)
		}
	}
	return out, nil
}

// Apply averages the accumulated gradients over count target tokens, clips them to the global
// norm h.ClipNorm and takes one AdamW step (step is 1-based, for the bias corrections). It
// returns the new weights and moments and the gradient norm before clipping. The buffers of
// train, m, v and acc are donated to the results: do not use them afterwards (pass copies of
// weights the caller still needs).
func (st *Steps) Apply(train, m, v, acc []*tensors.Tensor, h Hyper, step int, count float64) (nt, nm, nv []*tensors.Tensor, gradNorm float64, err error) {
	bc1 := 1 - math.Pow(h.Beta1, float64(step))
	bc2 := 1 - math.Pow(h.Beta2, float64(step))
	clip := h.ClipNorm
	if clip <= 0 {
		clip = math.MaxFloat32
	}
	args, err := st.donate(train, m, v, acc)
	if err != nil {
		return nil, nil, nil, 0, err
	}
	for _, x := range []float64{h.LR, bc1, bc2, count, h.WeightDecay, h.Beta1, h.Beta2, h.Eps, clip} {
		args = append(args, tensors.FromScalar(float32(x)))
	}
	out, err := exec(st.apply, args)
	if err != nil {
		return nil, nil, nil, 0, err
	}
	n := len(train)
	return out[:n], out[n : 2*n], out[2*n : 3*n], float64(tensors.ToScalar[float32](out[3*n])), nil
}

// Loss returns the summed loss and target count of a batch (no gradients).
func (st *Steps) Loss(frozen, train []*tensors.Tensor, b Batch) (float64, float64, error) {
	out, err := exec(st.evalLs, append(anys(frozen, train), batchArgs(b)...))
	if err != nil {
		return 0, 0, err
	}
	return float64(tensors.ToScalar[float32](out[0])), float64(tensors.ToScalar[float32](out[1])), nil
}

// State is what optimizer steps read and replace: the frozen graph inputs (LoRA's base
// weights; none for full fine-tuning), the float32 trained tensors and their AdamW moments.
type State struct {
	Frozen, Train, M, V []*tensors.Tensor
}

// NewState is the start of training model: full fine-tuning (a float32 master copy of every
// weight, never aliasing the model's buffers) or, with lora, the model's weights frozen and
// fresh adapters seeded by seed. The moments are zero. Fit starts from it (or from a
// checkpoint); Bench too.
func NewState(model *lm.Model, lora *LoRA, seed int64) (*Setup, *State, error) {
	var setup *Setup
	state := &State{}
	if lora != nil {
		var init []*tensors.Tensor
		var err error
		if setup, init, err = LoRASetup(model.Arch(), *lora, seed); err != nil {
			return nil, nil, err
		}
		state.Frozen, state.Train = model.WeightList(), init
	} else {
		setup = FullSetup(model.Arch(), model.DType())
		for _, w := range model.WeightList() {
			c, err := f32Copy(w)
			if err != nil {
				return nil, nil, err
			}
			state.Train = append(state.Train, c)
		}
	}
	state.M, state.V = setup.Zeros(), setup.Zeros()
	return setup, state, nil
}

// StepStats is what one optimizer step reports.
type StepStats struct {
	// LossSum is the summed weighted cross-entropy of the step's micro-batches and Count the
	// sum of their weights (the number of target tokens).
	LossSum, Count float64
	// GradNorm is the global gradient norm before clipping.
	GradNorm float64
}

// Loss is the mean cross-entropy per target token.
func (s StepStats) Loss() float64 { return s.LossSum / math.Max(1, s.Count) }

// NonFiniteLossError is Step's refusal to update the weights from a NaN or infinite loss; the
// state is left as it was.
type NonFiniteLossError struct {
	Loss float64
}

func (e *NonFiniteLossError) Error() string {
	return fmt.Sprintf("training: loss is %v; the weights were not updated", e.Loss)
}

// Step is one optimizer step of the trainer on state: the loss and gradients of each
// micro-batch accumulated on the device (Accumulate), then, when the mean loss is finite,
// global-norm clipping and AdamW at h (Apply; step is 1-based, for the bias corrections). On
// success state holds the new weights and moments (the old buffers were donated). A NaN or
// infinite loss returns a *NonFiniteLossError and leaves state untouched; the gradient norm is
// reported, not checked. Fit and Bench run their steps through it.
func (st *Steps) Step(state *State, micro []Batch, h Hyper, step int) (StepStats, error) {
	var stats StepStats
	if len(micro) == 0 {
		return stats, fmt.Errorf("training: an optimizer step needs at least one micro-batch")
	}
	var acc []*tensors.Tensor
	for _, b := range micro {
		var s, c float64
		var err error
		if acc, s, c, err = st.Accumulate(state.Frozen, state.Train, acc, b); err != nil {
			return stats, err
		}
		stats.LossSum, stats.Count = stats.LossSum+s, stats.Count+c
	}
	if l := stats.Loss(); math.IsNaN(l) || math.IsInf(l, 0) {
		return stats, &NonFiniteLossError{Loss: l}
	}
	train, m, v, gn, err := st.Apply(state.Train, state.M, state.V, acc, h, step, stats.Count)
	if err != nil {
		return stats, err
	}
	state.Train, state.M, state.V = train, m, v
	stats.GradNorm = gn
	return stats, nil
}

// Zeros returns float32 zero tensors shaped like the trainables (moments, accumulators).
func (s *Setup) Zeros() []*tensors.Tensor {
	out := make([]*tensors.Tensor, len(s.Train))
	for i, t := range s.Train {
		out[i] = tensors.FromShape(shapes.Make(dtypes.Float32, t.Shape...))
	}
	return out
}
