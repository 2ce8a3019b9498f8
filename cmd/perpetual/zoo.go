package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/perpetual-ml/perpetual/harness"
	"github.com/perpetual-ml/perpetual/zoo"
)

// registerZoo makes the harness's "zoo:NAME" models the zoo's instruct models, replacing the
// harness's random-init stand-ins. Only models with a committed checkpoint that matches
// zoo/config.yaml are registered by default, so `make results` never trains a zoo model (that
// takes far longer than its 15-minute budget on two cores); PERPETUAL_ZOO_TRAIN=1 registers the
// others too, trained on first use and cached.
func registerZoo() error {
	cfg, err := zoo.DefaultConfig()
	if err != nil {
		return err
	}
	for _, name := range cfg.Names() {
		if !zoo.Committed(cfg, name) && os.Getenv("PERPETUAL_ZOO_TRAIN") != "1" {
			continue
		}
		version, err := zoo.Version(cfg, name)
		if err != nil {
			return err
		}
		harness.RegisterZoo(name, harness.ZooEntry{Version: version, Build: func(dir string) error {
			return zoo.Materialize(context.Background(), cfg, name, dir, zoo.Options{Progress: func(s string) { fmt.Fprintln(os.Stderr, "zoo "+s) }})
		}})
	}
	return nil
}

func init() {
	if err := registerZoo(); err != nil {
		panic(err) // the embedded config is checked by zoo's tests; this cannot fail at run time
	}
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
	rootCmd.AddCommand(cmd)
}
