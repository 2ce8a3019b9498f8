package lm

import (
	"fmt"
	"sort"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// Request is one log-likelihood query (lm-evaluation-harness loglikelihood): the model reads
// Context then Continuation and reports the log-probability of Continuation's tokens.
type Request struct {
	Context, Continuation []int32
}

// Result is a scored Request.
type Result struct {
	// LogProb is the sum over continuation tokens of log_softmax at the token.
	LogProb float64
	// IsGreedy is true when every continuation token is the argmax of its position's logits.
	IsGreedy bool
	// NumTokens is the number of continuation tokens scored.
	NumTokens int
}

// bucketLength rounds a sequence length up so few distinct shapes get compiled: powers of two
// from 16 to 512, then multiples of 256; never beyond limit (the model window) when n fits it.
func bucketLength(n, limit int) int {
	b := 16
	for b < n && b < 512 {
		b *= 2
	}
	if b < n {
		b = (n + 255) / 256 * 256
	}
	if limit > 0 && b > limit && n <= limit {
		b = limit
	}
	return b
}

// nextPow2 is the smallest power of two >= n (n >= 1).
func nextPow2(n int) int {
	p := 1
	for p < n {
		p *= 2
	}
	return p
}

// checkTokens rejects ids outside the vocabulary before they reach a graph (where an
// out-of-range gather would silently read garbage).
func (m *Model) checkTokens(where string, ids []int32) error {
	v := m.arch.VocabSize()
	for i, id := range ids {
		if id < 0 || int(id) >= v {
			return fmt.Errorf("%s: token %d at index %d is outside the vocabulary [0, %d)", where, id, i, v)
		}
	}
	return nil
}

// batchInputs lays out rows right-padded to width T in B rows: tokens, positions from 0, and
// segment 1 on real tokens (0 on padding).
func batchInputs(rows [][]int32, B, T int) (tok, pos, seg *tensors.Tensor) {
	tf, pf, sf := make([]int32, B*T), make([]int32, B*T), make([]int32, B*T)
	for b, r := range rows {
		for j, id := range r {
			tf[b*T+j], pf[b*T+j], sf[b*T+j] = id, int32(j), 1
		}
	}
	return tensors.FromFlatDataAndDimensions(tf, B, T),
		tensors.FromFlatDataAndDimensions(pf, B, T),
		tensors.FromFlatDataAndDimensions(sf, B, T)
}

// logitsF32 runs the architecture and makes sure the result is float32.
func (m *Model) logitsF32(p Params, tok, pos, seg *graph.Node) *graph.Node {
	l := m.arch.Logits(p, tok, pos, seg)
	if l.DType() != dtypes.Float32 {
		l = graph.ConvertDType(l, dtypes.Float32)
	}
	return l
}

// logitsRowsPerCall bounds how many sequences one Logits graph call holds ([B, T, V] floats
// come back to the host).
const logitsRowsPerCall = 8

// DefaultScoringBytes is the default budget for the float32 logits [B, T, V] one graph call
// materialises (see SetScoringBudget).
const DefaultScoringBytes = 1 << 30

// SetScoringBudget bounds the bytes of float32 logits one Logits or LogLikelihood graph call
// may hold (0 restores DefaultScoringBytes): with a 256k vocabulary a batch of 32 rows of 512
// tokens would need 16 GiB. Batches are split to fit, which does not change any result; at
// least one row always runs.
func (m *Model) SetScoringBudget(bytes int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.scoringBytes = bytes
}

// rowsFor is how many rows of width T fit the scoring budget (a power of two, at least 1).
func (m *Model) rowsFor(T int) int {
	m.mu.Lock()
	budget := m.scoringBytes
	m.mu.Unlock()
	return ScoringRows(m.arch, T, budget)
}

// ScoringRows is how many rows of width T one Logits or LogLikelihood call of arch runs within
// a budget of float32 logits bytes (0: DefaultScoringBytes; see SetScoringBudget): a power of
// two, at least 1. A scoring memory estimate (EstimateMemory) is per call.
func ScoringRows(arch Architecture, T int, budget int64) int {
	if budget <= 0 {
		budget = DefaultScoringBytes
	}
	rows := budget / (int64(T) * int64(arch.VocabSize()) * 4)
	p := 1
	for int64(p*2) <= rows {
		p *= 2
	}
	return p
}

// ScoringShape is how LogLikelihood lays out rows distinct model inputs of length tokens each
// at batchSize rows per batch: calls graph runs of T tokens per row (length rounded up to its
// bucket: 16, 32, ... 512, then multiples of 256, at most the model window), batchSize rows at
// a time within the scoring budget (SetScoringBudget), each run's rows rounded up to a power of
// two with empty rows; padded is the number of rows run in all, padding included.
func (m *Model) ScoringShape(rows, length, batchSize int) (calls, padded, T int) {
	if rows < 1 || length < 1 {
		return 0, 0, 0
	}
	T = bucketLength(length, m.arch.MaxLength())
	perCall := min(max(1, batchSize), m.rowsFor(T))
	for left := rows; left > 0; left -= perCall {
		calls++
		padded += nextPow2(min(left, perCall))
	}
	return calls, padded, T
}

// Logits returns next-token logits [seq][t][vocab] (float32) for each sequence, each run on
// its own: positions from 0, no packing. Empty sequences give empty results.
func (m *Model) Logits(seqs [][]int32) ([][][]float32, error) {
	limit := m.arch.MaxLength()
	for i, s := range seqs {
		if err := m.checkTokens(fmt.Sprintf("Logits: sequence %d", i), s); err != nil {
			return nil, err
		}
		if limit > 0 && len(s) > limit {
			return nil, fmt.Errorf("Logits: sequence %d has %d tokens, more than the model's maximum %d", i, len(s), limit)
		}
	}
	e, err := m.exec("logits", func(p Params, in []*graph.Node) []*graph.Node {
		return []*graph.Node{m.logitsF32(p, in[0], in[1], in[2])}
	})
	if err != nil {
		return nil, err
	}
	order := make([]int, 0, len(seqs))
	for i, s := range seqs {
		if len(s) > 0 {
			order = append(order, i)
		}
	}
	sort.SliceStable(order, func(a, b int) bool { return len(seqs[order[a]]) > len(seqs[order[b]]) })
	out := make([][][]float32, len(seqs))
	for i := range out {
		out[i] = [][]float32{}
	}
	V := m.arch.VocabSize()
	for start := 0; start < len(order); {
		T := bucketLength(len(seqs[order[start]]), limit)
		end := start
		var rows [][]int32
		perCall := min(logitsRowsPerCall, m.rowsFor(T))
		for end < len(order) && end-start < perCall && bucketLength(len(seqs[order[end]]), limit) == T {
			rows = append(rows, seqs[order[end]])
			end++
		}
		B := nextPow2(len(rows))
		tok, pos, seg := batchInputs(rows, B, T)
		res, err := m.run(e, tok, pos, seg)
		if err != nil {
			return nil, err
		}
		if dims := res[0].Shape().Dimensions; len(dims) != 3 || dims[0] != B || dims[1] != T || dims[2] != V {
			return nil, fmt.Errorf("Logits: %s graph returned shape %v, want [%d %d %d]", m.arch.Family(), dims, B, T, V)
		}
		flat, err := tensors.CopyFlatData[float32](res[0])
		if err != nil {
			return nil, err
		}
		for b, r := range rows {
			seq := make([][]float32, len(r))
			for t := range r {
				off := (b*T + t) * V
				seq[t] = flat[off : off+V : off+V]
			}
			out[order[start+b]] = seq
		}
		start = end
	}
	return out, nil
}

// scoreRow is one distinct model input of LogLikelihood and the requests reading it.
type scoreRow struct {
	inp  []int32
	reqs []int
}

// LogLikelihood scores requests with lm-evaluation-harness semantics at the token level: the
// model reads (context+continuation)[:-1], left-truncated to MaxLength() keeping the
// continuation; the result sums log_softmax over the continuation tokens, and IsGreedy says
// whether each was the argmax. Requests with the same model input (e.g. one context with
// several single-token continuations) share a forward pass. Inputs are sorted by length and
// run batchSize at a time; results come back in request order and do not depend on batchSize.
func (m *Model) LogLikelihood(reqs []Request, batchSize int) ([]Result, error) {
	if batchSize < 1 {
		batchSize = 1
	}
	limit := m.arch.MaxLength()
	rowOf := map[string]int{}
	var rows []scoreRow
	for i, r := range reqs {
		inp, err := m.modelInput(i, r, limit)
		if err != nil {
			return nil, err
		}
		key := tokenKey(inp)
		k, ok := rowOf[key]
		if !ok {
			k = len(rows)
			rowOf[key] = k
			rows = append(rows, scoreRow{inp: inp})
		}
		rows[k].reqs = append(rows[k].reqs, i)
	}
	sort.SliceStable(rows, func(a, b int) bool { return len(rows[a].inp) > len(rows[b].inp) })

	e, err := m.exec("score", func(p Params, in []*graph.Node) []*graph.Node {
		return scoreGraph(m.logitsF32(p, in[0], in[1], in[2]), in[3])
	})
	if err != nil {
		return nil, err
	}
	out := make([]Result, len(reqs))
	for start := 0; start < len(rows); {
		// A batch holds rows of one length bucket, so each row's padded width (and hence its
		// numbers) depends only on its own length, never on batchSize.
		T := bucketLength(len(rows[start].inp), limit)
		end := start
		perCall := min(batchSize, m.rowsFor(T))
		for end < len(rows) && end-start < perCall && bucketLength(len(rows[end].inp), limit) == T {
			end++
		}
		batch := rows[start:end]
		B := nextPow2(len(batch))
		K := 0
		inps := make([][]int32, len(batch))
		for b, r := range batch {
			inps[b] = r.inp
			n := 0
			for _, ri := range r.reqs {
				n += len(reqs[ri].Continuation)
			}
			K = max(K, n)
		}
		K = max(8, nextPow2(K))
		// gather[b, k] = (b, position, target) for every continuation token of every request.
		gather := make([]int32, B*K*3)
		type slot struct{ b, k int }
		slots := make([][]slot, len(batch))
		for b, r := range batch {
			k := 0
			L := len(r.inp)
			for _, ri := range r.reqs {
				cont := reqs[ri].Continuation
				for j, target := range cont {
					g := (b*K + k) * 3
					gather[g], gather[g+1], gather[g+2] = int32(b), int32(L-len(cont)+j), target
					slots[b] = append(slots[b], slot{b, k})
					k++
				}
			}
		}
		tok, pos, seg := batchInputs(inps, B, T)
		res, err := m.run(e, tok, pos, seg, tensors.FromFlatDataAndDimensions(gather, B, K, 3))
		if err != nil {
			return nil, err
		}
		lp, err := tensors.CopyFlatData[float32](res[0])
		if err != nil {
			return nil, err
		}
		greedy, err := tensors.CopyFlatData[bool](res[1])
		if err != nil {
			return nil, err
		}
		for b, r := range batch {
			s := 0
			for _, ri := range r.reqs {
				n := len(reqs[ri].Continuation)
				res := Result{IsGreedy: true, NumTokens: n}
				for _, sl := range slots[b][s : s+n] {
					res.LogProb += float64(lp[sl.b*K+sl.k])
					res.IsGreedy = res.IsGreedy && greedy[sl.b*K+sl.k]
				}
				s += n
				out[ri] = res
			}
		}
		start = end
	}
	return out, nil
}

// modelInput checks request i and returns what the model reads for it:
// (context+continuation)[:-1], left-truncated to limit tokens (0: no limit) keeping the
// continuation.
func (m *Model) modelInput(i int, r Request, limit int) ([]int32, error) {
	if len(r.Continuation) == 0 {
		return nil, fmt.Errorf("LogLikelihood: request %d has an empty continuation", i)
	}
	where := fmt.Sprintf("LogLikelihood: request %d", i)
	if err := m.checkTokens(where+" context", r.Context); err != nil {
		return nil, err
	}
	if err := m.checkTokens(where+" continuation", r.Continuation); err != nil {
		return nil, err
	}
	if limit > 0 && len(r.Continuation) > limit {
		return nil, fmt.Errorf("%s: continuation of %d tokens exceeds the model window %d", where, len(r.Continuation), limit)
	}
	full := make([]int32, 0, len(r.Context)+len(r.Continuation))
	full = append(append(full, r.Context...), r.Continuation...)
	if limit > 0 && len(full) > limit+1 {
		full = full[len(full)-(limit+1):]
	}
	if len(r.Context) == 0 {
		// The first continuation token would have no position to be predicted from.
		return nil, fmt.Errorf("%s: empty context: nothing conditions the first continuation token; "+
			"put a prefix token (BOS, else EOS) there, as lm-evaluation-harness does", where)
	}
	return full[:len(full)-1], nil
}

// scoreGraph computes, from float32 logits [B, T, V] and gather indices [B, K, 3] of
// (row, position, target), the target's log_softmax [B, K] and whether it is the argmax
// [B, K]. The K needed rows are gathered first, so the softmax work is B*K*V rather than
// B*T*V, and only the two small results leave the device.
func scoreGraph(logits, gather *graph.Node) []*graph.Node {
	B, K := gather.Shape().Dimensions[0], gather.Shape().Dimensions[1]
	V := logits.Shape().Dimensions[2]
	rowPos := graph.Slice(gather, graph.AxisRange(), graph.AxisRange(), graph.AxisRange(0, 2)) // [B, K, 2]
	target := graph.Slice(gather, graph.AxisRange(), graph.AxisRange(), graph.AxisRange(2, 3)) // [B, K, 1]
	rows := graph.Gather(logits, rowPos)                                                       // [B, K, V]
	mx := graph.ReduceAndKeep(rows, graph.ReduceMax, -1)
	lse := graph.Add(graph.Log(graph.ReduceSum(graph.Exp(graph.Sub(rows, mx)), -1)), graph.Squeeze(mx, -1))
	vocab := graph.Iota(rows.Graph(), shapes.Make(dtypes.Int32, B, K, V), 2)
	isTarget := graph.Equal(vocab, graph.BroadcastToDims(target, B, K, V))
	picked := graph.ReduceSum(graph.Where(isTarget, rows, graph.ZerosLike(rows)), -1)
	argmax := graph.ArgMax(rows, -1, dtypes.Int32)
	isGreedy := graph.Equal(argmax, graph.Squeeze(target, -1))
	return []*graph.Node{graph.Sub(picked, lse), isGreedy}
}

func tokenKey(ids []int32) string {
	b := make([]byte, 4*len(ids))
	for i, id := range ids {
		b[4*i], b[4*i+1], b[4*i+2], b[4*i+3] = byte(id), byte(id>>8), byte(id>>16), byte(id>>24)
	}
	return string(b)
}
