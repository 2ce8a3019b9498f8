package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/perpetual-ml/perpetual/bench"
	"github.com/perpetual-ml/perpetual/models/checkpoint"
	"github.com/perpetual-ml/perpetual/models/lm"
)

// newBenchCmd builds the `bench` command (fresh flags on every call).
func newBenchCmd() *cobra.Command {
	var (
		o                bench.Options
		modelDir, config string
		dtype, phases    string
		genPrompts       string
		asJSON           bool
		memLimitGiB      float64
	)
	cmd := &cobra.Command{
		Use:   "bench (--model DIR | --config config.json) [--batch 8 --length 256 --repeats 5] [--phases generation --gen-prompts 16,256 --gen-tokens 32]",
		Short: "Time the production scoring, training and generation paths and compare them with the machine's matmul peak",
		Long: `Times what Perpetual runs for real on one model: scoring (LogLikelihood, the evaluation's path)
and one optimizer step of the trainer (packing, cross-entropy, gradients, clipping, AdamW), each
--warmup times untimed (compilation) and then --repeats times under the clock. The model is a
folder (--model) or a config.json with random weights (--config; the weights the Go benchmarks
use). Reported per phase: median, minimum and maximum seconds per run, tokens/s, achieved GFLOP/s
from the architecture's FLOP count (forward: about 2 x parameters x tokens plus attention;
training: 3 x forward), the float32 matmul peak measured in the same process (--matmul N: an
chain of 8 N x N x N DotGenerals per timed run on the same backend, in both layouts the Go
backend runs natively, x·y and x·yᵀ, the faster taken as the peak; also its GFLOP per CPU second
and the cores it had) and the share of it achieved, peak RSS (VmHWM, reset
per phase) and the Go heap.

The generation phase, timed only when --phases names it, runs Generate (the decoding path of
perpetual generate, with its KV cache or recurrent state) once per --gen-prompts length: a random
prompt (from --seed) is prefilled, then --gen-tokens new tokens are chosen greedily, never stopping
at EOS. Reported per prompt length: prefill seconds and tokens/s (to the first new token), decoding
milliseconds per token and tokens/s (the median over the timed runs of the time from the first to
the last new token, over --gen-tokens - 1 steps), the cache Generate allocated and the peak RSS.
An attention model's decoding step reads its whole cache, so its cost grows with the prompt; a
recurrent model's (Mamba) does not. Without --gen-prompts, 16 and 256 are lowered to fit
max_position_embeddings; a length given that does not fit with --gen-tokens is refused.

Run it on a quiet machine: other jobs change every number.`,
		Example: `  perpetual bench --config models/gemma/testdata/bench_config.json --batch 8 --length 256 --repeats 5
  perpetual bench --model zoo/checkpoints/gemma-tiny --phases scoring --json
  perpetual bench --model zoo/checkpoints/mamba-tiny --phases generation --gen-prompts 16,256,1024 --gen-tokens 64 --matmul 0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (modelDir == "") == (config == "") {
				return fmt.Errorf("give exactly one of --model DIR (a model folder) or --config FILE (a config.json, random weights)")
			}
			if memLimitGiB < 0 || math.IsNaN(memLimitGiB) || math.IsInf(memLimitGiB, 0) {
				return fmt.Errorf("--memory-limit %v: want GiB >= 0 (0: MemAvailable)", memLimitGiB)
			}
			o.MemoryLimit = int64(memLimitGiB * (1 << 30))
			var err error
			if phases != "" {
				o.Phases = strings.Split(phases, ",")
			}
			// Left unset, the default lengths are lowered to fit the model's window; lengths
			// given are the user's and are refused when they do not fit.
			if cmd.Flags().Changed("gen-prompts") {
				if o.GenPrompts, err = parseGenPrompts(genPrompts); err != nil {
					return err
				}
			}
			if err := o.Validate(); err != nil {
				return err
			}
			opts := lm.LoadOptions{}
			if opts.DType, err = lm.ParseDType(dtype); err != nil {
				return fmt.Errorf("--dtype: %w", err)
			}
			o.Progress = cmd.ErrOrStderr()
			model, source, err := benchModel(modelDir, config, o, opts)
			if err != nil {
				return err
			}
			report, err := bench.Run(model, source, o)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(report)
			}
			return report.WriteText(cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&modelDir, "model", "", "model folder (Hugging Face layout)")
	f.StringVar(&config, "config", "", "config.json of a model to build with random weights")
	f.StringVar(&dtype, "dtype", "float32", "compute dtype: float32, bfloat16 or float16")
	f.IntVar(&o.Batch, "batch", 8, "rows per run (scoring requests, packed training rows)")
	f.IntVar(&o.Length, "length", 256, "tokens per row")
	f.IntVar(&o.Warmup, "warmup", 1, "untimed runs per phase before the timed ones (at least 1: the first compiles)")
	f.IntVar(&o.Repeats, "repeats", 5, "timed runs per phase")
	f.IntVar(&o.Matmul, "matmul", 1024, "side N of the float32 N x N x N matmuls that measure the backend's peak (8 chained products per timed run), timed as x·y and x·yᵀ, the faster kept (0 skips it; the Go backend runs N <= 161 on one core, unpacked)")
	f.Int64Var(&o.Seed, "seed", 1, "seed of the tokens, the packing and --config's random weights")
	f.StringVar(&phases, "phases", bench.PhaseScoring+","+bench.PhaseTraining, "phases to time, comma-separated: scoring, training, generation")
	f.StringVar(&genPrompts, "gen-prompts", joinInts(bench.DefaultGenPrompts), "prompt lengths of the generation phase in tokens, comma-separated (the default is lowered to fit max_position_embeddings)")
	f.IntVar(&o.GenTokens, "gen-tokens", bench.DefaultGenTokens, "new tokens per generation run (at least 2: the first comes from the prefill)")
	f.Float64Var(&memLimitGiB, "memory-limit", 0, "GiB the training phase's memory estimate may reach (0: MemAvailable)")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

// benchModel loads the folder or builds the config's random model, after checking the options
// against its architecture (so a bad --length fails before gigabytes of weights are read).
func benchModel(modelDir, config string, o bench.Options, opts lm.LoadOptions) (*lm.Model, string, error) {
	if config != "" {
		raw, err := os.ReadFile(config)
		if err != nil {
			return nil, "", fmt.Errorf("--config: %w", err)
		}
		arch, err := lm.NewArchitecture(raw)
		if err != nil {
			return nil, "", fmt.Errorf("--config %s: %w", config, err)
		}
		if err := o.ValidateFor(arch); err != nil {
			return nil, "", err
		}
		m, err := bench.RandomModel(raw, uint64(o.Seed), opts)
		return m, config + " (random weights)", err
	}
	ck, err := checkpoint.Open(modelDir)
	if err != nil {
		return nil, "", fmt.Errorf("--model: %w", err)
	}
	raw := ck.Config
	ck.Close()
	arch, err := lm.NewArchitecture(raw)
	if err != nil {
		return nil, "", fmt.Errorf("--model %s: %w", modelDir, err)
	}
	if err := o.ValidateFor(arch); err != nil {
		return nil, "", err
	}
	m, err := lm.Load(modelDir, opts)
	return m, modelDir, err
}

// parseGenPrompts reads --gen-prompts: positive token counts, comma-separated.
func parseGenPrompts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("--gen-prompts %q: want positive token counts, comma-separated (e.g. 16,256)", s)
		}
		out = append(out, n)
	}
	return out, nil
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}
