package mamba

// Test helpers: read the golden fixture folders (config.json, safetensors, golden.json) written by
// testdata/make_golden.py and run the architecture's graphs with the weights as graph inputs. The
// safetensors reader is deliberately minimal (F32/BF16) and independent of models/lm, so the
// golden tests check the graph code on its own.

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/dtypes/bfloat16"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/models/backend"
	"github.com/perpetual-ml/perpetual/models/lm"
)

var fixtureNames = []string{"k4_bias_s16", "k2_nobias_s4", "k4_bf16"}

// golden is the content of testdata/<model>/golden.json.
type golden struct {
	Sequences    [][]int32   `json:"sequences"`
	Logits       [][]float64 `json:"logits"`
	WeightsDType string      `json:"weights_dtype"`
	Loss         struct {
		Tokens  []int32              `json:"tokens"`
		Targets []int32              `json:"targets"`
		Weights []float32            `json:"weights"`
		Value   float64              `json:"value"`
		Grads   map[string][]float64 `json:"grads"`
	} `json:"loss"`
}

type stTensor struct {
	dtype string
	shape []int
	data  []float32
}

type fixture struct {
	name    string
	model   *Model
	weights map[string]stTensor
	golden  golden
}

func loadFixture(t testing.TB, name string) *fixture {
	t.Helper()
	dir := filepath.Join("testdata", name)
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	arch, err := lm.NewArchitecture(raw)
	if err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	f := &fixture{name: name, model: arch.(*Model), weights: map[string]stTensor{}}
	if err := readSafetensors(filepath.Join(dir, "model.safetensors"), f.weights); err != nil {
		t.Fatal(err)
	}
	g, err := os.ReadFile(filepath.Join(dir, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(g, &f.golden); err != nil {
		t.Fatalf("%s/golden.json: %v", dir, err)
	}
	return f
}

func readSafetensors(path string, into map[string]stTensor) error {
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
		into[name] = stTensor{dtype: e.DType, shape: e.Shape, data: vals}
	}
	return nil
}

// paramTensors returns the parameters in Specs order as tensors of dtype, checking shapes.
func (f *fixture) paramTensors(t testing.TB, dtype dtypes.DType) []*tensors.Tensor {
	t.Helper()
	var out []*tensors.Tensor
	for _, spec := range f.model.Specs() {
		w, ok := f.weights[spec.Name]
		for _, alias := range spec.Aliases {
			if !ok {
				w, ok = f.weights[alias]
			}
		}
		if !ok {
			t.Fatalf("%s: parameter %s missing from checkpoint", f.name, spec.Name)
		}
		if fmt.Sprint(w.shape) != fmt.Sprint(spec.Shape) {
			t.Fatalf("%s: %s has shape %v, Specs says %v", f.name, spec.Name, w.shape, spec.Shape)
		}
		out = append(out, toTensor(w.data, dtype, spec.Shape))
	}
	return out
}

func toTensor(data []float32, dtype dtypes.DType, shape []int) *tensors.Tensor {
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

// paramsFrom maps the leading graph inputs (in Specs order) to lm.Params.
func paramsFrom(m *Model, inputs []*Node) lm.Params {
	byName := map[string]*Node{}
	for i, spec := range m.Specs() {
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

func testBackend(t testing.TB) compute.Backend {
	t.Helper()
	b, err := backend.Shared()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// batch is a packed, padded batch: rows of tokens with per-token positions and segment ids.
type batch struct {
	tokens, positions, segments [][]int32
}

// row appends documents packed into one row, padded with segment 0 up to width. Padding gets
// position padPos (0 as the runtime writes it; tests also try a running count).
func (b *batch) row(width int, docs ...[]int32) {
	var tok, pos, seg []int32
	for i, d := range docs {
		for j, id := range d {
			tok, pos, seg = append(tok, id), append(pos, int32(j)), append(seg, int32(i+1))
		}
	}
	for k := 0; len(tok) < width; k++ {
		tok, pos, seg = append(tok, int32(k%7)), append(pos, int32(k)), append(seg, 0)
	}
	b.tokens, b.positions, b.segments = append(b.tokens, tok), append(b.positions, pos), append(b.segments, seg)
}

// logits runs Model.Logits on a batch with parameters of dtype; returns [B][T][V].
func (f *fixture) logits(t testing.TB, dtype dtypes.DType, b batch) [][][]float32 {
	t.Helper()
	nParams := len(f.model.Specs())
	exec, err := NewExec(testBackend(t), func(inputs []*Node) *Node {
		p := paramsFrom(f.model, inputs)
		return f.model.Logits(p, inputs[nParams], inputs[nParams+1], inputs[nParams+2])
	})
	if err != nil {
		t.Fatal(err)
	}
	var args []any
	for _, p := range f.paramTensors(t, dtype) {
		args = append(args, p)
	}
	args = append(args, tensors.FromValue(b.tokens), tensors.FromValue(b.positions), tensors.FromValue(b.segments))
	out, err := exec.Exec(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out[0].Value().([][][]float32)
}

// compare returns the relative L2 error ||got-want|| / ||want|| (||got|| for a zero reference)
// and the largest absolute error.
func compare(got []float32, want []float64) (rel, maxAbs float64) {
	var num, den float64
	for i := range want {
		d := float64(got[i]) - want[i]
		num += d * d
		den += want[i] * want[i]
		maxAbs = math.Max(maxAbs, math.Abs(d))
	}
	if den == 0 { // an all-zero reference (e.g. a gradient that must vanish): absolute error
		return math.Sqrt(num), maxAbs
	}
	return math.Sqrt(num / den), maxAbs
}

func flatten(rows [][]float32) []float32 {
	var out []float32
	for _, r := range rows {
		out = append(out, r...)
	}
	return out
}

func float64s(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}
