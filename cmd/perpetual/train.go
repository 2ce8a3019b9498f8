package main

import (
	"errors"
	"fmt"
	"math"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/perpetual-ml/perpetual/models/prompt"
	"github.com/perpetual-ml/perpetual/training"
	"github.com/perpetual-ml/perpetual/training/finetuner"
)

// newTrainCmd builds the `train` command (fresh flags on every call).
func newTrainCmd() *cobra.Command {
	fineTuner = finetuner.FineTuner{} // `perpetual results` fine-tunes through the trainer
	var (
		o                    training.Options
		model, cur, format   string
		loraRank             int
		loraAlpha            float64
		loraTargets          string
		quiet, noPacking     bool
		memLimitGiB          float64
		clip, weightDecay    float64
		stopAfter, warmupArg int
		paraphrases          int
	)
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Fine-tune a model on a curriculum (documents + flashcards), with checkpoints and resume",
		Long: `Fine-tune a Hugging Face model folder on a curriculum's training split.

The output folder receives the model (config.json, safetensors, tokenizer), metrics.jsonl (one line
per optimizer step: loss, lr, grad_norm, tokens_per_s, val_loss), retention.json (with
--retention) and checkpoint/ (model + optimizer state, for --resume). Defaults follow the paper:
3 epochs, lr 2e-4, 5 warm-up steps then linear decay, batch 2 x 4 accumulation, AdamW, clip 1.0.
Every value is used as given: --warmup 0, --clip 0 and --weight-decay 0 mean none. The flags are
checked before anything is loaded or written, and --resume refuses a checkpoint written with
other settings or data.`,
		Example: `  perpetual train --model models/gemma-2b-it --curriculum cur/products --out ft/products
  perpetual train --model zoo-dir --curriculum cur/products --out ft/p --lora-rank 8 --checkpoint-every 50
  perpetual train --model zoo-dir --curriculum cur/products --out ft/p --resume`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := cmd.Flags()
			if model == "" || cur == "" || o.Out == "" {
				return fmt.Errorf("--model, --curriculum and --out are required")
			}
			run, err := trainOptions(f, o, trainFlags{noPacking: noPacking, memLimitGiB: memLimitGiB, stopAfter: stopAfter, warmup: warmupArg,
				clip: clip, weightDecay: weightDecay, loraRank: loraRank, loraAlpha: loraAlpha, loraTargets: loraTargets,
				paraphrases: paraphrases})
			if err != nil {
				return err
			}
			if !quiet {
				run.Progress = cmd.ErrOrStderr()
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			run.Context = ctx // Ctrl-C writes a checkpoint; --resume continues
			res, err := training.RunFolders(model, cur, format, run)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if res.Stopped {
				fmt.Fprintf(out, "stopped after step %d; checkpoint in %s/checkpoint (continue with --resume)\n", res.Steps, run.Out)
				return nil
			}
			if len(res.Metrics) == 0 {
				// A resume from the last step's checkpoint whose metrics.jsonl lost its lines.
				fmt.Fprintf(out, "trained %d steps (no metrics recorded in %s/metrics.jsonl)", res.Steps, run.Out)
			} else {
				last := res.Metrics[len(res.Metrics)-1]
				fmt.Fprintf(out, "trained %d steps: loss %.4f -> %.4f", res.Steps, res.Metrics[0].Loss, last.Loss)
				if last.ValLoss != nil {
					fmt.Fprintf(out, ", validation loss %.4f", *last.ValLoss)
				}
			}
			fmt.Fprintf(out, "\nwrote %s\n", run.Out)
			if r := res.Retention; r != nil {
				fmt.Fprintf(out, "retention: perplexity %.3f -> %.3f, stops with EOS %.0f%% -> %.0f%%\n",
					r.Before.Perplexity, r.After.Perplexity, 100*r.Before.StopRate, 100*r.After.StopRate)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&model, "model", "", "base model folder (Hugging Face format)")
	f.StringVar(&cur, "curriculum", "", "curriculum folder")
	f.StringVar(&o.Out, "out", "", "output folder")
	f.StringVar(&format, "prompt-format", "alpaca", "flashcard template: a models/prompt format ("+strings.Join(prompt.Names(), ", ")+")")
	f.IntVar(&o.Epochs, "epochs", 3, "epochs")
	f.Float64Var(&o.LR, "lr", 2e-4, "peak learning rate")
	f.IntVar(&warmupArg, "warmup", 5, "warm-up steps (linear decay after); 0: none")
	f.IntVar(&o.BatchSize, "batch-size", 2, "rows per micro-batch")
	f.IntVar(&o.Accumulation, "accumulation", 4, "micro-batches per optimizer step")
	f.IntVar(&o.MaxLength, "max-length", 2048, "row length in tokens (capped by the model's window)")
	f.BoolVar(&noPacking, "no-packing", false, "one item per row instead of packing items into rows")
	f.Float64Var(&clip, "clip", 1.0, "global gradient-norm clipping; 0: none")
	f.Float64Var(&weightDecay, "weight-decay", 0.01, "AdamW decoupled weight decay; 0: none")
	f.Int64Var(&o.Seed, "seed", 1, "seed (data order, LoRA init)")
	f.StringVar(&o.Mask, "mask", training.MaskAll, "loss mask: all (the paper) or answers (flashcard answers only)")
	f.StringVar(&o.Order, "order", training.OrderPaper, "item order: paper (docs then their flashcards), flashcards-first, shuffled")
	f.IntVar(&paraphrases, "paraphrases", 0, "train on at most this many paraphrase flashcards per fact (default: all the curriculum has)")
	f.IntVar(&loraRank, "lora-rank", 0, "train LoRA adapters of this rank instead of all weights (merged on export)")
	f.Float64Var(&loraAlpha, "lora-alpha", 0, "LoRA alpha (default 2 x rank)")
	f.StringVar(&loraTargets, "lora-targets", "q_proj,k_proj,v_proj,o_proj,in_proj,out_proj", "comma-separated name parts of the weights to adapt")
	f.StringVar(&o.ReplayFile, "replay", "", "JSONL of general instruction data {instruction, input?, output} mixed in")
	f.Float64Var(&o.ReplayFraction, "replay-fraction", 0.1, "replay items as a fraction of curriculum items")
	f.StringVar(&o.RetentionFile, "retention", "", "JSONL of held-out instruction data to measure retention before/after")
	f.IntVar(&o.RetentionLimit, "retention-limit", 32, "records of --retention used")
	f.IntVar(&o.CheckpointEvery, "checkpoint-every", 0, "checkpoint every N steps (always at the end)")
	f.IntVar(&o.ValEvery, "val-every", 0, "validation loss every N steps (always at the end)")
	f.BoolVar(&o.Resume, "resume", false, "continue from OUT/checkpoint")
	f.Float64Var(&memLimitGiB, "memory-limit", 0, "memory available in GiB (default: MemAvailable)")
	f.BoolVar(&quiet, "quiet", false, "no progress bar")
	f.IntVar(&stopAfter, "stop-after-step", 0, "stop after this step and its checkpoint (testing resume)")
	_ = f.MarkHidden("stop-after-step")
	return cmd
}

// trainFlags are the `perpetual train` flags that are not training.Options fields as such.
type trainFlags struct {
	noPacking         bool
	memLimitGiB       float64
	stopAfter, warmup int
	clip, weightDecay float64
	loraRank          int
	loraAlpha         float64
	loraTargets       string
	paraphrases       int
}

// trainOptions turns the flags into training.Options and validates them (training.Options.Validate,
// its errors renamed to the flags) before anything is loaded or written. On the command line every
// default is the flag's own, so a zero that training.Options would read as "use the default" is
// refused where zero is not a valid value, and given its literal meaning where it is (--warmup,
// --clip, --weight-decay 0: none).
func trainOptions(f *pflag.FlagSet, o training.Options, tf trainFlags) (training.Options, error) {
	flagValue := func(name string) string {
		if v := f.Lookup(name).Value.String(); v != "" {
			return v
		}
		return `""`
	}
	for _, name := range []string{"epochs", "batch-size", "accumulation", "max-length", "retention-limit"} {
		if v, _ := f.GetInt(name); v < 1 {
			return o, fmt.Errorf("--%s %d: must be at least 1", name, v)
		}
	}
	if !(o.LR > 0) || math.IsInf(o.LR, 0) {
		return o, fmt.Errorf("--lr %s: must be a positive number", flagValue("lr"))
	}
	if tf.warmup < 0 {
		return o, fmt.Errorf("--warmup %d: must be 0 (no warm-up) or more", tf.warmup)
	}
	if !(tf.memLimitGiB >= 0) {
		return o, fmt.Errorf("--memory-limit %s: must be 0 (MemAvailable) or a positive number of GiB", flagValue("memory-limit"))
	}
	o.NoPacking = tf.noPacking
	o.MemoryLimit = int64(tf.memLimitGiB * (1 << 30))
	o.StopAfterStep = tf.stopAfter
	o.WarmupSteps = tf.warmup
	if tf.warmup == 0 {
		o.WarmupSteps = -1 // training.Options reads 0 as "default"; negative is none
	}
	o.ClipNorm, o.WeightDecay = new(tf.clip), new(tf.weightDecay)
	o.Paraphrases = nil
	if f.Changed("paraphrases") {
		o.Paraphrases = new(tf.paraphrases)
	}
	o.LoRA = nil
	if f.Changed("lora-rank") || f.Changed("lora-alpha") || f.Changed("lora-targets") {
		o.LoRA = &training.LoRA{Rank: tf.loraRank, Alpha: tf.loraAlpha, Targets: strings.Split(tf.loraTargets, ",")}
		if !f.Changed("lora-alpha") {
			o.LoRA.Alpha = 2 * float64(tf.loraRank)
		}
	}
	if err := o.Validate(); err != nil {
		// The flag of each training.Options field the flags set.
		flagOf := map[string]string{
			"Out": "out", "Epochs": "epochs", "LR": "lr", "WarmupSteps": "warmup", "BatchSize": "batch-size",
			"Accumulation": "accumulation", "MaxLength": "max-length", "ClipNorm": "clip", "WeightDecay": "weight-decay",
			"Mask": "mask", "Order": "order", "LoRA.Rank": "lora-rank", "LoRA.Alpha": "lora-alpha", "LoRA.Targets": "lora-targets",
			"ReplayFraction": "replay-fraction", "RetentionLimit": "retention-limit", "CheckpointEvery": "checkpoint-every",
			"ValEvery": "val-every", "MemoryLimit": "memory-limit", "StopAfterStep": "stop-after-step",
			"Paraphrases": "paraphrases",
		}
		var oe *training.OptionError
		if errors.As(err, &oe) {
			if name, ok := flagOf[oe.Field]; ok {
				return o, fmt.Errorf("--%s %s: %s", name, flagValue(name), oe.Reason)
			}
		}
		return o, err
	}
	return o, nil
}
