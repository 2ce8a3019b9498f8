package main

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/perpetual-ml/perpetual/training"
	"github.com/perpetual-ml/perpetual/training/finetuner"
)

func init() {
	fineTuner = finetuner.FineTuner{} // `perpetual results` fine-tunes through the trainer
	var (
		o                    training.Options
		model, cur, format   string
		loraRank             int
		loraAlpha            float64
		loraTargets          string
		quiet, noPacking     bool
		memLimitGiB          float64
		stopAfter, warmupArg int
	)
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Fine-tune a model on a curriculum (documents + flashcards), with checkpoints and resume",
		Long: `Fine-tune a Hugging Face model folder on a curriculum's training split.

The output folder receives the model (config.json, safetensors, tokenizer), metrics.jsonl (one line
per optimizer step: loss, lr, grad_norm, tokens_per_s, val_loss), retention.json (with
--retention) and checkpoint/ (model + optimizer state, for --resume). Defaults follow the paper:
3 epochs, lr 2e-4, 5 warm-up steps then linear decay, batch 2 x 4 accumulation, AdamW, clip 1.0.`,
		Example: `  perpetual train --model models/gemma-2b-it --curriculum cur/products --out ft/products
  perpetual train --model zoo-dir --curriculum cur/products --out ft/p --lora-rank 8 --checkpoint-every 50
  perpetual train --model zoo-dir --curriculum cur/products --out ft/p --resume`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if model == "" || cur == "" || o.Out == "" {
				return fmt.Errorf("--model, --curriculum and --out are required")
			}
			o.NoPacking = noPacking
			o.MemoryLimit = int64(memLimitGiB * (1 << 30))
			o.StopAfterStep = stopAfter
			if cmd.Flags().Changed("warmup") {
				o.WarmupSteps = warmupArg
				if warmupArg == 0 {
					o.WarmupSteps = -1 // explicit zero: no warm-up (0 means "default")
				}
			}
			if loraRank > 0 {
				o.LoRA = &training.LoRA{Rank: loraRank, Alpha: loraAlpha, Targets: strings.Split(loraTargets, ",")}
				if o.LoRA.Alpha == 0 {
					o.LoRA.Alpha = 2 * float64(loraRank)
				}
			}
			if !quiet {
				o.Progress = cmd.ErrOrStderr()
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			o.Context = ctx // Ctrl-C writes a checkpoint; --resume continues
			res, err := training.RunFolders(model, cur, format, o)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if res.Stopped {
				fmt.Fprintf(out, "stopped after step %d; checkpoint in %s/checkpoint (continue with --resume)\n", res.Steps, o.Out)
				return nil
			}
			last := res.Metrics[len(res.Metrics)-1]
			fmt.Fprintf(out, "trained %d steps: loss %.4f -> %.4f", res.Steps, res.Metrics[0].Loss, last.Loss)
			if last.ValLoss != nil {
				fmt.Fprintf(out, ", validation loss %.4f", *last.ValLoss)
			}
			fmt.Fprintf(out, "\nwrote %s\n", o.Out)
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
	f.StringVar(&format, "prompt-format", "alpaca", "flashcard template: a models/prompt format (alpaca, gemma, plain)")
	f.IntVar(&o.Epochs, "epochs", 3, "epochs")
	f.Float64Var(&o.LR, "lr", 2e-4, "peak learning rate")
	f.IntVar(&warmupArg, "warmup", 5, "warm-up steps (linear decay after)")
	f.IntVar(&o.BatchSize, "batch-size", 2, "rows per micro-batch")
	f.IntVar(&o.Accumulation, "accumulation", 4, "micro-batches per optimizer step")
	f.IntVar(&o.MaxLength, "max-length", 2048, "row length in tokens (capped by the model's window)")
	f.BoolVar(&noPacking, "no-packing", false, "one item per row instead of packing items into rows")
	f.Float64Var(&o.ClipNorm, "clip", 1.0, "global gradient-norm clipping")
	f.Float64Var(&o.WeightDecay, "weight-decay", 0.01, "AdamW decoupled weight decay")
	f.Int64Var(&o.Seed, "seed", 1, "seed (data order, LoRA init)")
	f.StringVar(&o.Mask, "mask", training.MaskAll, "loss mask: all (the paper) or answers (flashcard answers only)")
	f.StringVar(&o.Order, "order", training.OrderPaper, "item order: paper (docs then their flashcards), flashcards-first, shuffled")
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
	rootCmd.AddCommand(cmd)
}
