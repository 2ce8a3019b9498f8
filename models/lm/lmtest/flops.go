package lmtest

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"

	"github.com/perpetual-ml/perpetual/models/backend"
	"github.com/perpetual-ml/perpetual/models/lm"
)

// lhsContracting reads the lhs contracting axes out of a DotGeneral node's description
// ("... lhsContractingAxes=[2], ..."): GoMLX keeps them unexported.
var lhsContracting = regexp.MustCompile(`lhsContractingAxes=\[([0-9 ]*)\]`)

// MatmulFLOPs builds arch's Logits graph for one row of T tokens with float32 weights (built,
// not compiled or run) and counts the FLOPs of its matrix products: each DotGeneral node 2 x
// its output's size x the size of its contracted axes. It is the figure an lm.FLOPCounter that
// counts matrix products (docs/benchmarks.md, "FLOP counts") must give for that T, counted
// from the graph the family really builds, so a counter that forgets or double-counts a
// family's projection fails against it.
func MatmulFLOPs(arch lm.Architecture, T int) (flops float64, err error) {
	b, err := backend.Shared()
	if err != nil {
		return 0, err
	}
	defer func() {
		if r := recover(); r != nil {
			flops, err = 0, fmt.Errorf("lmtest: building %s's Logits graph: %v", arch.Family(), r)
		}
	}()
	g := graph.NewGraph(b, "flops")
	defer g.Finalize()
	specs := arch.Specs()
	in := make([]*graph.Node, len(specs))
	for i, s := range specs {
		in[i] = graph.Parameter(g, fmt.Sprintf("p%d", i), shapes.Make(dtypes.Float32, s.Shape...))
	}
	row := shapes.Make(dtypes.Int32, 1, T)
	tokens, positions, segments := graph.Parameter(g, "tokens", row), graph.Parameter(g, "positions", row), graph.Parameter(g, "segments", row)
	arch.Logits(lm.ParamsFor(arch.Family(), specs, in), tokens, positions, segments)
	for _, n := range g.Nodes() {
		if n.Type() != graph.NodeTypeDotGeneral {
			continue
		}
		m := lhsContracting.FindStringSubmatch(n.String())
		if m == nil {
			return 0, fmt.Errorf("lmtest: no contracting axes in %s", n)
		}
		lhs := n.Inputs()[0].Shape()
		k := 1
		for _, a := range strings.Fields(m[1]) {
			axis, err := strconv.Atoi(a)
			if err != nil {
				return 0, fmt.Errorf("lmtest: contracting axis %q in %s", a, n)
			}
			k *= lhs.Dimensions[axis]
		}
		flops += 2 * float64(n.Shape().Size()) * float64(k)
	}
	return flops, nil
}

// CheckLogitsFLOPs fails t unless the architecture of each config.json at paths counts its FLOPs
// (lm.FLOPCounter) exactly as MatmulFLOPs finds them in its Logits graph, at lengths 1, 7 and 32,
// and returns the counters by path for the family's own checks.
func CheckLogitsFLOPs(t *testing.T, paths ...string) map[string]lm.FLOPCounter {
	t.Helper()
	counters := map[string]lm.FLOPCounter{}
	for _, path := range paths {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		arch, err := lm.NewArchitecture(raw)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		counter, ok := arch.(lm.FLOPCounter)
		if !ok {
			t.Fatalf("%s: %s does not count its FLOPs", path, arch.Family())
		}
		for _, T := range []int{1, 7, 32} {
			want, err := MatmulFLOPs(arch, T)
			if err != nil {
				t.Fatal(err)
			}
			if got := counter.LogitsFLOPs(T); got != want {
				t.Errorf("%s (%s), T=%d: LogitsFLOPs %v, the graph's matrix products %v", path, arch.Family(), T, got, want)
			}
		}
		counters[path] = counter
	}
	return counters
}
