package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/plots"
	"github.com/perpetual-ml/perpetual/training"
	"github.com/perpetual-ml/perpetual/zoo"

	"github.com/perpetual-ml/perpetual/harness/results"
	"github.com/perpetual-ml/perpetual/internal/atomicfile"
)

// zooResolver is the zoo every command hands the harness: the committed checkpoints of
// zoo/config.yaml; PERPETUAL_ZOO_TRAIN=1 trains a model whose checkpoint does not match
// (far over `make results`' budget on two cores) instead of failing.
func zooResolver(stderr io.Writer) *zoo.Resolver {
	return &zoo.Resolver{Train: os.Getenv("PERPETUAL_ZOO_TRAIN") == "1",
		Options: zoo.Options{Progress: func(s string) { fmt.Fprintln(stderr, "zoo "+s) }}}
}

// newZooCmd builds the `zoo` command (fresh flags on every call).
func newZooCmd() *cobra.Command {
	var out, configFile, work string
	var names []string
	cmd := &cobra.Command{
		Use:   "zoo",
		Short: "Train the zoo's miniature instruct models (zoo/config.yaml) into Hugging Face folders",
		Long: "Trains a tokenizer on the synthetic world, then each zoo model from random init: pre-training on\n" +
			"the world's documents and instruction tuning on its Alpaca data. Writes OUT/NAME/ with\n" +
			"config.json, model.safetensors, tokenizer files and manifest.json. `make zoo` writes the\n" +
			"committed checkpoints (zoo/checkpoints).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := zoo.DefaultConfig()
			if configFile != "" {
				var data []byte
				if data, err = os.ReadFile(configFile); err == nil {
					cfg, err = zoo.ParseConfig(data, configFile)
				}
			}
			if err != nil {
				return err
			}
			if len(names) == 0 {
				names = cfg.Names()
			}
			// Ctrl-C or SIGTERM: the phase in training writes a checkpoint and stops (with --work,
			// the same command continues from it).
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			for _, name := range names {
				dir := filepath.Join(out, name)
				opt := zoo.Options{Progress: func(s string) { fmt.Fprintln(cmd.ErrOrStderr(), s) }, Bar: cmd.ErrOrStderr()}
				if work != "" {
					opt.WorkDir = filepath.Join(work, name)
				}
				m, err := zoo.Build(ctx, cfg, name, dir, opt)
				if err != nil {
					return err
				}
				if len(m.Phases) == 0 {
					fmt.Fprintf(cmd.OutOrStdout(), "%s: %d parameters, untrained (no epochs), %.0fs -> %s\n", name, m.Parameters, m.WallSeconds, dir)
					continue
				}
				last := m.Phases[len(m.Phases)-1]
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %d parameters, %s loss %.3f -> %.3f, %.0fs -> %s\n",
					name, m.Parameters, last.Name, last.FirstLoss, last.FinalLoss, m.WallSeconds, dir)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "zoo/checkpoints", "folder to write NAME/ model folders into")
	cmd.Flags().StringVar(&configFile, "config", "", "a zoo config YAML to use instead of the embedded zoo/config.yaml (for experiments: its models are not the harness's zoo: models)")
	cmd.Flags().StringSliceVar(&names, "name", nil, "models to build (default all in zoo/config.yaml)")
	cmd.Flags().StringVar(&work, "work", "", "keep each phase's checkpoints and learning curve (metrics.jsonl) in WORK/NAME/PHASE: rerunning the same command resumes an interrupted build exactly")
	cmd.AddCommand(newZooCurveCmd(), newZooReachCmd())
	return cmd
}

// newZooReachCmd measures how far back a model's in-context lookup reaches.
func newZooReachCmd() *cobra.Command {
	var drills int
	var seed uint64
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "reach MODEL_DIR",
		Short: "Measure how far back a model's in-context lookup reaches (copy and key/value recall by distance)",
		Long: "Scores copy drills (8 random tokens repeated after a gap of 0 to 400 tokens) and key/value\n" +
			"recall drills (8 to 128 pairs, then 8 queries) on MODEL_DIR (config.json and safetensors: a\n" +
			"zoo model or a --work checkpoint's model folder) and prints the argmax accuracy per distance.\n" +
			"Lookup learned on short drills only works at short distances; RAG needs it 100-400 tokens back.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := lm.Load(args[0], lm.LoadOptions{})
			if err != nil {
				return err
			}
			pts, err := zoo.LookupReach(m, zoo.ReachGaps, zoo.ReachPairs, drills, seed)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(pts)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "drill\tdistance\taccuracy\ttargets")
			for _, p := range pts {
				unit := "tokens"
				if p.Drill == "recall" {
					unit = "pairs"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%d %s\t%.3f\t%d\n", p.Drill, p.Distance, unit, p.Accuracy, p.Targets)
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&drills, "drills", 16, "drills per distance")
	cmd.Flags().Uint64Var(&seed, "seed", 9, "seed of the drills")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the points as JSON")
	return cmd
}

// newZooCurveCmd charts the learning curves of recipe-v3 builds.
func newZooCurveCmd() *cobra.Command {
	var out string
	var png bool
	cmd := &cobra.Command{
		Use:   "curve SOURCE...",
		Short: "Chart the learning curves (held-out reading and closed-book probes) of zoo builds",
		Long: "Each SOURCE is a built zoo model folder (its manifest.json keeps the probes of every phase)\n" +
			"or a phase's metrics.jsonl in a --work folder (a build still running). Writes OUT/results.json\n" +
			"(curves) and one chart per model, as `perpetual plots` does.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res := &results.Summary{}
			for _, src := range args {
				pts, err := curvePoints(src)
				if err != nil {
					return err
				}
				res.Curves = append(res.Curves, pts...)
			}
			slices.SortStableFunc(res.Curves, func(a, b results.CurvePoint) int {
				return cmp.Or(cmp.Compare(a.Model, b.Model), cmp.Compare(a.Probe, b.Probe), cmp.Compare(a.Step, b.Step))
			})
			if len(res.Curves) == 0 {
				return fmt.Errorf("zoo curve: %s: no probe points (was the model built by recipe v3 with reading.probe_every?)", strings.Join(args, ", "))
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			if err := atomicfile.WriteJSON(filepath.Join(out, results.File), res); err != nil {
				return err
			}
			outputs, err := plots.Render(cmd.Context(), res, out, plots.Options{PNG: png})
			if err != nil {
				return err
			}
			for _, o := range outputs {
				fmt.Fprintln(cmd.OutOrStdout(), strings.TrimSpace(o.HTML+"\t"+o.PNG))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "curves", "output folder")
	cmd.Flags().BoolVar(&png, "png", false, "also write PNG screenshots (needs Chromium)")
	return cmd
}

// curvePoints reads the probe points of a zoo model folder (manifest.json) or of a training
// metrics.jsonl (named after the work folder it is in: WORK/MODEL/PHASE/metrics.jsonl).
func curvePoints(src string) ([]results.CurvePoint, error) {
	var out []results.CurvePoint
	if st, err := os.Stat(src); err == nil && st.IsDir() {
		data, err := os.ReadFile(filepath.Join(src, zoo.ManifestFile))
		if err != nil {
			return nil, fmt.Errorf("zoo curve: %w", err)
		}
		var m zoo.Manifest
		if err := json.Unmarshal(data, &m); err != nil {
			return nil, fmt.Errorf("zoo curve: %s: %w", filepath.Join(src, zoo.ManifestFile), err)
		}
		for _, ph := range m.Phases {
			for _, p := range ph.Probes {
				for probe, v := range p.Scores {
					out = append(out, results.CurvePoint{Model: m.Name, Probe: probe, Step: p.Step, Value: v})
				}
			}
		}
		return out, nil
	}
	f, err := os.Open(src)
	if err != nil {
		return nil, fmt.Errorf("zoo curve: %w", err)
	}
	defer f.Close()
	model := filepath.Base(filepath.Dir(filepath.Dir(src)))
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for line := 1; sc.Scan(); line++ {
		var m training.Metric
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return nil, fmt.Errorf("zoo curve: %s line %d: %w", src, line, err)
		}
		for probe, v := range m.Probe {
			out = append(out, results.CurvePoint{Model: model, Probe: probe, Step: m.Step, Value: v})
		}
	}
	return out, sc.Err()
}
