package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/perpetual-ml/perpetual/models/lm"
)

// doctorModelCheck adds `doctor --model DIR` to cmd and returns its check: a model folder's
// config and safetensors headers against its architecture, without loading the weights.
func doctorModelCheck(cmd *cobra.Command) func(*cobra.Command) error {
	var dir string
	cmd.Flags().StringVar(&dir, "model", "", "model folder (plain, Hugging Face cache models--ORG--NAME, or snapshot) to check")
	return func(cmd *cobra.Command) error {
		if dir == "" {
			return nil
		}
		out := cmd.OutOrStdout()
		in, err := lm.Inspect(dir)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "model:    %s\n", in.Dir)
		fmt.Fprintf(out, "family:   %s (registered: %s)\n", orNone(in.Family), strings.Join(lm.Families(), ", "))
		fmt.Fprintf(out, "params:   %d\n", in.Parameters)
		var dts []string
		for d, n := range in.DTypes {
			dts = append(dts, fmt.Sprintf("%s x%d", d, n))
		}
		sort.Strings(dts)
		fmt.Fprintf(out, "dtypes:   %s\n", strings.Join(dts, ", "))
		fmt.Fprintf(out, "weights:  %d file(s)\n", len(in.Files))
		fmt.Fprintf(out, "tokenizer: %s\n", orNone(strings.Join(in.TokenizerFiles, ", ")))
		if len(in.Unused) > 0 {
			fmt.Fprintf(out, "unused:   %d tensor(s), e.g. %s\n", len(in.Unused), in.Unused[0])
		}
		for _, p := range in.Problems {
			fmt.Fprintf(out, "problem:  %s\n", p)
		}
		if len(in.Problems) > 0 {
			return fmt.Errorf("%s: %d problem(s); the model will not load", in.Dir, len(in.Problems))
		}
		fmt.Fprintln(out, "model ok: loadable")
		return nil
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
