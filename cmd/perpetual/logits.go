package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/models/safetensors"
)

// newLogitsCmd builds the `logits` command (fresh flags on every call).
func newLogitsCmd() *cobra.Command {
	var modelDir, tokensPath, outPath, dtype string
	cmd := &cobra.Command{
		Use:   "logits --model DIR --tokens IDS.json [--out OUT.json]",
		Short: "Print next-token logits of token sequences (for comparing with a reference implementation)",
		Long: "IDS.json is a JSON array of token-id arrays. The output is a JSON array with, per sequence,\n" +
			"an object whose \"logits\" field is the T x V array (float32). Each sequence runs on its own.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if modelDir == "" || tokensPath == "" {
				return fmt.Errorf("--model and --tokens are required")
			}
			raw, err := os.ReadFile(tokensPath)
			if err != nil {
				return err
			}
			var seqs [][]int32
			if err := json.Unmarshal(raw, &seqs); err != nil {
				return fmt.Errorf("%s: want a JSON array of token-id arrays: %w", tokensPath, err)
			}
			if len(seqs) == 0 {
				return fmt.Errorf("%s: no token sequences (want a JSON array of non-empty token-id arrays, e.g. [[2, 17, 5]])", tokensPath)
			}
			for i, s := range seqs {
				if len(s) == 0 {
					return fmt.Errorf("%s: sequence %d is empty (every sequence needs at least one token id)", tokensPath, i)
				}
			}
			opts := lm.LoadOptions{}
			if opts.DType, err = lm.ParseDType(dtype); err != nil {
				return err
			}
			m, err := lm.Load(modelDir, opts)
			if err != nil {
				return err
			}
			logits, err := m.Logits(seqs)
			if err != nil {
				return fmt.Errorf("%s: %w", tokensPath, err)
			}
			if outPath == "" {
				w := bufio.NewWriter(cmd.OutOrStdout())
				if err := writeLogitsJSON(w, logits); err != nil {
					return err
				}
				return w.Flush()
			}
			return safetensors.WriteAtomic(outPath, func(w io.Writer) error { return writeLogitsJSON(w, logits) })
		},
	}
	cmd.Flags().StringVar(&modelDir, "model", "", "model folder")
	cmd.Flags().StringVar(&tokensPath, "tokens", "", "JSON file: array of token-id arrays")
	cmd.Flags().StringVar(&outPath, "out", "", "output JSON file (default stdout), written atomically")
	cmd.Flags().StringVar(&dtype, "dtype", "float32", "compute dtype: float32, bfloat16 or float16")
	return cmd
}

// writeLogitsJSON streams [{"logits": [[...], ...]}, ...]: a Gemma vocabulary makes each row
// 256k numbers, so nothing is marshalled as a whole. Floats use the shortest float32 form.
func writeLogitsJSON(w io.Writer, logits [][][]float32) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	buf := make([]byte, 0, 32)
	bw.WriteString("[")
	for s, seq := range logits {
		if s > 0 {
			bw.WriteString(",\n")
		}
		bw.WriteString(`{"logits":[`)
		for t, row := range seq {
			if t > 0 {
				bw.WriteString(",")
			}
			bw.WriteString("[")
			for v, x := range row {
				if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
					return fmt.Errorf("sequence %d position %d token %d: logit is %v, not representable in JSON", s, t, v, x)
				}
				if v > 0 {
					bw.WriteByte(',')
				}
				buf = strconv.AppendFloat(buf[:0], float64(x), 'g', -1, 32)
				bw.Write(buf)
			}
			bw.WriteString("]")
		}
		bw.WriteString("]}")
	}
	bw.WriteString("]\n")
	return bw.Flush()
}
