package training

import (
	"fmt"

	"github.com/perpetual-ml/perpetual/internal/procfs"

	"github.com/perpetual-ml/perpetual/models/lm"
)

// EstimateMemory is lm.EstimateMemory for a training step of s on model with batch rows of T
// tokens: the model's weights as loaded, s's trained parameters (all of them, or LoRA's
// adapters) and the architecture's activations (lm.MemoryModel).
func EstimateMemory(s *Setup, model *lm.Model, batch, T int) lm.MemoryEstimate {
	var weights, trained int64
	for _, w := range model.WeightList() {
		weights += int64(w.Shape().Memory())
	}
	for _, t := range s.Train {
		n := int64(1)
		for _, d := range t.Shape {
			n *= int64(d)
		}
		trained += n
	}
	return lm.EstimateMemory(s.Arch, lm.MemoryRequest{Mode: lm.Training, Batch: batch, Length: T,
		DType: model.DType(), WeightBytes: weights, TrainedParams: trained})
}

// AvailableMemory reads MemAvailable from /proc/meminfo in bytes (0 if unknown): the limit
// training and `perpetual bench` check their memory estimate against by default.
func AvailableMemory() int64 { return procfs.Bytes("/proc/meminfo", "MemAvailable:") }

func checkMemory(s *Setup, model *lm.Model, o Options, T int) error {
	limit := o.MemoryLimit
	if limit == 0 {
		limit = AvailableMemory()
	}
	if limit <= 0 {
		return nil
	}
	e := EstimateMemory(s, model, o.BatchSize, T)
	if e.Total > limit {
		return fmt.Errorf("training needs about %s (%s, for batch %d x %d tokens) but only %s is available; lower --batch-size or --max-length, use --lora, or raise --memory-limit",
			lm.GiB(e.Total), e, o.BatchSize, T, lm.GiB(limit))
	}
	return nil
}
