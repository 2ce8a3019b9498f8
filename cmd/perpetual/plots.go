package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/perpetual-ml/perpetual/harness/results"
	"github.com/perpetual-ml/perpetual/plots"
)

// newPlotsCmd builds the `plots` command (fresh flags on every call).
func newPlotsCmd() *cobra.Command {
	var out string
	var png bool
	cmd := &cobra.Command{
		Use:   "plots RESULTS_DIR",
		Short: "Render the charts of a results directory (results.json) as HTML and PNG",
		Long: "Reads RESULTS_DIR/results.json and writes accuracy, delta-vs-base, loss and recall@k charts\n" +
			"as HTML (ECharts served from an assets folder beside them, works offline) and, unless\n" +
			"--png=false, as PNG screenshots taken with headless Chromium ($" + plots.ChromiumEnv + " overrides).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := results.Load(args[0])
			if err != nil {
				return err
			}
			dir := out
			if dir == "" {
				dir = filepath.Join(args[0], "charts")
			}
			outputs, err := plots.Render(cmd.Context(), res, dir, plots.Options{PNG: png})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			for _, o := range outputs {
				if o.PNG != "" {
					fmt.Fprintf(w, "%s\t%s\n", o.HTML, o.PNG)
				} else {
					fmt.Fprintln(w, o.HTML)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "output folder (default RESULTS_DIR/charts)")
	cmd.Flags().BoolVar(&png, "png", true, "also write PNG screenshots (needs Chromium)")
	return cmd
}
