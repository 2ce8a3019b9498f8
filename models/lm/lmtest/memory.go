package lmtest

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"

	"github.com/perpetual-ml/perpetual/models/backend"
	"github.com/perpetual-ml/perpetual/models/lm"
)

// Peak is what GraphPeak found: the most bytes of intermediate tensors alive at once.
type Peak struct {
	// Bytes is the largest total of simultaneously live tensors.
	Bytes int64
	// LargestBytes and LargestOp describe the largest single tensor.
	LargestBytes int64
	LargestOp    string
	// Nodes is the number of graph nodes the outputs need.
	Nodes int
}

// String formats the peak in MiB.
func (p Peak) String() string {
	return fmt.Sprintf("peak %.2f MiB (largest %.2f MiB from %s; %d nodes)",
		float64(p.Bytes)/(1<<20), float64(p.LargestBytes)/(1<<20), p.LargestOp, p.Nodes)
}

// GraphPeak replays a graph that was built but not compiled, in creation order, keeping each
// node's output alive from the op that makes it to its last reader, and returns the largest
// total alive at once: the least memory an executor without fusion needs, the yardstick of the
// families' lm.MemoryModel counts. Only the nodes the outputs need are replayed (GoMLX builds a
// fused op's decomposed form too, dead unless a gradient reads it). Parameters (weights and
// inputs) are not counted; the outputs stay alive to the end. Multi-output nodes count nothing
// (their outputs are separate nodes).
func GraphPeak(g *graph.Graph, outputs ...*graph.Node) Peak {
	nodes := g.Nodes()
	index := make(map[graph.NodeId]int, len(nodes))
	for i, n := range nodes {
		index[n.Id()] = i
	}
	needed := make([]bool, len(nodes))
	keep := make([]bool, len(nodes))
	for _, n := range outputs {
		needed[index[n.Id()]], keep[index[n.Id()]] = true, true
	}
	for i := len(nodes) - 1; i >= 0; i-- {
		if needed[i] {
			for _, in := range nodes[i].Inputs() {
				needed[index[in.Id()]] = true
			}
		}
	}
	readers := make([]int, len(nodes))
	p := Peak{}
	for i, n := range nodes {
		if needed[i] {
			p.Nodes++
			for _, in := range n.Inputs() {
				readers[index[in.Id()]]++
			}
		}
	}
	bytes := func(n *graph.Node) int64 {
		if n.Type() == graph.NodeTypeParameter || n.NumOutputs() != 1 {
			return 0
		}
		return int64(n.Shape().ByteSize())
	}
	var live int64
	for i, n := range nodes {
		if !needed[i] {
			continue
		}
		if b := bytes(n); readers[i] > 0 || keep[i] {
			live += b
			if b > p.LargestBytes {
				p.LargestBytes, p.LargestOp = b, fmt.Sprintf("%s %s", n.Type(), n.Shape())
			}
		}
		p.Bytes = max(p.Bytes, live)
		for _, in := range n.Inputs() {
			j := index[in.Id()]
			if readers[j]--; readers[j] == 0 && !keep[j] {
				live -= bytes(in)
			}
		}
	}
	return p
}

// MemoryCase is one shape CheckMemoryModel replays.
type MemoryCase struct {
	Batch, T int
	DType    dtypes.DType
	Training bool
	// Max bounds the estimate over the graph's least memory: the estimate may add what the Go
	// backend holds beyond it, measured (0: 2).
	Max float64
}

// CheckMemoryModel checks an architecture's lm.MemoryModel against its own graphs: for each
// case, ActivationBytes must be at least GraphPeak of the graph (Logits for scoring; for
// training, Logits and the gradient of the summed logits, weighted by an input, with respect to
// every parameter, each gradient reduced as soon as it is made since lm.EstimateMemory counts
// them with the trainer's state) and
// at most Max times it. A count that falls below the graph means the graph grew (or the count
// forgot something); a count far above it, that it shrank.
func CheckMemoryModel(t *testing.T, arch lm.Architecture, cases ...MemoryCase) {
	t.Helper()
	mm, ok := arch.(lm.MemoryModel)
	if !ok {
		t.Fatalf("%s does not implement lm.MemoryModel", arch.Family())
	}
	be, err := backend.Shared()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		peak, err := activationPeak(be, arch, c)
		if err != nil {
			t.Fatal(err)
		}
		est := mm.ActivationBytes(c.Batch, c.T, c.DType, c.Training)
		limit := c.Max
		if limit == 0 {
			limit = 2
		}
		ratio := float64(est) / float64(peak)
		t.Logf("%s %s %d x %d, training %v: estimate %.2f MiB, graph %.2f MiB (x%.2f)", arch.Family(), c.DType, c.Batch, c.T,
			c.Training, float64(est)/(1<<20), float64(peak)/(1<<20), ratio)
		if ratio < 1 || ratio > limit {
			t.Errorf("%s %s %d x %d, training %v: ActivationBytes %d is x%.2f the graph's least memory %d (want 1 to %v)",
				arch.Family(), c.DType, c.Batch, c.T, c.Training, est, ratio, peak, limit)
		}
	}
}

// CheckMemoryModelOfConfig is the check every family's TestMemoryModel makes: CheckMemoryModel
// on the architecture of config (a config.json) with 2 rows of 64 tokens, in float32 and
// bfloat16, scoring within scoringMax times the graph's least memory and training within
// trainingMax. The bounds are the family's: what the Go backend holds beyond the graph differs
// by family.
func CheckMemoryModelOfConfig(t *testing.T, config string, scoringMax, trainingMax float64) {
	t.Helper()
	arch, err := lm.NewArchitecture(json.RawMessage(config))
	if err != nil {
		t.Fatal(err)
	}
	var cases []MemoryCase
	for _, dt := range []dtypes.DType{dtypes.Float32, dtypes.BFloat16} {
		cases = append(cases,
			MemoryCase{Batch: 2, T: 64, DType: dt, Max: scoringMax},
			MemoryCase{Batch: 2, T: 64, DType: dt, Training: true, Max: trainingMax})
	}
	CheckMemoryModel(t, arch, cases...)
}

// activationPeak builds the case's graph (not compiled) and replays it.
func activationPeak(be compute.Backend, arch lm.Architecture, c MemoryCase) (peak int64, err error) {
	g := graph.NewGraph(be, "memory_model")
	defer g.Finalize()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: building the graph: %v", arch.Family(), r)
		}
	}()
	specs := arch.Specs()
	params := make([]*graph.Node, len(specs))
	for i, s := range specs {
		params[i] = graph.Parameter(g, s.Name, shapes.Make(c.DType, s.Shape...))
	}
	ints := shapes.Make(dtypes.Int32, c.Batch, c.T)
	tokens, positions, segments := graph.Parameter(g, "tokens", ints), graph.Parameter(g, "positions", ints), graph.Parameter(g, "segments", ints)
	logits := arch.Logits(lm.ParamsFor(arch.Family(), specs, params), tokens, positions, segments)
	if !c.Training {
		return GraphPeak(g, logits).Bytes, nil
	}
	w := graph.Parameter(g, "weights", logits.Shape())
	grads := graph.Gradient(graph.ReduceAllSum(graph.Mul(logits, w)), params...)
	// Each gradient is reduced to a number as soon as it is made, so it is not counted past
	// that (lm.EstimateMemory counts the trainer's gradients with its state).
	sums := make([]*graph.Node, len(grads))
	for i, gr := range grads {
		sums[i] = graph.ReduceAllSum(gr)
	}
	return GraphPeak(g, sums...).Bytes, nil
}
