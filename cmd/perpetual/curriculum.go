package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/perpetual-ml/perpetual/curriculum"
	"github.com/perpetual-ml/perpetual/curriculum/build"
	"github.com/perpetual-ml/perpetual/curriculum/leakage"
	"github.com/perpetual-ml/perpetual/curriculum/perpetualfmt"
	"github.com/perpetual-ml/perpetual/curriculum/synthetic"
	"github.com/perpetual-ml/perpetual/curriculum/teacher/llm"
)

// newCurriculumCmd builds the `curriculum` command (fresh flags on every call).
func newCurriculumCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "curriculum",
		Short: "Build curricula (document chunks + flashcards) and multiple-choice tests; inspect them",
	}
	root.AddCommand(curriculumBuildCmd(), curriculumStatsCmd(), curriculumExportCmd(), curriculumWorldCmd())
	return root
}

func curriculumBuildCmd() *cobra.Command {
	var opt build.Options
	var chunks, facts, flashcards, paraphrases, concurrency, docVariants int
	var priceIn, priceOut float64
	var noSchema, quiet bool
	var llmTimeout time.Duration
	var reasks int
	cmd := &cobra.Command{
		Use:   "build [inputs...]",
		Short: "Turn a knowledge base into a curriculum, a test and a manifest",
		Long: `Turn a knowledge base into a curriculum folder (chunks, train, validation, test, manifest).

Sources: code (a repository folder), papers (PDF/Markdown/text files or folders), products
(JSON/JSONL/CSV records, WDC included), synthetic (a built-in fictional knowledge base, --task),
perpetual (a folder with the original train.json and test.json).
Teachers for code/papers/products: offline (no network) or llm (an OpenAI-compatible endpoint
from $` + llm.EnvBaseURL + `, $` + llm.EnvModel + `, $` + llm.EnvAPIKey + `).

Interrupt at any time (Ctrl-C): read files and answered chunks are kept in the work folder
(--work, default OUT.work) and the same command resumes. The output appears only when complete.`,
		Example: `  perpetual curriculum build --source synthetic --task products --out cur/products
  perpetual curriculum build --source code --teacher offline --out cur/cobra ~/go/pkg/mod/github.com/spf13/cobra@v1.10.2
  perpetual curriculum build --source perpetual --out cur/research ../shared/datasets/perpetual/research`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opt.Progress = nil
			if opt.Out == "" {
				return fmt.Errorf("--out is required")
			}
			if llmTimeout <= 0 {
				return fmt.Errorf("--llm-timeout %v: must be positive (e.g. 120s, 5m)", llmTimeout)
			}
			if reasks < 0 {
				return fmt.Errorf("--llm-reasks %d: must be 0 (never ask again) or more", reasks)
			}
			if concurrency < 1 {
				return fmt.Errorf("--llm-concurrency %d: must be at least 1", concurrency)
			}
			opt.Inputs = args
			opt.Synthetic.Chunks, opt.Synthetic.FactsPerChunk = chunks, facts
			opt.Synthetic.DocVariants, opt.Synthetic.Paraphrases = docVariants, min(paraphrases, 2)
			cfg := llm.ConfigFromEnv()
			cfg.Concurrency, cfg.Flashcards, cfg.Paraphrases = concurrency, flashcards, paraphrases
			cfg.PromptUSDPerMTok, cfg.CompletionUSDPerMTok = priceIn, priceOut
			cfg.JSONSchema = !noSchema
			cfg.Timeout, cfg.Reasks = llmTimeout, reasks
			opt.LLM = cfg
			if !quiet {
				opt.Progress = progressFor(cmd.ErrOrStderr())
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			c, err := build.Build(ctx, opt)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "wrote %s\n", opt.Out)
			printStats(out, c)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opt.Source, "source", "", "knowledge base kind: "+strings.Join(build.Sources, "|"))
	f.StringVar(&opt.Teacher, "teacher", "offline", "who writes the questions: "+strings.Join(build.Teachers, "|"))
	f.StringVar(&opt.Task, "task", "products", "synthetic knowledge base: products|research|code")
	f.StringVar(&opt.Out, "out", "", "curriculum folder to write")
	f.StringVar(&opt.WorkDir, "work", "", "checkpoint and cache folder (default OUT.work)")
	f.Int64Var(&opt.Seed, "seed", 1, "seed for splits, letter shuffles and distractors")
	f.IntVar(&opt.ChunkSize, "chunk-size", 4096, "chunk size in bytes")
	f.IntVar(&opt.Overlap, "overlap", 512, "chunk overlap in bytes")
	f.IntVar(&chunks, "chunks", 36, "synthetic: number of entities (one chunk each)")
	f.IntVar(&facts, "facts-per-chunk", 5, "synthetic: facts questioned per chunk")
	f.IntVar(&opt.ClozePerChunk, "cloze-per-chunk", 4, "offline teacher on papers: cloze items per chunk")
	f.Float64Var(&opt.Assemble.DocumentOnlyFraction, "document-only", 0.3, "fraction of documents whose facts get no flashcards (negative: none)")
	f.Float64Var(&opt.Assemble.ValidationFraction, "validation", 0.1, "fraction of documents whose flashcards form the validation set (negative: none)")
	f.IntVar(&flashcards, "flashcards", 4, "llm: flashcards per chunk (3-5)")
	f.IntVar(&paraphrases, "paraphrases", 0, "llm: paraphrases per flashcard; synthetic: extra flashcard formats per fact (0-2)")
	f.IntVar(&docVariants, "doc-variants", 0, "synthetic: extra training documents per chunk restating its facts")
	f.IntVar(&concurrency, "llm-concurrency", 4, "llm: requests in flight")
	f.Float64Var(&priceIn, "price-prompt", 0, "llm: USD per million prompt tokens (cost accounting)")
	f.Float64Var(&priceOut, "price-completion", 0, "llm: USD per million completion tokens")
	f.DurationVar(&llmTimeout, "llm-timeout", llm.DefaultTimeout, "llm: time allowed to each request attempt")
	f.IntVar(&reasks, "llm-reasks", llm.DefaultReasks, "llm: times a chunk is asked again after an invalid reply (the reasons go in the prompt)")
	f.BoolVar(&opt.AllowPartial, "allow-partial", false, "llm: write the curriculum even if some chunks got no facts (listed in the manifest) instead of failing")
	f.BoolVar(&noSchema, "no-json-schema", false, "llm: do not send response_format (servers without structured outputs)")
	f.BoolVar(&quiet, "quiet", false, "no progress bars")
	cmd.MarkFlagRequired("source")
	return cmd
}

// progressFor draws one bar per long stage, with ETA; a stage of unknown length gets a spinner.
func progressFor(w io.Writer) func(stage string, total int) func() {
	return func(stage string, total int) func() {
		bar := progressbar.NewOptions(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(stage),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		)
		_ = bar.RenderBlank() // start the clock now, not at the first update (rates and ETA)
		return func() { bar.Add(1) }
	}
}

func curriculumStatsCmd() *cobra.Command {
	var threshold float64
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "stats DIR",
		Short: "Print a curriculum's counts and its leakage report (overlap, letter skew, always-X accuracy)",
		Long: `Print a curriculum's counts and leakage report. DIR is a curriculum folder, or a folder with the
original Perpetual train.json and test.json.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := loadAny(args[0])
			if err != nil {
				return err
			}
			r := leakage.Analyze(c, threshold)
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{"counts": c.ComputeCounts(), "leakage": r, "manifest": c.Manifest})
			}
			printStats(out, c)
			r.Format(out)
			return nil
		},
	}
	cmd.Flags().Float64Var(&threshold, "threshold", leakage.DefaultThreshold, "token Jaccard similarity for near-duplicates")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func curriculumExportCmd() *cobra.Command {
	var style string
	cmd := &cobra.Command{
		Use:   "export-perpetual DIR OUT",
		Short: "Write a curriculum as the original Perpetual train.json and test.json",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := curriculum.Read(args[0])
			if err != nil {
				return err
			}
			train, test := perpetualfmt.FromCurriculum(c, style)
			if err := os.MkdirAll(args[1], 0o755); err != nil {
				return err
			}
			if err := perpetualfmt.WriteTrain(filepath.Join(args[1], "train.json"), train); err != nil {
				return err
			}
			if err := perpetualfmt.WriteTest(filepath.Join(args[1], "test.json"), test); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %d training items and %d questions to %s\n", len(train), len(test), args[1])
			return nil
		},
	}
	cmd.Flags().StringVar(&style, "prefix", ")", `letter prefix style of the choices: ")" gives "A) x", ":" "A: x", "." "A. x", "" none`)
	return cmd
}

func curriculumWorldCmd() *cobra.Command {
	var opt synthetic.WorldOptions
	cmd := &cobra.Command{
		Use:   "world OUT",
		Short: "Write the synthetic pre-training world (documents, Alpaca pairs, MC questions), separate from the knowledge to inject",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			w := synthetic.NewWorld(opt)
			if err := synthetic.WriteWorld(args[0], w); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %d documents, %d instruction pairs, %d questions, %d reading questions\n",
				args[0], len(w.Docs), len(w.Pairs), len(w.Questions), len(w.Reading))
			return nil
		},
	}
	cmd.Flags().Int64Var(&opt.Seed, "seed", 1, "seed")
	cmd.Flags().IntVar(&opt.Towns, "towns", 80, "towns described")
	cmd.Flags().IntVar(&opt.ReadingPassages, "reading", 200, "fresh passages for reading comprehension")
	return cmd
}

// loadAny reads our format, or the original Perpetual files when the folder has them.
func loadAny(dir string) (*curriculum.Curriculum, error) {
	if _, err := os.Stat(filepath.Join(dir, curriculum.ManifestFile)); err == nil {
		return curriculum.Read(dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "test.json")); err == nil {
		return perpetualfmt.ReadDir(dir, filepath.Base(filepath.Clean(dir)))
	}
	return nil, fmt.Errorf("%s: neither a curriculum (%s) nor Perpetual files (train.json, test.json)", dir, curriculum.ManifestFile)
}

func printStats(w io.Writer, c *curriculum.Curriculum) {
	n := c.ComputeCounts()
	m := c.Manifest
	fmt.Fprintf(w, "source %s, teacher %s, seed %d\n", m.Source, m.Teacher, m.Seed)
	fmt.Fprintf(w, "chunks %d; train %d docs + %d flashcards; validation %d; test %d (seen %d, document-only %d, unknown %d)\n",
		n.Chunks, n.TrainDocs, n.TrainQnA, n.Validation, n.Test, n.TestSeen, n.TestDocumentOnly, n.TestUnknown)
	if u := m.Usage; u != nil {
		fmt.Fprintf(w, "llm: %d requests, %d cached, %d retries, %d re-asks, %d+%d tokens, $%.4f\n", u.Requests, u.CacheHits, u.Retries, u.Reasks, u.PromptTokens, u.CompletionTokens, u.CostUSD)
		var keys []string
		for k := range u.Rejected {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "  rejected %s: %d\n", k, u.Rejected[k])
		}
	}
	for i, mf := range m.MissingFacts {
		if i == 20 {
			fmt.Fprintf(w, "  ... %d more in %s\n", len(m.MissingFacts)-20, curriculum.ManifestFile)
			break
		}
		fmt.Fprintf(w, "no facts for chunk %s: %s\n", mf.ChunkID, mf.Reason)
	}
	for _, note := range m.Notes {
		fmt.Fprintf(w, "note: %s\n", note)
	}
	if len(m.Skipped) > 0 {
		fmt.Fprintf(w, "skipped %d inputs:\n", len(m.Skipped))
		for i, s := range m.Skipped {
			if i == 20 {
				fmt.Fprintf(w, "  ... %d more in %s\n", len(m.Skipped)-20, curriculum.ManifestFile)
				break
			}
			fmt.Fprintf(w, "  %s: %s\n", s.Path, s.Reason)
		}
	}
}
