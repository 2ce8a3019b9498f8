package lm

import (
	"fmt"
	"strings"

	"github.com/gomlx/compute/dtypes"
)

// MemoryModel is implemented by architectures that can count the memory of their Logits graph's
// intermediate tensors from their config, for EstimateMemory (the trainer's pre-flight check,
// `perpetual bench` and `perpetual doctor --model`). Every family of this module implements it.
type MemoryModel interface {
	// ActivationBytes is the most memory, in bytes, that the intermediate tensors of Logits on
	// batch rows of T tokens, computed in dtype, hold at once on the Go backend: parameters
	// excluded, the float32 logits included.
	//
	// training false (scoring): the largest working set of one layer (layers run one after
	// another) or of the head.
	//
	// training true: what the forward pass keeps for the gradient, at the start of the backward
	// pass, when it is largest: every layer's saved tensors and the head's, plus the working set
	// of the layer being differentiated (about one more layer's saved tensors); the loss's own
	// tensors are EstimateMemory's (TrainingLossLogits).
	ActivationBytes(batch, T int, dtype dtypes.DType, training bool) int64
}

// MemoryMode says which path EstimateMemory estimates.
type MemoryMode int

const (
	// Scoring is Logits and LogLikelihood: the weights and one batch's forward pass.
	Scoring MemoryMode = iota
	// Training is one optimizer step of the trainer (package training): the forward and backward
	// pass, the loss (TokenLoss) and AdamW's state.
	Training
)

func (m MemoryMode) String() string {
	if m == Training {
		return "training"
	}
	return "scoring"
}

// Constants of EstimateMemory, measured on the Go backend (docs/runtime.md, "Memory estimates").
const (
	// RuntimeBytes is the process before any model: the Go runtime, GoMLX, the compiled graphs
	// of a small model. `perpetual bench` on a 0.2M-parameter Gemma peaks at 32-37 MiB.
	RuntimeBytes = 32 << 20
	// TrainedBytesPerParam is what the trainer keeps per trained scalar besides the model's
	// own weights: the float32 master copy, its gradient, the accumulator and the two AdamW
	// moments (5 float32).
	TrainedBytesPerParam = 5 * 4
	// PooledBytesPerParam is what the Go backend holds per trained scalar beyond that at the
	// peak of a training step: 2 float32, fitted on the measured peaks of 23 runs of 13
	// configs (docs/runtime.md). Most likely AdamW's parameter-sized temporaries of the
	// previous update, waiting in the backend's buffer pools, which only a garbage collection
	// empties.
	PooledBytesPerParam = 2 * 4
	// TrainingLossLogits is how many float32 [B, T, V] tensors the trainer's loss and its
	// gradient add to the logits at their peak (training.TokenLoss: the exponentials of the
	// shifted logits, the gather's dense gradient, the broadcast gradient of the sum and their
	// product; training's TestLossGraphPeak counts them).
	TrainingLossLogits = 4
)

// MemoryRequest describes the run EstimateMemory estimates.
type MemoryRequest struct {
	Mode MemoryMode
	// Batch rows of Length tokens per graph call (for scoring, the padded shape that
	// Model.ScoringShape reports).
	Batch, Length int
	// DType is the compute dtype (the zero value means Float32).
	DType dtypes.DType
	// WeightBytes is the size of the model's weights as held (0: every parameter in DType).
	WeightBytes int64
	// TrainedParams is the number of trained scalars (Training; 0: every parameter, full
	// fine-tuning; LoRA passes its adapters' size).
	TrainedParams int64
}

// MemoryEstimate is EstimateMemory's answer, in bytes.
type MemoryEstimate struct {
	Mode          MemoryMode
	Batch, Length int
	DType         dtypes.DType
	// Weights are the model's weights.
	Weights int64
	// Trained is, for training, TrainedBytesPerParam + PooledBytesPerParam per trained scalar,
	// plus the copy of each trained tensor in the compute dtype when that is not float32.
	Trained int64
	// Activations are the architecture's (MemoryModel), its logits included, plus for training
	// the loss's TrainingLossLogits logits-sized tensors.
	Activations int64
	// Runtime is RuntimeBytes.
	Runtime int64
	// Total is the sum: the peak resident memory of the process.
	Total int64
	// Modeled is false when the architecture has no MemoryModel: Activations then count only
	// the logits (and the loss's), an underestimate.
	Modeled bool
}

// EstimateMemory estimates the peak memory of scoring or training arch on r.Batch rows of
// r.Length tokens: the weights, for training the trainer's state per trained parameter, the
// activations the architecture counts (MemoryModel) and the runtime. It is calibrated on the Go
// backend, where it is within 15% of the measured peak RSS for every family
// (scripts/memory_check.sh, docs/runtime.md); XLA fuses and reuses buffers, so on a GPU it is
// an upper bound.
func EstimateMemory(arch Architecture, r MemoryRequest) MemoryEstimate {
	dtype := r.DType
	if dtype == dtypes.InvalidDType {
		dtype = dtypes.Float32
	}
	params := int64(NumParams(arch.Specs()))
	e := MemoryEstimate{Mode: r.Mode, Batch: r.Batch, Length: r.Length, DType: dtype, Weights: r.WeightBytes, Runtime: RuntimeBytes}
	if e.Weights == 0 {
		e.Weights = params * int64(dtype.Size())
	}
	training := r.Mode == Training
	logits := int64(r.Batch) * int64(r.Length) * int64(arch.VocabSize()) * 4
	if mm, ok := arch.(MemoryModel); ok {
		e.Modeled = true
		e.Activations = mm.ActivationBytes(r.Batch, r.Length, dtype, training)
	} else {
		e.Activations = logits
	}
	if training {
		trained := r.TrainedParams
		if trained == 0 {
			trained = params
		}
		e.Trained = trained * (TrainedBytesPerParam + PooledBytesPerParam)
		if dtype != dtypes.Float32 {
			e.Trained += trained * int64(dtype.Size())
		}
		e.Activations += TrainingLossLogits * logits
	}
	e.Total = e.Weights + e.Trained + e.Activations + e.Runtime
	return e
}

// String formats the estimate term by term (MiB below a GiB, GiB above).
func (e MemoryEstimate) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "weights %s", Bytes(e.Weights))
	if e.Mode == Training {
		fmt.Fprintf(&b, " + trained copies, gradients and moments %s", Bytes(e.Trained))
	}
	fmt.Fprintf(&b, " + activations %s + runtime %s = %s", Bytes(e.Activations), Bytes(e.Runtime), Bytes(e.Total))
	if !e.Modeled {
		b.WriteString(" (the architecture has no memory model: activations are the logits only)")
	}
	return b.String()
}

// GiB formats bytes as GiB with two decimals.
func GiB(n int64) string { return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30)) }

// Bytes formats bytes as MiB with one decimal below a GiB, as GiB with two above.
func Bytes(n int64) string {
	if n < 1<<30 {
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return GiB(n)
}
