package attention

// Counting a transformer's activations for the families' lm.MemoryModel. The counts are the
// families' (each block has its own norms, MLP and head); what is shared is the arithmetic and
// the attention's own working set, which GroupedQuery fixes.

// Tensors counts tensors that are alive together, as multiples of a transformer's sizes: per
// token, how many vectors of the hidden size d, the MLP's intermediate size I, the queries
// H·D, the keys or values KV·D, one number per head H or per KV head KV, or one number; per
// row, how many H·T·T attention scores (or probabilities, or masks broadcast to that shape).
type Tensors struct {
	Hidden, Inter, Q, KV, Heads, KVHeads, Scalars float64
	Scores                                        float64
}

// ActivationShape are the dimensions Tensors multiply.
type ActivationShape struct {
	Batch, T                int
	Hidden, Inter           int
	Heads, KVHeads, HeadDim int
}

// Bytes is the memory of the counted tensors with elements of elem bytes.
func (n Tensors) Bytes(s ActivationShape, elem int) int64 {
	perToken := n.Hidden*float64(s.Hidden) + n.Inter*float64(s.Inter) + n.Q*float64(s.Heads*s.HeadDim) +
		n.KV*float64(s.KVHeads*s.HeadDim) + n.Heads*float64(s.Heads) + n.KVHeads*float64(s.KVHeads) + n.Scalars
	rows, T := float64(s.Batch), float64(s.T)
	return int64((rows*T*perToken + rows*n.Scores*float64(s.Heads)*T*T) * float64(elem))
}

// ScoringBytes is the largest working set of one transformer block in a forward pass (scoring)
// on the Go backend, in elements of elem bytes, the residual stream included. The graph needs,
// in the attention, four float32 score-sized tensors (the masked scores and GroupedQuery's
// float32 softmax) and the boolean mask broadcast to them, with the residual and the values;
// in the MLP, three intermediate-size tensors (the two projections and their activated
// product) with two hidden-size ones (lmtest.GraphPeak). The Go backend holds about twice that
// (measured: 7.6 to 8.8 float32 score-sized tensors at 2 x 1,024 tokens, docs/runtime.md), so
// the attention counts 8, plus capScores more in the compute dtype for a soft cap (its tanh and
// input), and the MLP twice its graph.
func ScoringBytes(s ActivationShape, elem int, capScores float64) int64 {
	attn := Tensors{Scores: 8}.Bytes(s, 4) + Tensors{Scores: capScores}.Bytes(s, elem) + Tensors{Scores: 1}.Bytes(s, 1) +
		Tensors{Hidden: 1, KV: 1}.Bytes(s, elem)
	mlp := Tensors{Hidden: 4, Inter: 6}.Bytes(s, elem)
	return max(attn, mlp)
}

// HeadScoringBytes is the head's working set in a forward pass on the Go backend: measured
// (docs/runtime.md), 2.25 float32 logits-sized tensors where the graph needs one (the product
// with the output matrix and the tail LogLikelihood adds), plus the compute-dtype logits the
// float32 ones are converted from (none in float32), capped more logits-sized tensors in the
// compute dtype for a final soft cap, and the final norm's output.
func HeadScoringBytes(s ActivationShape, vocab, elem int, capped float64) int64 {
	logits := LogitsBytes(s, vocab)
	h := logits*9/4 + int64(capped*float64(logits/4)*float64(elem)) + Tensors{Hidden: 1}.Bytes(s, elem)
	if elem != 4 {
		h += logits / 4 * int64(elem)
	}
	return h
}

// LogitsBytes is the size of float32 [B, T, V] logits.
func LogitsBytes(s ActivationShape, vocab int) int64 {
	return int64(s.Batch) * int64(s.T) * int64(vocab) * 4
}
