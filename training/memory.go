package training

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/perpetual-ml/perpetual/models/lm"
)

// MemoryEstimate is the rough peak memory of a run, in bytes.
type MemoryEstimate struct {
	Weights, Trainables, Activations, Total int64
}

// logitsCopies is how many float32 [B, T, V] tensors the loss and its gradient keep alive at
// once: the logits, the exponentials of the shifted logits (kept for the backward pass), the
// gradient of the target gather (a dense scatter), the broadcast gradient of the sum, and their
// product. TestLossGraphPeak replays the graph to check it; the one-hot form TokenLoss replaced
// kept 6 (its one-hot and log-softmax were full-size too).
const logitsCopies = 5

// EstimateMemory counts the model weights, then per trained parameter the f32 copy, its
// gradient, accumulator and two moments (5×4 bytes), and activations: logitsCopies full-size
// float32 logit tensors of the loss and its gradient (B·T·V·4·5) plus about 16 hidden-size
// vectors per token per layer kept for the backward pass. Hidden size and layers are read from
// the embedding shape and parameter names.
func EstimateMemory(s *Setup, model *lm.Model, batch, T int) MemoryEstimate {
	var e MemoryEstimate
	hidden, layers := 0, 0
	for _, w := range model.WeightList() {
		e.Weights += int64(w.Shape().Memory())
	}
	for _, sp := range s.Arch.Specs() {
		if strings.Contains(sp.Name, "embed") && len(sp.Shape) == 2 {
			hidden = sp.Shape[1]
		}
		if _, rest, ok := strings.Cut(sp.Name, "layers."); ok {
			if i, err := strconv.Atoi(strings.SplitN(rest, ".", 2)[0]); err == nil {
				layers = max(layers, i+1)
			}
		}
	}
	for _, t := range s.Train {
		n := int64(1)
		for _, d := range t.Shape {
			n *= int64(d)
		}
		e.Trainables += n * 4 * 5
	}
	tok := int64(batch) * int64(T)
	e.Activations = tok*int64(s.Arch.VocabSize())*4*logitsCopies + tok*int64(hidden)*4*16*int64(max(1, layers))
	e.Total = e.Weights + e.Trainables + e.Activations
	return e
}

// AvailableMemory reads MemAvailable from /proc/meminfo in bytes (0 if unknown): the limit
// training and `perpetual bench` check their memory estimate against by default.
func AvailableMemory() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemAvailable:" {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

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
		return fmt.Errorf("training needs about %s (weights %s + trained params/grads/moments %s + activations %s for batch %d x %d tokens) but only %s is available; lower --batch-size or --max-length, use --lora, or raise --memory-limit",
			gib(e.Total), gib(e.Weights), gib(e.Trainables), gib(e.Activations), o.BatchSize, T, gib(limit))
	}
	return nil
}

func gib(n int64) string { return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30)) }
