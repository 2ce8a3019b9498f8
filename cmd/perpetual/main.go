// Command perpetual teaches instruct-tuned language models new facts and measures whether they
// learned them: curricula, fine-tuning, retrieval and lm-evaluation-harness-style scoring for
// Gemma and Mamba checkpoints, on the Go backend (CPU) or XLA/PJRT (GPU).
//
// Each subcommand lives in its own file of this package and only parses flags and prints: the
// work is done by the project's packages, which notebooks and tests use directly.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// newRootCmd builds the whole command tree with fresh flags: main runs one, and every test
// builds its own, so no flag value leaks from one run into the next.
func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "perpetual",
		Short:         "Teach instruct-tuned models new facts and measure, honestly, whether they learned them",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newBenchCmd(), newCurriculumCmd(), newDoctorCmd(), newEvalCmd(), newGenerateCmd(), newLogitsCmd(), newPlotsCmd(),
		newRagCmd(), newResultsCmd(), newTokenizeCmd(), newTrainCmd(), newZooCmd())
	return root
}

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "perpetual:", err)
		os.Exit(1)
	}
}
