package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/perpetual-ml/perpetual/models/tokenizer"
)

// newTokenizeCmd builds the `tokenize` command (fresh flags on every call).
func newTokenizeCmd() *cobra.Command {
	var path string
	var special, pieces bool
	cmd := &cobra.Command{
		Use:   "tokenize --tokenizer PATH [--special] [--pieces] < document",
		Short: "Print the token ids (or pieces) of one UTF-8 document read from stdin, as a JSON array",
		Long: "tokenize reads one UTF-8 document from stdin and prints its token ids as one JSON array.\n" +
			"PATH is a tokenizer.json, a tokenizer.model or a model folder. Special-token strings in the\n" +
			"text (e.g. <start_of_turn>) become their ids. No BOS/EOS is added unless --special, which\n" +
			"puts the tokenizer's BOS first and its EOS last (where it has them); --pieces prints the token\n" +
			"strings instead of ids.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if path == "" {
				return fmt.Errorf("tokenize: --tokenizer is required")
			}
			tok, err := tokenizer.Load(path)
			if err != nil {
				return err
			}
			text, err := io.ReadAll(cmd.InOrStdin())
			if err != nil {
				return fmt.Errorf("tokenize: reading stdin: %w", err)
			}
			ids := tok.Encode(string(text))
			if special {
				s := tok.Special()
				if s.BOS >= 0 {
					ids = append([]int32{s.BOS}, ids...)
				}
				if s.EOS >= 0 {
					ids = append(ids, s.EOS)
				}
			}
			// No HTML escaping: pieces such as "<bos>" print as they are.
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetEscapeHTML(false)
			if pieces {
				return enc.Encode(tok.Pieces(ids))
			}
			if ids == nil {
				ids = []int32{}
			}
			return enc.Encode(ids)
		},
	}
	cmd.Flags().StringVar(&path, "tokenizer", "", "tokenizer.json, tokenizer.model or model folder")
	cmd.Flags().BoolVar(&special, "special", false, "add the tokenizer's BOS and EOS")
	cmd.Flags().BoolVar(&pieces, "pieces", false, "print token strings instead of ids")
	return cmd
}
