// Package training fine-tunes a language model (any lm.Architecture: Gemma, Mamba) on a
// curriculum of document chunks and flashcards, as in "Can Instruct-Tuned Models Learn New
// Things?" (Susanto et al. 2024).
//
// The trainer knows graphs, not architectures: the step graphs take the trainable weights, the
// AdamW moments and a packed batch (tokens, positions and segment ids restarting per item, so
// attention and recurrent state never cross items) and call Architecture.Logits through an
// lm.Params accessor. That indirection is also how LoRA works: target projections return
// W + (alpha/r)·B·A with only A and B trained, merged on export.
//
// One optimizer step is Accumulation micro-batches of the "accumulate" graph (summed
// cross-entropy over target tokens and its gradient, from graph.Gradient, added to accumulators
// that stay on the device) followed by the "apply" graph: the mean over all target tokens of
// the step, global-norm clipping (as torch's clip_grad_norm_) and AdamW with decoupled weight
// decay (not on norms, biases or 1-D parameters) under Hugging Face's linear schedule with
// warm-up. GoMLX has an optimizer package, but it is tied to its model.Store/context variables;
// our weights are explicit graph parameters, so AdamW is a few lines of graph code here.
//
// Runs are seeded and deterministic on one machine; checkpoints (the model in Hugging Face
// format plus optimizer.safetensors and state.json) are written atomically and Options.Resume
// continues a killed run exactly. Progress is drawn with github.com/schollz/progressbar/v3 (the
// CLI's dependency already) and every step is a line of metrics.jsonl.
package training
