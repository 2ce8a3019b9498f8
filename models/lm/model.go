package lm

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/models/backend"
	"github.com/perpetual-ml/perpetual/models/checkpoint"
)

// LoadOptions controls Load and New.
type LoadOptions struct {
	// Backend runs the graphs; nil uses backend.Shared().
	Backend compute.Backend
	// DType is the compute dtype of the weights (Float32, BFloat16 or Float16); the zero value
	// means Float32. Logits are always returned as float32.
	DType dtypes.DType
}

// Model is an Architecture with its weights on a backend: the object evaluation, RAG and
// training use. Its methods are safe for concurrent use; weights change only through SetWeights.
type Model struct {
	arch    Architecture
	config  json.RawMessage
	backend compute.Backend
	dtype   dtypes.DType
	specs   []ParamSpec
	dir     string // folder Load read (resolved); "" for New

	mu      sync.Mutex
	weights []*tensors.Tensor // in specs order
	hash    string            // cached Hash; "" when stale
	execs   map[string]*graph.Exec

	scoringBytes int64 // SetScoringBudget; 0 = DefaultScoringBytes
}

func (o LoadOptions) resolve() (LoadOptions, error) {
	if o.DType == dtypes.InvalidDType {
		o.DType = dtypes.Float32
	}
	switch o.DType {
	case dtypes.Float32, dtypes.BFloat16, dtypes.Float16:
	default:
		return o, fmt.Errorf("lm: compute dtype %s not supported (use Float32, BFloat16 or Float16)", o.DType)
	}
	if o.Backend == nil {
		b, err := backend.Shared()
		if err != nil {
			return o, err
		}
		o.Backend = b
	}
	return o, nil
}

// Load reads a model folder (plain, Hugging Face cache folder or snapshot; see
// checkpoint.Resolve), builds the Architecture its config.json names and loads every parameter
// (by name or alias), checking shapes and dtypes, converted to opts.DType.
func Load(dir string, opts LoadOptions) (*Model, error) {
	opts, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	ck, err := checkpoint.Open(dir)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	arch, err := NewArchitecture(ck.Config)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ck.Dir, err)
	}
	weights := make([]*tensors.Tensor, 0, len(arch.Specs()))
	for _, spec := range arch.Specs() {
		name, ok := findTensor(spec, func(n string) bool { _, _, ok := ck.Info(n); return ok })
		if !ok {
			return nil, fmt.Errorf("%s: %s model needs tensor %q%s, absent from the checkpoint",
				ck.Dir, arch.Family(), spec.Name, aliasNote(spec))
		}
		info, path, _ := ck.Info(name)
		if !slices.Equal(info.Shape, spec.Shape) {
			return nil, fmt.Errorf("%s: tensor %q has shape %v, config.json implies %v", path, name, info.Shape, spec.Shape)
		}
		if !checkpoint.IsFloat(info.DType) {
			return nil, fmt.Errorf("%s: tensor %q has dtype %s, want a floating-point dtype", path, name, info.DType)
		}
		t, err := ck.Tensor(name, opts.DType)
		if err != nil {
			return nil, err
		}
		weights = append(weights, t)
	}
	m, err := newModel(arch, ck.Config, weights, opts)
	if err != nil {
		return nil, err
	}
	m.dir = ck.Dir
	return m, nil
}

func findTensor(spec ParamSpec, has func(string) bool) (string, bool) {
	if has(spec.Name) {
		return spec.Name, true
	}
	for _, a := range spec.Aliases {
		if has(a) {
			return a, true
		}
	}
	return "", false
}

func aliasNote(spec ParamSpec) string {
	if len(spec.Aliases) == 0 {
		return ""
	}
	return fmt.Sprintf(" (or %v)", spec.Aliases)
}

// New builds a Model from an Architecture, its config and weights keyed by ParamSpec name (or
// alias). Weights are converted to opts.DType (a copy when the dtype differs); weights already
// in that dtype are used as they are, so the caller must not modify them afterwards.
func New(arch Architecture, config json.RawMessage, weights map[string]*tensors.Tensor, opts LoadOptions) (*Model, error) {
	opts, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	if arch == nil {
		return nil, fmt.Errorf("lm.New: nil architecture")
	}
	if !json.Valid(config) {
		return nil, fmt.Errorf("lm.New: config is not valid JSON")
	}
	ws := make([]*tensors.Tensor, 0, len(arch.Specs()))
	for _, spec := range arch.Specs() {
		name, ok := findTensor(spec, func(n string) bool { return weights[n] != nil })
		if !ok {
			return nil, fmt.Errorf("lm.New: %s model needs weight %q%s", arch.Family(), spec.Name, aliasNote(spec))
		}
		t, err := checkWeight(name, weights[name], spec, opts.DType)
		if err != nil {
			return nil, fmt.Errorf("lm.New: %w", err)
		}
		ws = append(ws, t)
	}
	return newModel(arch, slices.Clone(config), ws, opts)
}

func checkWeight(name string, t *tensors.Tensor, spec ParamSpec, dtype dtypes.DType) (*tensors.Tensor, error) {
	if !slices.Equal(t.Shape().Dimensions, spec.Shape) {
		return nil, fmt.Errorf("weight %q has shape %v, want %v", name, t.Shape().Dimensions, spec.Shape)
	}
	if !t.DType().IsFloat() {
		return nil, fmt.Errorf("weight %q has dtype %s, want a floating-point dtype", name, t.DType())
	}
	c, err := checkpoint.Cast(t, dtype)
	if err != nil {
		return nil, fmt.Errorf("weight %q: %w", name, err)
	}
	return c, nil
}

func newModel(arch Architecture, config json.RawMessage, weights []*tensors.Tensor, opts LoadOptions) (*Model, error) {
	specs := arch.Specs()
	if err := upload(opts.Backend, specs, weights); err != nil {
		return nil, err
	}
	return &Model{
		arch: arch, config: config, backend: opts.Backend, dtype: opts.DType,
		specs: specs, weights: weights, execs: map[string]*graph.Exec{},
	}, nil
}

// upload puts the weights on the backend's device now, so running out of device memory is a
// load error rather than a failure in the middle of an evaluation. On the Go backend the
// buffers share the host memory (no copy).
func upload(b compute.Backend, specs []ParamSpec, weights []*tensors.Tensor) (err error) {
	name := ""
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("uploading weight %q to %s: %v", name, b.Name(), r)
		}
	}()
	for i, w := range weights {
		name = specs[i].Name
		if err := w.MaterializeOnDevice(b, true, 0); err != nil {
			return fmt.Errorf("uploading weight %q to %s: %w", name, b.Name(), err)
		}
	}
	return nil
}

// Arch is the model's architecture.
func (m *Model) Arch() Architecture { return m.arch }

// Dir is the resolved folder the model was loaded from ("" for New): pass it as
// checkpoint.SaveOptions.TokenizerFrom to keep the tokenizer next to a fine-tuned copy.
func (m *Model) Dir() string { return m.dir }

// Config is the model's raw config.json.
func (m *Model) Config() json.RawMessage { return m.config }

// Backend is the backend the model runs on.
func (m *Model) Backend() compute.Backend { return m.backend }

// DType is the compute dtype of the weights.
func (m *Model) DType() dtypes.DType { return m.dtype }

// Weights returns the current weights by ParamSpec name. The tensors are the model's own:
// treat them as read-only and use SetWeights to change them.
func (m *Model) Weights() map[string]*tensors.Tensor {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]*tensors.Tensor, len(m.specs))
	for i, s := range m.specs {
		out[s.Name] = m.weights[i]
	}
	return out
}

// SetWeights replaces some or all weights (keyed by ParamSpec name), checking names and shapes
// and converting to the model's dtype. Nothing changes if any weight is rejected.
func (m *Model) SetWeights(w map[string]*tensors.Tensor) error {
	index := make(map[string]int, len(m.specs))
	for i, s := range m.specs {
		index[s.Name] = i
	}
	updates := map[int]*tensors.Tensor{}
	for name, t := range w {
		i, ok := index[name]
		if !ok {
			return fmt.Errorf("SetWeights: %s model has no parameter %q", m.arch.Family(), name)
		}
		if t == nil {
			return fmt.Errorf("SetWeights: weight %q is nil", name)
		}
		c, err := checkWeight(name, t, m.specs[i], m.dtype)
		if err != nil {
			return fmt.Errorf("SetWeights: %w", err)
		}
		if err := upload(m.backend, m.specs[i:i+1], []*tensors.Tensor{c}); err != nil {
			return fmt.Errorf("SetWeights: %w", err)
		}
		updates[i] = c
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, t := range updates {
		m.weights[i] = t
	}
	m.hash = ""
	return nil
}

// Hash is a stable SHA-256 (hex) of the config and every weight's name, dtype, shape and bytes,
// usable as a cache key: equal models hash equal across processes.
func (m *Model) Hash() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.hash != "" {
		return m.hash
	}
	h := sha256.New()
	writeField := func(b []byte) {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	writeField(m.config)
	for i, s := range m.specs {
		t := m.weights[i]
		writeField([]byte(s.Name))
		writeField([]byte(fmt.Sprintf("%s%v", t.DType(), t.Shape().Dimensions)))
		_ = t.ConstBytes(func(data []byte) { writeField(data) })
	}
	m.hash = hex.EncodeToString(h.Sum(nil))
	return m.hash
}

// Save writes the model as a Hugging Face folder (config.json + safetensors); see
// checkpoint.Save.
func (m *Model) Save(dir string, opts checkpoint.SaveOptions) error {
	return checkpoint.Save(dir, m.config, m.Weights(), opts)
}

// exec returns (creating once) a graph executor by key. build receives the parameter accessor
// built from the first len(specs) inputs and the remaining inputs.
func (m *Model) exec(key string, build func(p Params, rest []*graph.Node) []*graph.Node) (*graph.Exec, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.execs[key]; ok {
		return e, nil
	}
	n, family, specs := len(m.specs), m.arch.Family(), m.specs
	e, err := graph.NewExec(m.backend, func(inputs []*graph.Node) []*graph.Node {
		return build(ParamsFor(family, specs, inputs[:n]), inputs[n:])
	})
	if err != nil {
		return nil, err
	}
	// Input shapes come from small bucketed sets (see bucketLength, nextPow2 and Generate's
	// power-of-two prefill pieces), so the compiled-graph cache is bounded by construction; a
	// fixed limit would make GoMLX fail the call that exceeds it.
	e = e.WithName(family + "-" + key).SetMaxCache(-1)
	m.execs[key] = e
	return e, nil
}

// run executes an executor with the current weights followed by extra arguments.
func (m *Model) run(e *graph.Exec, extra ...any) (out []*tensors.Tensor, err error) {
	m.mu.Lock()
	args := make([]any, 0, len(m.weights)+len(extra))
	for _, w := range m.weights {
		args = append(args, w)
	}
	m.mu.Unlock()
	args = append(args, extra...)
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("lm: %s graph: %v", m.arch.Family(), r)
		}
	}()
	return e.Exec(args...)
}

// ParseDType maps a command-line dtype name (float32/f32, bfloat16/bf16, float16/f16) to a
// compute dtype.
func ParseDType(s string) (dtypes.DType, error) {
	switch s {
	case "", "float32", "f32", "F32":
		return dtypes.Float32, nil
	case "bfloat16", "bf16", "BF16":
		return dtypes.BFloat16, nil
	case "float16", "f16", "F16":
		return dtypes.Float16, nil
	}
	return dtypes.InvalidDType, fmt.Errorf("unknown dtype %q: use float32, bfloat16 or float16", s)
}

// ParamsFor maps graph nodes given in Specs order to a Params accessor, for code that builds
// its own graphs over a model's weights (the trainer): pass WeightList() as the first inputs.
// Asking for a name not in specs panics inside graph building (GoMLX turns it into an error).
func ParamsFor(family string, specs []ParamSpec, nodes []*graph.Node) Params {
	byName := make(map[string]*graph.Node, len(specs))
	for i, s := range specs {
		byName[s.Name] = nodes[i]
	}
	return func(name string) *graph.Node {
		node, ok := byName[name]
		if !ok {
			panic(fmt.Sprintf("lm: %s graph asked for unknown parameter %q", family, name))
		}
		return node
	}
}

// WeightList returns the current weights in Arch().Specs() order (the model's own tensors:
// read-only; use SetWeights to change them).
func (m *Model) WeightList() []*tensors.Tensor {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.weights)
}
