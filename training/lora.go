package training

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/models/checkpoint"
	"github.com/perpetual-ml/perpetual/models/lm"
)

// LoRA configures low-rank adapters: for each 2-D target weight W [out, in] the model sees
// W + (Alpha/Rank)·B·A with A [Rank, in] random and B [out, Rank] zero; only A and B train.
type LoRA struct {
	Rank  int
	Alpha float64
	// Targets are substrings of parameter names to adapt (e.g. "q_proj", "v_proj").
	Targets []string
}

// LoRASetup builds the Setup that trains adapters on arch's target weights and returns the
// adapters' initial values (A ~ U(-1/sqrt(in), 1/sqrt(in)) from seed, B = 0).
func LoRASetup(arch lm.Architecture, cfg LoRA, seed int64) (*Setup, []*tensors.Tensor, error) {
	if cfg.Rank < 1 {
		return nil, nil, fmt.Errorf("lora: rank must be >= 1, got %d", cfg.Rank)
	}
	specs := arch.Specs()
	var tr []Trainable
	var init []*tensors.Tensor
	targetOf := map[string]int{} // spec name -> index of its A in tr
	rng := rand.New(rand.NewPCG(uint64(seed), 0x10ca))
	for _, s := range specs {
		if len(s.Shape) != 2 || !slices.ContainsFunc(cfg.Targets, func(t string) bool { return strings.Contains(s.Name, t) }) {
			continue
		}
		out, in := s.Shape[0], s.Shape[1]
		targetOf[s.Name] = len(tr)
		tr = append(tr, Trainable{Name: s.Name + ".lora_A", Shape: []int{cfg.Rank, in}}, Trainable{Name: s.Name + ".lora_B", Shape: []int{out, cfg.Rank}})
		a := make([]float32, cfg.Rank*in)
		bound := 1 / float32(mathSqrt(float64(in)))
		for i := range a {
			a[i] = (rng.Float32()*2 - 1) * bound
		}
		init = append(init, tensors.FromFlatDataAndDimensions(a, cfg.Rank, in), tensors.FromShape(shapes.Make(dtypes.Float32, out, cfg.Rank)))
	}
	if len(tr) == 0 {
		return nil, nil, fmt.Errorf("lora: no 2-D parameter of the %s model matches targets %v", arch.Family(), cfg.Targets)
	}
	scale := cfg.Alpha / float64(cfg.Rank)
	return &Setup{Arch: arch, Frozen: specs, Train: tr, Params: func(frozen, train []*Node) lm.Params {
		base := lm.ParamsFor(arch.Family(), specs, frozen)
		return func(name string) *Node {
			w := base(name)
			i, ok := targetOf[name]
			if !ok {
				return w
			}
			delta := MulScalar(MatMul(train[i+1], train[i]), scale) // B·A: [out, in]
			return Add(w, ConvertDType(delta, w.DType()))
		}
	}}, init, nil
}

// MergeLoRA returns the base weights with the adapters folded in: W + (alpha/r)·B·A.
func MergeLoRA(base map[string]*tensors.Tensor, s *Setup, adapters []*tensors.Tensor, cfg LoRA) (map[string]*tensors.Tensor, error) {
	out := make(map[string]*tensors.Tensor, len(base))
	for k, v := range base {
		out[k] = v
	}
	scale := float32(cfg.Alpha / float64(cfg.Rank))
	for i := 0; i+1 < len(s.Train); i += 2 {
		name := strings.TrimSuffix(s.Train[i].Name, ".lora_A")
		w, ok := base[name]
		if !ok {
			return nil, fmt.Errorf("lora merge: base has no weight %q", name)
		}
		if w.DType() != dtypes.Float32 {
			c, err := checkpoint.Cast(w, dtypes.Float32) // merged in float32; SetWeights casts back
			if err != nil {
				return nil, fmt.Errorf("lora merge: weight %q: %w", name, err)
			}
			w = c
		}
		W := tensors.MustCopyFlatData[float32](w)
		A := tensors.MustCopyFlatData[float32](adapters[i])
		B := tensors.MustCopyFlatData[float32](adapters[i+1])
		r, in := s.Train[i].Shape[0], s.Train[i].Shape[1]
		outDim := s.Train[i+1].Shape[0]
		for o := 0; o < outDim; o++ {
			for k := 0; k < r; k++ {
				b := B[o*r+k] * scale
				if b == 0 {
					continue
				}
				row := W[o*in : (o+1)*in]
				for j, a := range A[k*in : (k+1)*in] {
					row[j] += b * a
				}
			}
		}
		out[name] = tensors.FromFlatDataAndDimensions(W, outDim, in)
	}
	return out, nil
}

func mathSqrt(x float64) float64 { return math.Sqrt(x) }
