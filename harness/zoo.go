package harness

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/curriculum/synthetic"
	"github.com/perpetual-ml/perpetual/models/checkpoint"
	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/models/tokenizer"
)

// ZooPrefix marks a model path that names a zoo entry ("zoo:gemma-tiny") instead of a folder.
const ZooPrefix = "zoo:"

// ZooEntry is a model the harness can make itself: Build writes a complete model folder
// (config.json, safetensors, tokenizer.json, tokenizer_config.json) into an empty directory.
// Version is part of the folder name, so changing a recipe rebuilds its model (and, through the
// model's hash, reruns its cells).
type ZooEntry struct {
	Version string
	Build   func(dir string) error
}

var (
	zooMu sync.Mutex
	zoo   = map[string]ZooEntry{
		"gemma-tiny": {Version: "random-v1", Build: func(dir string) error { return BuildRandomModel(dir, TinyGemmaConfig, 1) }},
		"mamba-tiny": {Version: "random-v1", Build: func(dir string) error { return BuildRandomModel(dir, TinyMambaConfig, 1) }},
	}
)

// RegisterZoo adds or replaces a zoo entry (issue 9's pre-trained miniature models replace the
// random-init recipes here).
func RegisterZoo(name string, e ZooEntry) {
	zooMu.Lock()
	defer zooMu.Unlock()
	zoo[name] = e
}

// ZooNames lists the zoo entries.
func ZooNames() []string {
	zooMu.Lock()
	defer zooMu.Unlock()
	var names []string
	for n := range zoo {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ResolveModel turns a suite model path into a folder: a folder is returned as is (it must
// exist); "zoo:NAME" is built once under zooDir/NAME-VERSION (atomically) and reused after.
func ResolveModel(path, zooDir string) (string, error) {
	if !strings.HasPrefix(path, ZooPrefix) {
		st, err := os.Stat(path)
		if err != nil {
			return "", fmt.Errorf("model folder %s: %w", path, err)
		}
		if !st.IsDir() {
			return "", fmt.Errorf("model folder %s: not a directory", path)
		}
		return path, nil
	}
	name := strings.TrimPrefix(path, ZooPrefix)
	zooMu.Lock()
	e, ok := zoo[name]
	zooMu.Unlock()
	if !ok {
		return "", fmt.Errorf("model %s: no zoo entry %q (have %v)", path, name, ZooNames())
	}
	dir := filepath.Join(zooDir, name+"-"+e.Version)
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(zooDir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(zooDir, "."+name+"-*")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if err := e.Build(tmp); err != nil {
		return "", fmt.Errorf("model %s: building: %w", path, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, statErr := os.Stat(filepath.Join(dir, "config.json")); statErr == nil {
			return dir, nil // another process built it first
		}
		return "", err
	}
	return dir, nil
}

// TinyGemmaConfig is a miniature Gemma (about 0.2M parameters, 512-token vocabulary): small
// enough to fine-tune and evaluate a whole suite in minutes on two CPU cores.
var TinyGemmaConfig = map[string]any{
	"architectures":           []string{"GemmaForCausalLM"},
	"model_type":              "gemma",
	"vocab_size":              512,
	"hidden_size":             64,
	"intermediate_size":       128,
	"num_hidden_layers":       2,
	"num_attention_heads":     4,
	"num_key_value_heads":     1,
	"head_dim":                16,
	"rms_norm_eps":            1e-6,
	"rope_theta":              10000.0,
	"max_position_embeddings": 1024,
	"hidden_act":              "gelu_pytorch_tanh",
	"hidden_activation":       "gelu_pytorch_tanh",
	"attention_bias":          false,
	"bos_token_id":            2,
	"eos_token_id":            1,
	"pad_token_id":            0,
	"tie_word_embeddings":     true,
	"torch_dtype":             "float32",
}

// TinyMambaConfig is a miniature Mamba (about 0.1M parameters) with the tokenizer of
// TinyGemmaConfig's size.
var TinyMambaConfig = map[string]any{
	"architectures":           []string{"MambaForCausalLM"},
	"model_type":              "mamba",
	"vocab_size":              512,
	"hidden_size":             64,
	"state_size":              8,
	"num_hidden_layers":       2,
	"layer_norm_epsilon":      1e-5,
	"expand":                  2,
	"intermediate_size":       128,
	"conv_kernel":             4,
	"use_bias":                false,
	"use_conv_bias":           true,
	"hidden_act":              "silu",
	"time_step_rank":          4,
	"residual_in_fp32":        true,
	"tie_word_embeddings":     true,
	"pad_vocab_size_multiple": 8,
	"bos_token_id":            2,
	"eos_token_id":            1,
	"pad_token_id":            0,
	"torch_dtype":             "float32",
}

// initValue is the random-init value of element i of a parameter: N(0, 0.02) except where a
// family's parameterisation needs a scale (Mamba's RMSNorm weights and skip D are 1 and A_log is
// log(1..N), as Hugging Face initialises them; Gemma's norms are (1 + w), so 0-centred is right).
func initValue(family, name string, shape []int, i int, rng *rand.Rand) float32 {
	if family == "mamba" {
		switch {
		case strings.HasSuffix(name, "norm.weight") || strings.HasSuffix(name, "norm_f.weight") || strings.HasSuffix(name, "mixer.D"):
			return 1
		case strings.HasSuffix(name, "mixer.A_log"):
			return float32(math.Log(float64(i%shape[len(shape)-1] + 1)))
		}
	}
	return float32(rng.NormFloat64() * 0.02)
}

// randomModelSpecials are the special tokens of random-init models, at Gemma's ids.
var randomModelSpecials = []string{"<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"}

// BuildRandomModel writes a randomly initialised model of the given config into dir, with a
// byte-level BPE tokenizer trained on the synthetic world's documents (so it covers English
// text without having seen any task's facts). The config's vocab_size is the tokenizer's size.
// Weights are N(0, 0.02) from seed, so the folder is reproducible byte for byte.
func BuildRandomModel(dir string, config map[string]any, seed uint64) error {
	vocab, ok := config["vocab_size"].(int)
	if !ok || vocab < 256+len(randomModelSpecials) {
		return fmt.Errorf("random model: vocab_size must be an int >= %d", 256+len(randomModelSpecials))
	}
	world := synthetic.NewWorld(synthetic.WorldOptions{Seed: int64(seed), Towns: 40, ReadingPassages: 20})
	tokJSON, err := tokenizer.Train(world.Docs, vocab, tokenizer.TrainOptions{SpecialTokens: randomModelSpecials})
	if err != nil {
		return fmt.Errorf("random model: tokenizer: %w", err)
	}
	rawConfig, err := json.MarshalIndent(config, "", "  ")
	if err != nil {
		return err
	}
	arch, err := lm.NewArchitecture(rawConfig)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	weights := map[string]*tensors.Tensor{}
	for _, spec := range arch.Specs() {
		n := 1
		for _, d := range spec.Shape {
			n *= d
		}
		data := make([]float32, n)
		for i := range data {
			data[i] = initValue(arch.Family(), spec.Name, spec.Shape, i, rng)
		}
		weights[spec.Name] = tensors.FromFlatDataAndDimensions(data, spec.Shape...)
	}
	m, err := lm.New(arch, rawConfig, weights, lm.LoadOptions{})
	if err != nil {
		return err
	}
	if err := m.Save(dir, checkpoint.SaveOptions{}); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), tokJSON, 0o644); err != nil {
		return err
	}
	// Gemma's tokenizer adds BOS; GPT-NeoX-style tokenizers (Mamba's) do not.
	tc := fmt.Sprintf(`{"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>", "add_bos_token": %v}`,
		arch.Family() != "mamba")
	return os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(tc+"\n"), 0o644)
}
