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

var rootCmd = &cobra.Command{
	Use:           "perpetual",
	Short:         "Teach instruct-tuned models new facts and measure, honestly, whether they learned them",
	SilenceUsage:  true,
	SilenceErrors: true,
}

func main() {
	if err := rootCmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "perpetual:", err)
		os.Exit(1)
	}
}
