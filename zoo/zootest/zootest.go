// Package zootest holds the tiny random-init models of tests: configs small enough to fine-tune
// and evaluate a whole suite in seconds, and Random, a harness.Zoo that resolves "zoo:NAME" to
// them (the real zoo is package zoo's Resolver). Models are built by zoo.RandomModel, the zoo's
// own initialisation, so tests and the zoo share one random-init scheme.
package zootest

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/perpetual-ml/perpetual/curriculum"
	"github.com/perpetual-ml/perpetual/curriculum/synthetic"
	"github.com/perpetual-ml/perpetual/zoo"
)

// TinyGemma is a miniature Gemma (about 0.2M parameters, 512-token vocabulary): small
// enough to fine-tune and evaluate a whole suite in minutes on two CPU cores.
var TinyGemma = map[string]any{
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

// TinyMamba is a miniature Mamba (about 0.1M parameters) with the tokenizer of
// TinyGemma's size.
var TinyMamba = map[string]any{
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

// Random is a harness.Zoo of random-init tiny models: "gemma-tiny" (TinyGemma) and
// "mamba-tiny" (TinyMamba), seed 1, built once into cacheDir/NAME-random-v2.
type Random struct{}

// randomModels are Random's entries.
var randomModels = map[string]map[string]any{"gemma-tiny": TinyGemma, "mamba-tiny": TinyMamba}

// Resolve builds (once) and returns the folder of a random-init tiny model.
func (Random) Resolve(name, cacheDir string) (string, error) {
	cfg, ok := randomModels[name]
	if !ok {
		var names []string
		for n := range randomModels {
			names = append(names, n)
		}
		sort.Strings(names)
		return "", fmt.Errorf("zootest: no random model %q (have %s)", name, strings.Join(names, ", "))
	}
	dir := filepath.Join(cacheDir, name+"-random-v2")
	return dir, zoo.BuildOnce(dir, func(tmp string) error { return zoo.RandomModel(tmp, cfg, 1) })
}

// Folders writes a random-init model of config (seed 1) and a products curriculum of chunks
// entities (2 facts each) into t's temporary folder and returns their paths: the inputs of a
// fine-tuning test.
func Folders(t testing.TB, config map[string]any, chunks int) (model, curriculumDir string) {
	t.Helper()
	tmp := t.TempDir()
	model = filepath.Join(tmp, "base")
	if err := zoo.RandomModel(model, config, 1); err != nil {
		t.Fatal(err)
	}
	c, err := synthetic.Build("products", synthetic.Options{Seed: 1, Chunks: chunks, FactsPerChunk: 2})
	if err != nil {
		t.Fatal(err)
	}
	curriculumDir = filepath.Join(tmp, "cur")
	if err := curriculum.Write(curriculumDir, c); err != nil {
		t.Fatal(err)
	}
	return model, curriculumDir
}
