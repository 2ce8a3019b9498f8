// Package goldentest is what the model families' golden tests share: a minimal safetensors reader
// for the fixture folders that testdata/make_golden.py scripts write, and helpers that run an
// architecture's graphs with the fixture's weights as graph inputs. The reader is deliberately
// separate from models/safetensors, models/checkpoint and lm.Load (F32/BF16 only, optional
// index.json), so the conformance suite (models/lm/lmtest) checks a family's graph code on its
// own; the families' own tests and benchmarks use the graph helpers (Logits, SequenceLogits,
// BenchLogits) and the config.json editors (Edited, Without).
//
// The scripts that write the fixtures share golden_common.py, beside this file: the safetensors
// writer this reader mirrors, and the harness that computes golden.json from each family's own
// reference forward pass.
package goldentest

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/dtypes/bfloat16"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/models/backend"
	"github.com/perpetual-ml/perpetual/models/lm"
)

// Tensor is one tensor of a fixture, values widened to float32.
type Tensor struct {
	DType string
	Shape []int
	Data  []float32
}

// ReadWeights reads dir/model.safetensors, or every shard named by
// dir/model.safetensors.index.json, by tensor name as stored.
func ReadWeights(dir string) (map[string]Tensor, error) {
	files := []string{"model.safetensors"}
	if idx, err := os.ReadFile(filepath.Join(dir, "model.safetensors.index.json")); err == nil {
		var index struct {
			WeightMap map[string]string `json:"weight_map"`
		}
		if err := json.Unmarshal(idx, &index); err != nil {
			return nil, fmt.Errorf("%s: index: %w", dir, err)
		}
		seen := map[string]bool{}
		files = nil
		for _, file := range index.WeightMap {
			if !seen[file] {
				seen[file] = true
				files = append(files, file)
			}
		}
		sort.Strings(files)
	}
	out := map[string]Tensor{}
	for _, file := range files {
		if err := readFile(filepath.Join(dir, file), out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func readFile(path string, into map[string]Tensor) error {
	buf, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if len(buf) < 8 {
		return fmt.Errorf("%s: too short", path)
	}
	n := binary.LittleEndian.Uint64(buf)
	if 8+n > uint64(len(buf)) {
		return fmt.Errorf("%s: header length %d past end of file", path, n)
	}
	var header map[string]json.RawMessage
	if err := json.Unmarshal(buf[8:8+n], &header); err != nil {
		return fmt.Errorf("%s: header: %w", path, err)
	}
	data := buf[8+n:]
	for name, rawEntry := range header {
		if name == "__metadata__" {
			continue
		}
		var e struct {
			DType   string `json:"dtype"`
			Shape   []int  `json:"shape"`
			Offsets [2]int `json:"data_offsets"`
		}
		if err := json.Unmarshal(rawEntry, &e); err != nil {
			return fmt.Errorf("%s: %s: %w", path, name, err)
		}
		b := data[e.Offsets[0]:e.Offsets[1]]
		var vals []float32
		switch e.DType {
		case "F32":
			vals = make([]float32, len(b)/4)
			for i := range vals {
				vals[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
			}
		case "BF16":
			vals = make([]float32, len(b)/2)
			for i := range vals {
				vals[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*i:])) << 16)
			}
		default:
			return fmt.Errorf("%s: %s: dtype %s not handled by the test reader", path, name, e.DType)
		}
		into[name] = Tensor{DType: e.DType, Shape: e.Shape, Data: vals}
	}
	return nil
}

// ParamTensors returns the parameters of specs, in order, as tensors of dtype (a spec's aliases
// are tried when its name is absent); a missing name or a wrong shape is an error naming the
// fixture.
func ParamTensors(fixture string, specs []lm.ParamSpec, weights map[string]Tensor, dtype dtypes.DType) ([]*tensors.Tensor, error) {
	var out []*tensors.Tensor
	for _, spec := range specs {
		w, ok := weights[spec.Name]
		for _, alias := range spec.Aliases {
			if !ok {
				w, ok = weights[alias]
			}
		}
		if !ok {
			return nil, fmt.Errorf("%s: parameter %s missing from checkpoint", fixture, spec.Name)
		}
		if fmt.Sprint(w.Shape) != fmt.Sprint(spec.Shape) {
			return nil, fmt.Errorf("%s: %s has shape %v, Specs says %v", fixture, spec.Name, w.Shape, spec.Shape)
		}
		out = append(out, ToTensor(w.Data, dtype, spec.Shape))
	}
	return out, nil
}

// ToTensor copies float32 values into a tensor of dtype (Float32 or BFloat16).
func ToTensor(data []float32, dtype dtypes.DType, shape []int) *tensors.Tensor {
	switch dtype {
	case dtypes.Float32:
		return tensors.FromFlatDataAndDimensions(append([]float32(nil), data...), shape...)
	case dtypes.BFloat16:
		b := make([]bfloat16.BFloat16, len(data))
		for i, v := range data {
			b[i] = bfloat16.FromFloat32(v)
		}
		return tensors.FromFlatDataAndDimensions(b, shape...)
	}
	panic("unsupported dtype " + dtype.String())
}

// ParamsFrom maps the leading graph inputs (in specs order) to lm.Params.
func ParamsFrom(specs []lm.ParamSpec, inputs []*Node) lm.Params {
	byName := map[string]*Node{}
	for i, spec := range specs {
		byName[spec.Name] = inputs[i]
	}
	return func(name string) *Node {
		n, ok := byName[name]
		if !ok {
			panic("unknown parameter " + name)
		}
		return n
	}
}

// Backend is the shared backend the models run on.
func Backend(t testing.TB) compute.Backend {
	t.Helper()
	b, err := backend.Shared()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Logits runs arch.Logits with params (in Specs order) on a batch of tokens, positions and
// segment ids; it returns [B][T][V].
func Logits(t testing.TB, arch lm.Architecture, params []*tensors.Tensor, tokens, positions, segments [][]int32) [][][]float32 {
	t.Helper()
	out, err := logitsExec(t, arch).Exec(logitsArgs(params, tokens, positions, segments)...)
	if err != nil {
		t.Fatal(err)
	}
	return out[0].Value().([][][]float32)
}

// logitsExec builds arch.Logits with the parameters (in Specs order), then tokens, positions and
// segment ids as its inputs.
func logitsExec(t testing.TB, arch lm.Architecture) *Exec {
	t.Helper()
	specs := arch.Specs()
	exec, err := NewExec(Backend(t), func(inputs []*Node) *Node {
		n := len(specs)
		return arch.Logits(ParamsFrom(specs, inputs), inputs[n], inputs[n+1], inputs[n+2])
	})
	if err != nil {
		t.Fatal(err)
	}
	return exec
}

// logitsArgs are logitsExec's arguments.
func logitsArgs(params []*tensors.Tensor, tokens, positions, segments [][]int32) []any {
	args := make([]any, 0, len(params)+3)
	for _, p := range params {
		args = append(args, p)
	}
	return append(args, tensors.FromValue(tokens), tensors.FromValue(positions), tensors.FromValue(segments))
}

// Compare returns the relative L2 error ||got-want|| / ||want|| (the absolute L2 error for an
// all-zero reference, such as a gradient that must vanish) and the largest absolute error.
func Compare(got []float32, want []float64) (rel, maxAbs float64) {
	var num, den float64
	for i := range want {
		d := float64(got[i]) - want[i]
		num += d * d
		den += want[i] * want[i]
		maxAbs = math.Max(maxAbs, math.Abs(d))
	}
	if den == 0 {
		return math.Sqrt(num), maxAbs
	}
	return math.Sqrt(num / den), maxAbs
}

// Flatten concatenates rows.
func Flatten(rows [][]float32) []float32 {
	var out []float32
	for _, r := range rows {
		out = append(out, r...)
	}
	return out
}

// Float64s widens float32 values (a Go result) for Compare against a float64 reference.
func Float64s(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

// Outputs executes exec on args and returns every output as flat float32 values.
func Outputs(t testing.TB, exec *Exec, args ...any) [][]float32 {
	t.Helper()
	out, err := exec.Exec(args...)
	if err != nil {
		t.Fatal(err)
	}
	res := make([][]float32, len(out))
	for i, o := range out {
		res[i] = tensors.MustCopyFlatData[float32](o)
	}
	return res
}

// SequenceLogits runs arch.Logits with params (in Specs order) on one sequence alone (batch 1,
// positions 0..T-1, one segment); it returns [T][V].
func SequenceLogits(t testing.TB, arch lm.Architecture, params []*tensors.Tensor, seq []int32) [][]float32 {
	t.Helper()
	positions, segments := make([]int32, len(seq)), make([]int32, len(seq))
	for i := range seq {
		positions[i], segments[i] = int32(i), 1
	}
	return Logits(t, arch, params, [][]int32{seq}, [][]int32{positions}, [][]int32{segments})[0]
}

// SameLogits fails t unless two architectures (e.g. one config written in two forms) give
// bit-identical logits with the same parameters on every sequence.
func SameLogits(t testing.TB, want, got lm.Architecture, params []*tensors.Tensor, seqs [][]int32) {
	t.Helper()
	for i, seq := range seqs {
		w, g := SequenceLogits(t, want, params, seq), SequenceLogits(t, got, params, seq)
		for p := range w {
			for j := range w[p] {
				if math.Float32bits(g[p][j]) != math.Float32bits(w[p][j]) {
					t.Fatalf("sequence %d position %d logit %d: %g, want %g (bit-identical)", i, p, j, g[p][j], w[p][j])
				}
			}
		}
	}
}

// BenchLogits times arch.Logits with params (in Specs order) on a batch of tokens, positions
// and segment ids, and reports tokens/s. The graph is built and compiled (a first run) before
// the timer starts.
func BenchLogits(b *testing.B, arch lm.Architecture, params []*tensors.Tensor, tokens, positions, segments [][]int32) {
	b.Helper()
	exec, args := logitsExec(b, arch), logitsArgs(params, tokens, positions, segments)
	run := func() {
		out, err := exec.Exec(args...)
		if err != nil {
			b.Fatal(err)
		}
		out[0].MustFinalizeAll()
	}
	run() // compile
	b.ResetTimer()
	for range b.N {
		run()
	}
	b.ReportMetric(float64(b.N*len(tokens)*len(tokens[0]))/b.Elapsed().Seconds(), "tokens/s")
}
