package main

// Model families register their architectures with models/lm in init; importing them here
// makes `perpetual logits`, `doctor --model` and every command that loads a model know them.
import (
	_ "github.com/perpetual-ml/perpetual/models/gemma" // gemma, gemma2, gemma3_text
	_ "github.com/perpetual-ml/perpetual/models/llama" // llama, qwen2, qwen3
	_ "github.com/perpetual-ml/perpetual/models/mamba"
)
