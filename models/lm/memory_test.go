package lm

import (
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
)

// countedArch is the test architecture with a memory model that reports fixed activations.
type countedArch struct {
	*meanArch
	activations int64
	seen        []any
}

func (a *countedArch) ActivationBytes(batch, T int, dtype dtypes.DType, training bool) int64 {
	a.seen = []any{batch, T, dtype, training}
	return a.activations
}

// EstimateMemory adds its terms as documented, by hand: vocab 100 and hidden 8 are
// 100*8 + 8 + 100*8 = 1,608 parameters (embedding, drift, head).
func TestEstimateMemoryTerms(t *testing.T) {
	base := &meanArch{cfg: meanConfig{ModelType: testFamily, Vocab: 100, Hidden: 8, MaxPos: 16}}
	if n := NumParams(base.Specs()); n != 1608 {
		t.Fatalf("NumParams = %d, want 1608 (the hand count below assumes it)", n)
	}
	arch := &countedArch{meanArch: base, activations: 1 << 20}
	logits := int64(2 * 16 * 100 * 4) // float32 [2, 16, 100]

	e := EstimateMemory(arch, MemoryRequest{Mode: Scoring, Batch: 2, Length: 16})
	want := MemoryEstimate{Mode: Scoring, Batch: 2, Length: 16, DType: dtypes.Float32, Weights: 1608 * 4,
		Activations: 1 << 20, Runtime: RuntimeBytes, Total: 1608*4 + 1<<20 + RuntimeBytes, Modeled: true}
	if e != want {
		t.Errorf("scoring, float32:\n got %+v\nwant %+v", e, want)
	}
	if arch.seen[0] != 2 || arch.seen[1] != 16 || arch.seen[2] != dtypes.Float32 || arch.seen[3] != false {
		t.Errorf("ActivationBytes called with %v", arch.seen)
	}

	// Full fine-tuning in bfloat16: 20 B per parameter of master, gradient, accumulator and
	// moments, 8 B the Go backend pools, 2 B for the bfloat16 copy, and the loss's 4
	// logits-sized tensors.
	e = EstimateMemory(arch, MemoryRequest{Mode: Training, Batch: 2, Length: 16, DType: dtypes.BFloat16})
	want = MemoryEstimate{Mode: Training, Batch: 2, Length: 16, DType: dtypes.BFloat16, Weights: 1608 * 2,
		Trained: 1608 * 30, Activations: 1<<20 + 4*logits, Runtime: RuntimeBytes, Modeled: true}
	want.Total = want.Weights + want.Trained + want.Activations + want.Runtime
	if e != want {
		t.Errorf("training, bfloat16:\n got %+v\nwant %+v", e, want)
	}
	if arch.seen[3] != true {
		t.Errorf("ActivationBytes called with %v", arch.seen)
	}

	// LoRA: the weights as loaded, only the adapters trained.
	e = EstimateMemory(arch, MemoryRequest{Mode: Training, Batch: 2, Length: 16, WeightBytes: 5000, TrainedParams: 10})
	if e.Weights != 5000 || e.Trained != 280 {
		t.Errorf("LoRA: weights %d (want 5000), trained %d (want 280)", e.Weights, e.Trained)
	}
	if s := e.String(); !strings.Contains(s, "trained copies, gradients and moments 0.0 MiB") || !strings.Contains(s, "runtime 32.0 MiB") {
		t.Errorf("String() = %q", s)
	}

	// Without a memory model the activations are the logits (and the loss's), and say so.
	e = EstimateMemory(base, MemoryRequest{Mode: Training, Batch: 2, Length: 16})
	if e.Modeled || e.Activations != 5*logits || !strings.Contains(e.String(), "no memory model") {
		t.Errorf("unmodeled: %+v, %q", e, e.String())
	}
}

func TestBytesFormat(t *testing.T) {
	for n, want := range map[int64]string{0: "0.0 MiB", 3 << 19: "1.5 MiB", 1 << 30: "1.00 GiB", 5 << 29: "2.50 GiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}
