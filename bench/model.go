package bench

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/models/lm"
)

// RandomModel builds the model a config.json describes with random weights, as the model
// packages' Go benchmarks do: every parameter, in Specs order, drawn from N(0, 0.02²) by a PCG
// seeded (seed, 2) — seed 1 gives the benchmarks' weights. Timing does not depend on the values
// (nothing in the graphs branches on them); opts picks the backend and compute dtype.
func RandomModel(config json.RawMessage, seed uint64, opts lm.LoadOptions) (*lm.Model, error) {
	arch, err := lm.NewArchitecture(config)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 2))
	weights := map[string]*tensors.Tensor{}
	for _, s := range arch.Specs() {
		size := 1
		for _, d := range s.Shape {
			size *= d
		}
		data := make([]float32, size)
		for i := range data {
			data[i] = float32(rng.NormFloat64() * 0.02)
		}
		weights[s.Name] = tensors.FromFlatDataAndDimensions(data, s.Shape...)
	}
	m, err := lm.New(arch, config, weights, opts)
	if err != nil {
		return nil, fmt.Errorf("bench: random %s model: %w", arch.Family(), err)
	}
	return m, nil
}
