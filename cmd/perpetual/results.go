package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/perpetual-ml/perpetual/harness"
	"github.com/perpetual-ml/perpetual/plots"
	"github.com/perpetual-ml/perpetual/training/finetuner"
)

// fineTuner trains the fine-tuned conditions of `perpetual results` (package training).
var fineTuner harness.FineTuner = finetuner.FineTuner{}

// newResultsCmd builds the `results` command (fresh flags on every call).
func newResultsCmd() *cobra.Command {
	var (
		suiteName, out, work, chromium string
		vars                           []string
		png, charts, quiet             bool
		jobs                           int
	)
	cmd := &cobra.Command{
		Use:   "results [--suite default|paper|FILE] [--out results/]",
		Short: "Run a suite (curricula, RAG indexes, fine-tuning, evaluation) and write the results table and charts",
		Long: `Runs every task x model x condition cell of a suite that is not already cached: builds the
curricula and RAG indexes, fine-tunes where a fine-tuned model is missing, evaluates each cell in
every formulation, and writes OUT/results.md (the paper's table with 95% intervals and marks for
significant differences from base), OUT/results.json, per-sample logs under OUT/samples/ and the
charts under OUT/charts/ (HTML and PNG). Everything is cached under OUT/cache keyed by its inputs, so a
second run with nothing changed takes seconds. --suite names an embedded suite (default, paper) or
a YAML file; --var NAME=PATH fills ${NAME} in its paths (else the environment does).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			vm := map[string]string{}
			for _, v := range vars {
				name, value, ok := strings.Cut(v, "=")
				if !ok || name == "" {
					return fmt.Errorf("results: --var %q is not NAME=VALUE", v)
				}
				vm[name] = value
			}
			s, err := harness.Load(suiteName, vm)
			if err != nil {
				return err
			}
			pngOn, err := choosePNG(png && charts, cmd.Flags().Changed("png"), chromium, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			opt := harness.Options{Out: out, Work: work, FineTuner: fineTuner, Charts: charts, PNG: pngOn, Chromium: chromium,
				Zoo: zooResolver(cmd.ErrOrStderr()), Embedders: loadBERT, Jobs: jobs}
			if !quiet {
				opt.Progress = os.Stderr
			}
			start := time.Now()
			rep, err := harness.Run(cmd.Context(), s, opt)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "suite %s: %d cells (%d evaluated, %d cached), %d fine-tuned, %d curricula and %d indexes built, in %s\nwrote %s/results.md (where the time went: %s/timings.md)\n",
				s.Name, rep.CellsEvaluated+rep.CellsCached, rep.CellsEvaluated, rep.CellsCached, rep.FineTuned,
				rep.CurriculaBuilt, rep.IndexesBuilt, time.Since(start).Round(time.Millisecond), out, out)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&suiteName, "suite", "default", "embedded suite name (default, paper) or suite YAML file")
	f.StringVar(&out, "out", "results", "results folder")
	f.StringVar(&work, "work", "", "cache folder (default OUT/cache)")
	f.StringArrayVar(&vars, "var", nil, "NAME=VALUE for ${NAME} in suite paths (repeatable)")
	f.BoolVar(&charts, "charts", true, "render the charts (HTML)")
	f.BoolVar(&png, "png", true, "also write PNG charts (needs Chromium; skipped with a warning when none is found, unless given explicitly)")
	f.StringVar(&chromium, "chromium", "", "Chromium binary for PNGs (default: search PATH)")
	f.BoolVar(&quiet, "quiet", false, "no progress bars")
	f.IntVar(&jobs, "jobs", 1, "lanes of models evaluated side by side (one model in memory per lane; results are the same whatever the number)")
	return cmd
}

// choosePNG decides before any work whether PNG charts can be made, so a missing browser fails
// in the first second rather than after the whole suite has run. PNGs are on by default and
// quietly optional: without Chromium the default run writes the HTML charts and says why the
// PNGs are missing; an explicit --png, or a --chromium that is not there, is an error.
func choosePNG(want, explicit bool, chromium string, warn io.Writer) (bool, error) {
	if !want {
		return false, nil
	}
	var err error
	if chromium != "" {
		_, err = exec.LookPath(chromium)
		explicit = true
	} else {
		_, err = plots.FindChromium()
	}
	if err == nil {
		return true, nil
	}
	if explicit {
		return false, fmt.Errorf("results: PNG charts: %w (or pass --png=false)", err)
	}
	fmt.Fprintf(warn, "perpetual: PNG charts skipped, HTML charts only: %v\n", err)
	return false, nil
}
