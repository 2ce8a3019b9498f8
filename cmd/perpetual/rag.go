package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/perpetual-ml/perpetual/curriculum"
	"github.com/perpetual-ml/perpetual/models/bert"
	"github.com/perpetual-ml/perpetual/rag"
)

// loadBERT is rag's encoder loader in this binary, handed to every rag.Build and rag.Open (rag
// index/query/recall, eval --rag) and to the harness (Options.Embedders): dense and hybrid
// indexes reopen with the BERT folder their meta records.
func loadBERT(dir string) (rag.Embedder, error) { return bert.Load(dir) }

// newRagCmd builds the `rag` command (fresh flags on every call).
func newRagCmd() *cobra.Command {
	ragCmd := &cobra.Command{
		Use:   "rag",
		Short: "Build and query retrieval indexes over a curriculum's chunks",
	}

	var curDir, out, retriever, modelDir string
	index := &cobra.Command{
		Use:   "index --curriculum DIR --out INDEX [--retriever bm25|dense|hybrid --model BERT_DIR]",
		Short: "Index a curriculum's chunks (BM25, dense BERT embeddings, or both fused) into a folder",
		Long: "Index a curriculum's chunks (chunks.jsonl) into INDEX, written atomically: BM25\n" +
			"(k1=1.2, b=0.75), dense (a BGE-style BERT folder given by --model, CLS pooling, cosine)\n" +
			"or hybrid (both, fused by reciprocal rank). `perpetual eval --rag INDEX` and\n" +
			"`perpetual rag query|recall` read it back.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if curDir == "" || out == "" {
				return fmt.Errorf("rag index needs --curriculum DIR and --out INDEX")
			}
			c, err := curriculum.Read(curDir)
			if err != nil {
				return err
			}
			if len(c.Chunks) == 0 {
				return fmt.Errorf("%s: the curriculum has no chunks to index", curDir)
			}
			opts := rag.Options{Kind: retriever}
			if retriever != rag.KindBM25 {
				opts.Dense = rag.DenseOptions{ModelDir: modelDir, Progress: cmd.ErrOrStderr(), Load: loadBERT}
			}
			x, err := rag.Build(c.Chunks, opts)
			if err != nil {
				return err
			}
			if err := x.Save(out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "indexed %d chunks (%s) into %s\n", x.Len(), x.Kind(), out)
			return nil
		},
	}
	index.Flags().StringVar(&curDir, "curriculum", "", "curriculum folder (chunks.jsonl)")
	index.Flags().StringVar(&out, "out", "", "index folder to write")
	index.Flags().StringVar(&retriever, "retriever", rag.KindBM25, "bm25, dense or hybrid")
	index.Flags().StringVar(&modelDir, "model", "", "BERT encoder folder (dense and hybrid)")

	var indexDir string
	var k int
	query := &cobra.Command{
		Use:   "query --index INDEX QUESTION...",
		Short: "Print the top-k chunks for a question as JSON",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			x, err := rag.Open(indexDir, loadBERT)
			if err != nil {
				return err
			}
			hits, err := x.Retrieve(strings.Join(args, " "), k)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(hits)
		},
	}
	query.Flags().StringVar(&indexDir, "index", "", "index folder")
	query.Flags().IntVar(&k, "k", 3, "chunks to return")

	var recallIndex, recallCur string
	recall := &cobra.Command{
		Use:   "recall --index INDEX --curriculum DIR",
		Short: "Report recall@k of each test question's source chunk",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			x, err := rag.Open(recallIndex, loadBERT)
			if err != nil {
				return err
			}
			c, err := curriculum.Read(recallCur)
			if err != nil {
				return err
			}
			known := map[string]bool{}
			for _, ch := range x.Chunks() {
				known[ch.ID] = true
			}
			report, err := rag.Recall(x, c.Test, func(id string) bool { return known[id] }, nil)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(report)
		},
	}
	recall.Flags().StringVar(&recallIndex, "index", "", "index folder")
	recall.Flags().StringVar(&recallCur, "curriculum", "", "curriculum folder whose test questions carry chunk ids")

	ragCmd.AddCommand(index, query, recall)
	return ragCmd
}
