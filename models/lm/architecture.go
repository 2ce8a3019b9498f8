// Package lm is the contract between model families (models/gemma, models/llama, models/mamba)
// and everything that uses a language model: loading a Hugging Face folder, scoring
// log-likelihoods, generating and training.
//
// A model family implements Architecture: the parameter list that config.json implies and the
// computation graphs, written once in GoMLX. Everything else (batching, padding, caches on the
// host side, dtype policy, saving) lives here, so evaluation and training treat every family
// alike and a family file reads like the paper's equations.
package lm

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/graph"
)

// ParamSpec describes one parameter an architecture needs, named as in Hugging Face checkpoints.
type ParamSpec struct {
	// Name is the Hugging Face tensor name, e.g. "model.layers.0.self_attn.q_proj.weight".
	Name string
	// Shape is the tensor shape config.json implies, in Hugging Face (PyTorch) layout.
	Shape []int
	// Aliases are other names a checkpoint may use for the same tensor (e.g. a tied "lm_head.weight").
	// Saving writes Name only.
	Aliases []string
}

// NumParams is the number of scalars in specs: a tensor with aliases (a tied head) counts once.
func NumParams(specs []ParamSpec) int {
	n := 0
	for _, s := range specs {
		size := 1
		for _, d := range s.Shape {
			size *= d
		}
		n += size
	}
	return n
}

// Params gives the graph node of a parameter by its Hugging Face name while a graph is built.
// Nodes have the model's compute dtype (float32 on CPU, possibly bfloat16 on GPU).
type Params func(name string) *graph.Node

// Architecture is what a model family implements. Implementations are immutable after
// construction and safe to share between goroutines.
type Architecture interface {
	// Family is the config.json "model_type" this architecture implements ("gemma", "mamba").
	Family() string

	// CodeVersion names the numerics of this implementation (e.g. "1"): results computed with it
	// are cached under keys that include it (the harness's cells and fine-tunings, through
	// CodeVersionOf), so a change that moves the logits beyond float32 rounding must change it.
	// The conformance check "code-version" fails until it does (lmtest).
	CodeVersion() string

	// Specs lists every parameter, in a stable order, with shapes from config.json.
	Specs() []ParamSpec

	// VocabSize is the number of rows of the output logits.
	VocabSize() int

	// MaxLength is the longest sequence the model accepts (max_position_embeddings), or 0 if
	// unbounded (recurrent models).
	MaxLength() int

	// Logits computes next-token logits for a batch of sequences.
	//
	//   tokens, positions, segments: int32 [B, T].
	//   positions: position of each token within its own document (restarting at 0 for each packed item).
	//   segments: an id per packed item; 0 marks padding. A token sees only earlier tokens of its own
	//     segment (attention mask for transformers, state reset for recurrent models).
	//
	// Returns float32 [B, T, V]. Results at non-padding positions must not depend on padding or on
	// the other rows of the batch.
	Logits(p Params, tokens, positions, segments *graph.Node) *graph.Node

	// CacheShapes returns the shapes (and dtypes) of the decoding cache for a batch of one
	// sequence of at most maxLength tokens, given the compute dtype. The cache starts as zeros.
	CacheShapes(maxLength int, dtype dtypes.DType) []CacheShape

	// Step runs the model on a chunk of tokens int32 [1, S] whose first token is at position
	// start (int32 scalar), reading and returning the decoding cache. It returns float32 logits
	// [1, S, V] and the updated cache. Used for prefill (S = prompt length) and decoding (S = 1);
	// results must equal Logits on the whole sequence.
	Step(p Params, cache []*graph.Node, tokens, start *graph.Node) (logits *graph.Node, newCache []*graph.Node)
}

// FLOPCounter is implemented by architectures that can count the arithmetic of Logits, for
// throughput reports (`perpetual bench`).
type FLOPCounter interface {
	// LogitsFLOPs is the number of floating-point operations of Logits on one row of T
	// tokens, a multiply-add counting 2, as the graph computes it (e.g. attention over all
	// T x T pairs when the graph masks rather than skips). A training step (forward and
	// backward) is 3 times as much.
	LogitsFLOPs(T int) float64
}

// TrainingLogits is implemented by architectures with a graph of their own for the graphs that
// take gradients (the trainer's accumulate step): the same values as Logits, with hand-written
// gradients where autodiff's would be slow on the backend. Evaluation, scoring and decoding use
// Logits. The conformance suite checks both graphs' gradients against the reference.
type TrainingLogits interface {
	TrainingLogits(p Params, tokens, positions, segments *graph.Node) *graph.Node
}

// Version names the numerics of this package's own code (batching, padding, log-likelihoods,
// shared-context scoring, decoding): CodeVersionOf includes it, so results caches keyed on a
// model's code version are invalidated when it changes. Change it with any change to score.go,
// shared.go or generate.go that changes a log-likelihood or a generated token.
const Version = "lm-1"

// CodeVersionOf is the code version of the model in folder dir: this package's Version, the
// family and the family's CodeVersion, read from dir/config.json without loading weights. Cache
// keys of results computed with the model include it.
func CodeVersionOf(dir string) (string, error) {
	path := filepath.Join(dir, "config.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	arch, err := NewArchitecture(raw)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return Version + "/" + arch.Family() + "/" + arch.CodeVersion(), nil
}

// CacheShape is the shape of one decoding-cache tensor.
type CacheShape struct {
	Name       string
	DType      dtypes.DType
	Dimensions []int
}

// Factory builds an Architecture from the raw config.json of a model folder. It must validate the
// config and return errors that name the offending field.
type Factory func(config json.RawMessage) (Architecture, error)

var (
	registryMu sync.Mutex
	registry   = map[string]Factory{}
)

// Register makes a family loadable by its config.json "model_type". Families call it from init.
func Register(modelType string, factory Factory) {
	registryMu.Lock()
	defer registryMu.Unlock()
	registry[modelType] = factory
}

// Families lists the registered model types.
func Families() []string {
	registryMu.Lock()
	defer registryMu.Unlock()
	var names []string
	for name := range registry {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// NewArchitecture builds the Architecture a config.json describes.
func NewArchitecture(config json.RawMessage) (Architecture, error) {
	var head struct {
		ModelType     string   `json:"model_type"`
		Architectures []string `json:"architectures"`
	}
	if err := json.Unmarshal(config, &head); err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	registryMu.Lock()
	factory, ok := registry[head.ModelType]
	registryMu.Unlock()
	if !ok {
		return nil, fmt.Errorf("config.json: unknown architecture model_type=%q (architectures %v); supported: %v",
			head.ModelType, head.Architectures, Families())
	}
	return factory(config)
}
