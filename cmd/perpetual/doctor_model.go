package main

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/gomlx/compute/dtypes"
	"github.com/spf13/cobra"

	"github.com/perpetual-ml/perpetual/models/lm"
)

// doctorModelCheck adds `doctor --model DIR` to cmd and returns its check: a model folder's
// config and safetensors headers against its architecture, without loading the weights, and
// the memory estimate of scoring and training it (--batch, --length, --dtype).
func doctorModelCheck(cmd *cobra.Command) func(*cobra.Command) error {
	var (
		dir           string
		batch, length int
		dtype         string
	)
	f := cmd.Flags()
	f.StringVar(&dir, "model", "", "model folder (plain, Hugging Face cache models--ORG--NAME, or snapshot) to check")
	f.IntVar(&batch, "batch", 8, "with --model: rows per batch of the memory estimate")
	f.IntVar(&length, "length", 512, "with --model: tokens per row of the memory estimate (at most the model's window)")
	f.StringVar(&dtype, "dtype", "float32", "with --model: compute dtype of the memory estimate (float32, bfloat16, float16)")
	return func(cmd *cobra.Command) error {
		if dir == "" {
			return nil
		}
		if batch < 1 || length < 1 {
			return fmt.Errorf("--batch %d --length %d: the memory estimate needs at least one row of one token", batch, length)
		}
		dt, err := lm.ParseDType(dtype)
		if err != nil {
			return fmt.Errorf("--dtype: %w", err)
		}
		out := cmd.OutOrStdout()
		in, err := lm.Inspect(dir)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "model:    %s\n", in.Dir)
		fmt.Fprintf(out, "family:   %s (registered: %s)\n", orNone(in.Family), strings.Join(lm.Families(), ", "))
		fmt.Fprintf(out, "params:   %d\n", in.Parameters)
		var dts []string
		for d, n := range in.DTypes {
			dts = append(dts, fmt.Sprintf("%s x%d", d, n))
		}
		sort.Strings(dts)
		fmt.Fprintf(out, "dtypes:   %s\n", strings.Join(dts, ", "))
		fmt.Fprintf(out, "weights:  %d file(s)\n", len(in.Files))
		fmt.Fprintf(out, "tokenizer: %s\n", orNone(strings.Join(in.TokenizerFiles, ", ")))
		if len(in.Unused) > 0 {
			fmt.Fprintf(out, "unused:   %d tensor(s), e.g. %s\n", len(in.Unused), in.Unused[0])
		}
		for _, p := range in.Problems {
			fmt.Fprintf(out, "problem:  %s\n", p)
		}
		if in.Arch != nil {
			printMemory(out, in.Arch, batch, length, dt)
		}
		if len(in.Problems) > 0 {
			return fmt.Errorf("%s: %d problem(s); the model will not load", in.Dir, len(in.Problems))
		}
		fmt.Fprintln(out, "model ok: loadable")
		return nil
	}
}

// printMemory prints lm.EstimateMemory for scoring (one LogLikelihood call: batch rows within
// the default logits budget) and for full fine-tuning of arch on batch rows of length tokens
// (capped at the model's window) computed in dtype, and the decoding cache of one sequence of
// that length.
func printMemory(out io.Writer, arch lm.Architecture, batch, length int, dtype dtypes.DType) {
	if ml := arch.MaxLength(); ml > 0 && length > ml {
		length = ml
	}
	fmt.Fprintf(out, "memory:   %s, %d x %d tokens (lm.EstimateMemory; --batch, --length, --dtype change it)\n", dtype, batch, length)
	// LogLikelihood runs at most lm.ScoringRows rows per call, padded to a power of two.
	rows := 1
	for rows < min(batch, lm.ScoringRows(arch, length, 0)) {
		rows *= 2
	}
	e := lm.EstimateMemory(arch, lm.MemoryRequest{Mode: lm.Scoring, Batch: rows, Length: length, DType: dtype})
	fmt.Fprintf(out, "  scoring:  %s (%d row(s) per call)\n", e, rows)
	e = lm.EstimateMemory(arch, lm.MemoryRequest{Mode: lm.Training, Batch: batch, Length: length, DType: dtype})
	fmt.Fprintf(out, "  training: %s (full fine-tuning; LoRA trains fewer parameters)\n", e)
	var cache int64
	for _, c := range arch.CacheShapes(length, dtype) {
		n := int64(c.DType.Size())
		for _, d := range c.Dimensions {
			n *= int64(d)
		}
		cache += n
	}
	fmt.Fprintf(out, "  decoding: cache of %s per sequence of %d tokens\n", lm.Bytes(cache), length)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
