package main

import (
	"fmt"
	"os"
	"slices"

	"github.com/spf13/cobra"

	"github.com/perpetual-ml/perpetual/evaluation"
	"github.com/perpetual-ml/perpetual/harness"
	_ "github.com/perpetual-ml/perpetual/models/gemma" // registers the gemma family for lm.Load
	"github.com/perpetual-ml/perpetual/models/lm"
	_ "github.com/perpetual-ml/perpetual/models/mamba" // registers the mamba family for lm.Load
	"github.com/perpetual-ml/perpetual/rag"
)

// newEvalCmd builds the `eval` command (fresh flags on every call).
func newEvalCmd() *cobra.Command {
	var (
		job         evaluation.Job
		modelDir    string
		ragDir      string
		formulation string
		quiet       bool
		encoding    evaluation.EncodingOptions
	)
	cmd := &cobra.Command{
		Use:   "eval --model DIR --test FILE|DIR --out DIR",
		Short: "Score a model on a multiple-choice test (lm-evaluation-harness semantics)",
		Long: `Scores every question's choices by log-likelihood, as lm-evaluation-harness's multiple_choice
tasks do, in the letters formulation (the paper's) and the cloze formulation, and writes
results.json, samples_<task>.jsonl and a resumable cache.jsonl to --out. --formulation recall (or
all) also asks each question without its options and scores the model's greedy answer against the
gold option's text: SQuAD-normalised exact match and whole-word containment. --test takes a curriculum
folder, a Perpetual folder or test.json, or a .jsonl of questions. --rag prepends the top --k
chunks of a rag index. --base compares with an earlier run's output (McNemar, paired bootstrap).
--max-length and --add-bos-token are lm-evaluation-harness's max_length and add_bos_token model
arguments: by default the window is the model's (for a model without one, such as Mamba,
tokenizer_config.json's model_max_length, else 2048, as the harness) and BOS follows the model.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			job.Formulations, job.Retriever, job.Progress, job.Generation = nil, nil, nil, nil
			if modelDir == "" || job.Test == "" || job.Out == "" {
				return fmt.Errorf("eval: --model, --test and --out are required")
			}
			if job.K < 1 {
				return fmt.Errorf("eval: --k %d: the number of retrieved passages must be at least 1", job.K)
			}
			if job.Limit < 0 {
				return fmt.Errorf("eval: --limit %d: must be 0 (all questions) or more", job.Limit)
			}
			if job.BatchSize < 1 {
				return fmt.Errorf("eval: --batch-size %d: must be at least 1", job.BatchSize)
			}
			switch formulation {
			case "both":
				job.Formulations = []string{evaluation.Letters, evaluation.Cloze}
			case "all":
				job.Formulations = slices.Clone(evaluation.Formulations)
			case evaluation.Letters, evaluation.Cloze, evaluation.Recall:
				job.Formulations = []string{formulation}
			default:
				return fmt.Errorf("eval: --formulation %q is not letters, cloze, recall, both (letters and cloze) or all", formulation)
			}
			if encoding.MaxLength < 0 {
				return fmt.Errorf("eval: --max-length %d is negative: give the window in tokens, or 0 for the model's own", encoding.MaxLength)
			}
			if err := encoding.Validate(); err != nil {
				return fmt.Errorf("eval: --add-bos-token: %w", err)
			}
			if ragDir != "" {
				idx, err := rag.Open(ragDir, loadBERT)
				if err != nil {
					return err
				}
				job.Retriever = harness.Retriever(idx)
			}
			if !quiet {
				job.Progress = os.Stderr
			}
			// The recall formulation (or a generate_until --task) generates answers.
			generates := slices.Contains(job.Formulations, evaluation.Recall)
			if job.TaskFile != "" {
				t, err := evaluation.LoadTask(job.TaskFile)
				if err != nil {
					return err
				}
				generates = t.Generates()
			}
			model, enc, err := harness.LoadForEval(modelDir, lm.LoadOptions{}, encoding)
			if err != nil {
				return err
			}
			if generates {
				if job.Generation, err = harness.GenerationFor(model, enc); err != nil {
					return err
				}
			}
			out, err := job.Run(model, enc, modelDir, model.Hash())
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), out.Summary())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&modelDir, "model", "", "model folder (config.json, safetensors, tokenizer)")
	f.StringVar(&job.Test, "test", "", "test: curriculum folder, Perpetual folder or test.json, or questions .jsonl")
	f.StringVar(&job.Out, "out", "", "output folder")
	f.StringVar(&ragDir, "rag", "", "rag index folder: prepend retrieved chunks")
	f.IntVar(&job.K, "k", 3, "passages to retrieve with --rag")
	f.StringVar(&formulation, "formulation", "both", "letters, cloze, recall, both (letters and cloze) or all three")
	f.StringVar(&job.TaskFile, "task", "", "task YAML (lm-evaluation-harness shape) instead of the embedded tasks")
	f.IntVar(&job.Limit, "limit", 0, "evaluate only the first N questions")
	f.IntVar(&job.BatchSize, "batch-size", 8, "requests per forward batch")
	f.StringVar(&job.Base, "base", "", "output folder of a base run to compare against")
	f.StringVar(&job.CachePath, "cache", "", "cache file (default OUT/cache.jsonl)")
	f.BoolVar(&job.NoCache, "no-cache", false, "do not read or write the cache")
	f.BoolVar(&quiet, "quiet", false, "no progress bar")
	f.IntVar(&encoding.MaxLength, "max-length", 0, "window in tokens requests are left-truncated to (lm-eval max_length); 0 = the model's, 2048 for a model without one")
	f.StringVar(&encoding.AddBOS, "add-bos-token", evaluation.BOSAuto, "prepend BOS: true, false or auto (the model's rule, as lm-eval's add_bos_token)")
	return cmd
}
