package gemma

import (
	"fmt"
	"math"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive

	"github.com/perpetual-ml/perpetual/models/lm"
)

// MemoryEstimate is the memory needed to score one batch (the Logits graph, float32 logits out),
// estimated from the graph itself: it builds the graph symbolically (no tensor is allocated and
// nothing is compiled) and replays it in creation order, keeping each intermediate tensor alive
// from the op that makes it to its last consumer. That is what an executor without fusion needs;
// XLA fuses elementwise ops and reuses buffers, so on GPU it is an upper bound for activations.
type MemoryEstimate struct {
	// ParamBytes is the size of all parameters in the compute dtype (tied head counted once).
	ParamBytes int64
	// PeakActivationBytes is the largest total of simultaneously live intermediate tensors
	// (parameters excluded, the logits output included).
	PeakActivationBytes int64
	// LogitsBytes is the size of the float32 logits output.
	LogitsBytes int64
	// LargestBytes and LargestOp describe the largest single intermediate tensor.
	LargestBytes int64
	LargestOp    string
	// Nodes is the number of graph nodes.
	Nodes int
}

// Total is parameters plus peak activations.
func (e MemoryEstimate) Total() int64 { return e.ParamBytes + e.PeakActivationBytes }

// String formats the estimate in GiB.
func (e MemoryEstimate) String() string {
	gib := func(b int64) string { return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30)) }
	return fmt.Sprintf("params %s + peak activations %s = %s (logits %s; largest tensor %s from %s; %d nodes)",
		gib(e.ParamBytes), gib(e.PeakActivationBytes), gib(e.Total()), gib(e.LogitsBytes),
		gib(e.LargestBytes), e.LargestOp, e.Nodes)
}

// EstimateScoringMemory estimates the memory of Logits for a batch of batch x seqLen tokens with
// parameters in dtype. The backend is only used to build (not compile) the graph.
func (m *Model) EstimateScoringMemory(backend compute.Backend, batch, seqLen int, dtype dtypes.DType) (est MemoryEstimate, err error) {
	if batch <= 0 || seqLen <= 0 {
		return est, fmt.Errorf("gemma: memory estimate needs a positive batch and sequence length, got %d x %d", batch, seqLen)
	}
	g := NewGraph(backend, "gemma_memory_estimate")
	defer g.Finalize()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("gemma: building the graph for the memory estimate: %v", r)
		}
	}()
	params := map[string]*Node{}
	isParam := map[NodeId]bool{}
	for _, s := range m.Specs() {
		n := Parameter(g, s.Name, shapes.Make(dtype, s.Shape...))
		params[s.Name] = n
		isParam[n.Id()] = true
		est.ParamBytes += int64(n.Shape().ByteSize())
	}
	p := lm.Params(func(name string) *Node { return params[name] })
	ints := shapes.Make(dtypes.Int32, batch, seqLen)
	tokens, positions, segments := Parameter(g, "tokens", ints), Parameter(g, "positions", ints), Parameter(g, "segments", ints)
	for _, n := range []*Node{tokens, positions, segments} {
		isParam[n.Id()] = true
	}
	logits := m.Logits(p, tokens, positions, segments)
	est.LogitsBytes = int64(logits.Shape().ByteSize())

	nodes := g.Nodes()
	est.Nodes = len(nodes)
	lastUse := map[NodeId]int{}
	for i, n := range nodes {
		for _, in := range n.Inputs() {
			lastUse[in.Id()] = i
		}
	}
	lastUse[logits.Id()] = math.MaxInt
	bytes := func(n *Node) int64 {
		if isParam[n.Id()] || n.NumOutputs() != 1 {
			return 0
		}
		return int64(n.Shape().ByteSize())
	}
	var live int64
	for i, n := range nodes {
		if _, used := lastUse[n.Id()]; used {
			b := bytes(n)
			live += b
			if b > est.LargestBytes {
				est.LargestBytes, est.LargestOp = b, fmt.Sprintf("%s %s", n.Type(), n.Shape())
			}
		}
		est.PeakActivationBytes = max(est.PeakActivationBytes, live)
		for _, in := range n.Inputs() {
			if lastUse[in.Id()] == i {
				live -= bytes(in)
				lastUse[in.Id()] = -1 // freed once even if an op reads it twice
			}
		}
	}
	return est, nil
}
