package lmtest

// The graph-level checks: the family's Logits and Step graphs run with the fixture's weights
// (read by goldentest, not lm.Load) as graph inputs.

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/models/internal/goldentest"
	"github.com/perpetual-ml/perpetual/models/lm"
)

// batch is a packed, padded batch: rows of tokens with per-token positions and segment ids.
type batch struct {
	tokens, positions, segments [][]int32
}

// row appends documents packed into one row (segment ids 1, 2, ...; positions restarting at 0)
// padded with segment 0 up to width. Padding tokens and positions vary (k mod vocab, k), so a
// model that reads them is caught.
func (b *batch) row(vocab, width int, docs ...[]int32) {
	var tok, pos, seg []int32
	for i, d := range docs {
		for j, id := range d {
			tok, pos, seg = append(tok, id), append(pos, int32(j)), append(seg, int32(i+1))
		}
	}
	for k := 0; len(tok) < width; k++ {
		tok, pos, seg = append(tok, int32(k%vocab)), append(pos, int32(k)), append(seg, 0)
	}
	b.tokens, b.positions, b.segments = append(b.tokens, tok), append(b.positions, pos), append(b.segments, seg)
}

// call executes e, turning a panic into an error.
func call(e *graph.Exec, args ...any) (out []*tensors.Tensor, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("graph: %v", r)
		}
	}()
	return e.Exec(args...)
}

// logits runs Architecture.Logits on a batch with the float32 fixture weights; [B][T][V].
func (s *session) logits(b batch) ([][][]float32, error) {
	params, err := s.paramTensors(dtypes.Float32)
	if err != nil {
		return nil, err
	}
	if s.logitsExec == nil {
		specs, family := s.arch.Specs(), s.arch.Family()
		n := len(specs)
		e, err := graph.NewExec(s.backend, func(in []*graph.Node) *graph.Node {
			return s.arch.Logits(lm.ParamsFor(family, specs, in[:n]), in[n], in[n+1], in[n+2])
		})
		if err != nil {
			return nil, err
		}
		s.logitsExec = e.SetMaxCache(-1)
	}
	args := make([]any, 0, len(params)+3)
	for _, p := range params {
		args = append(args, p)
	}
	args = append(args, tensors.FromValue(b.tokens), tensors.FromValue(b.positions), tensors.FromValue(b.segments))
	out, err := call(s.logitsExec, args...)
	if err != nil {
		return nil, err
	}
	got, ok := out[0].Value().([][][]float32)
	if !ok || len(got) != len(b.tokens) || len(got[0]) != len(b.tokens[0]) || len(got[0][0]) != s.vocab {
		return nil, fmt.Errorf("Logits returned %s, want float32 [%d, %d, %d]", out[0].Shape(), len(b.tokens), len(b.tokens[0]), s.vocab)
	}
	return got, nil
}

// alone runs one sequence as a batch of one row without padding.
func (s *session) alone(seq []int32) ([][]float32, error) {
	var b batch
	b.row(s.vocab, len(seq), seq)
	got, err := s.logits(b)
	if err != nil {
		return nil, err
	}
	return got[0], nil
}

// againstGolden compares the first len(sequence i) positions of got with sequence i's reference.
func (s *session) againstGolden(what string, got [][]float32, i int) error {
	n := len(s.golden.Sequences[i])
	rel, maxAbs := goldentest.Compare(goldentest.Flatten(got[:n]), s.golden.Logits[i])
	if rel > s.fix.Tolerance || math.IsNaN(rel) {
		return fmt.Errorf("%s: sequence %d: relative error %.2e (max abs %.2e) > %.0e against the reference", what, i, rel, maxAbs, s.fix.Tolerance)
	}
	return nil
}

// samePositions compares positions [0, n) of got with want (the same model computed another
// way), position by position.
func samePositions(what string, got, want [][]float32, n int) error {
	for i := range n {
		rel, maxAbs := goldentest.Compare(got[i], goldentest.Float64s(want[i]))
		if rel > selfTolerance || math.IsNaN(rel) {
			return fmt.Errorf("%s: position %d: relative error %.2e (max abs %.2e) > %.0e", what, i, rel, maxAbs, selfTolerance)
		}
	}
	return nil
}

func checkSpecs(s *session) error {
	a := s.arch
	var errs []error
	if a.Family() != s.modelType {
		errs = append(errs, fmt.Errorf("Family() = %q, config.json model_type %q", a.Family(), s.modelType))
	}
	if a.VocabSize() != s.vocab {
		errs = append(errs, fmt.Errorf("VocabSize() = %d, the reference logits have %d", a.VocabSize(), s.vocab))
	}
	longest := 0
	for _, seq := range s.golden.Sequences {
		longest = max(longest, len(seq))
	}
	if n := a.MaxLength(); n < 0 || (n > 0 && n < longest) {
		errs = append(errs, fmt.Errorf("MaxLength() = %d, shorter than the fixture's %d-token sequence", n, longest))
	}
	specs := a.Specs()
	if !slices.EqualFunc(specs, a.Specs(), func(x, y lm.ParamSpec) bool {
		return x.Name == y.Name && slices.Equal(x.Shape, y.Shape) && slices.Equal(x.Aliases, y.Aliases)
	}) {
		errs = append(errs, errors.New("Specs() changes between calls"))
	}
	known := map[string]string{} // name or alias -> spec name
	for _, sp := range specs {
		for _, n := range append([]string{sp.Name}, sp.Aliases...) {
			if prev, dup := known[n]; dup {
				errs = append(errs, fmt.Errorf("tensor name %q claimed by specs %q and %q", n, prev, sp.Name))
			}
			known[n] = sp.Name
		}
		for _, d := range sp.Shape {
			if d <= 0 {
				errs = append(errs, fmt.Errorf("spec %q has shape %v", sp.Name, sp.Shape))
				break
			}
		}
	}
	for n := range s.weights {
		if _, ok := known[n]; !ok {
			errs = append(errs, fmt.Errorf("checkpoint tensor %q is no spec's name or alias", n))
		}
	}
	if _, err := s.paramTensors(dtypes.Float32); err != nil {
		errs = append(errs, err)
	}
	cache := a.CacheShapes(longest, dtypes.Float32)
	if len(cache) == 0 {
		errs = append(errs, errors.New("CacheShapes is empty"))
	}
	for _, c := range cache {
		if !c.DType.IsFloat() || slices.ContainsFunc(c.Dimensions, func(d int) bool { return d <= 0 }) ||
			len(c.Dimensions) == 0 || c.Dimensions[0] != 1 {
			errs = append(errs, fmt.Errorf("cache tensor %q: %s %v, want a float tensor with leading batch 1", c.Name, c.DType, c.Dimensions))
		}
	}
	return errors.Join(errs...)
}

func checkGoldenLogits(s *session) error {
	for i, seq := range s.golden.Sequences {
		got, err := s.alone(seq)
		if err != nil {
			return err
		}
		if err := s.againstGolden("alone", got, i); err != nil {
			return err
		}
	}
	return nil
}

// sharedBatch is the one batch (one compiled shape) the padding, packing, batch-independence
// and causality checks read, every row padded to width: each sequence alone, all sequences
// packed in order and in reverse order, a row of padding only, then the longest sequence with
// its tokens from each cut on changed, and its prefixes.
type sharedBatch struct {
	width                  int
	b                      batch
	logits                 [][][]float32
	packed, reversed, pads int   // rows
	longest                int   // index of the longest sequence (its row alone, too)
	cuts, prefixes         []int // lengths kept
	changedRow, prefixRow  int   // first rows of each group
}

func (s *session) sharedBatch() (*sharedBatch, error) {
	if s.shared != nil {
		return s.shared, nil
	}
	seqs := s.golden.Sequences
	n := len(seqs)
	sb := &sharedBatch{width: 3, longest: s.longest()}
	for _, seq := range seqs {
		sb.width += len(seq)
	}
	if limit := s.arch.MaxLength(); limit > 0 && sb.width > limit {
		return nil, fmt.Errorf("the fixture's sequences packed (%d tokens with padding) exceed MaxLength %d", sb.width, limit)
	}
	for _, seq := range seqs {
		sb.b.row(s.vocab, sb.width, seq)
	}
	rev := slices.Clone(seqs)
	slices.Reverse(rev)
	sb.packed, sb.reversed, sb.pads = n, n+1, n+2
	sb.b.row(s.vocab, sb.width, seqs...)
	sb.b.row(s.vocab, sb.width, rev...)
	sb.b.row(s.vocab, sb.width)
	seq := seqs[sb.longest]
	T := len(seq)
	sb.cuts, sb.prefixes = slices.Compact([]int{1, 2, 5, T / 2, T - 1}), slices.Compact([]int{1, T - 1})
	sb.changedRow = len(sb.b.tokens)
	for _, k := range sb.cuts {
		changed := slices.Clone(seq)
		for j := k; j < T; j++ {
			changed[j] = int32((int(seq[j]) + 1 + j) % s.vocab)
		}
		sb.b.row(s.vocab, sb.width, changed)
	}
	sb.prefixRow = len(sb.b.tokens)
	for _, k := range sb.prefixes {
		sb.b.row(s.vocab, sb.width, seq[:k])
	}
	var err error
	if sb.logits, err = s.logits(sb.b); err != nil {
		return nil, err
	}
	s.shared = sb
	return sb, nil
}

func checkPadding(s *session) error {
	sb, err := s.sharedBatch()
	if err != nil {
		return err
	}
	for i := range s.golden.Sequences {
		if err := s.againstGolden(fmt.Sprintf("padded to %d", sb.width), sb.logits[i], i); err != nil {
			return err
		}
	}
	for r, row := range sb.logits {
		for t, pos := range row {
			if slices.ContainsFunc(pos, func(v float32) bool { return math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) }) {
				return fmt.Errorf("row %d (segments %v), position %d: non-finite logits (padding must stay finite: training multiplies it by zero weights)",
					r, sb.b.segments[r], t)
			}
		}
	}
	return nil
}

func checkPacking(s *session) error {
	sb, err := s.sharedBatch()
	if err != nil {
		return err
	}
	order := make([]int, len(s.golden.Sequences))
	for i := range order {
		order[i] = i
	}
	reverse := slices.Clone(order)
	slices.Reverse(reverse)
	for _, packing := range []struct {
		row   int
		order []int
	}{{sb.packed, order}, {sb.reversed, reverse}} {
		offset := 0
		for _, i := range packing.order {
			got := sb.logits[packing.row][offset:]
			if err := s.againstGolden(fmt.Sprintf("packed in row %d at offset %d", packing.row, offset), got, i); err != nil {
				return err
			}
			offset += len(s.golden.Sequences[i])
		}
	}
	return nil
}

func checkBatchIndependence(s *session) error {
	sb, err := s.sharedBatch()
	if err != nil {
		return err
	}
	for _, r := range []int{0, sb.packed} { // the first sequence padded, all packed
		var one batch
		one.tokens, one.positions, one.segments = sb.b.tokens[r:r+1], sb.b.positions[r:r+1], sb.b.segments[r:r+1]
		got, err := s.logits(one)
		if err != nil {
			return err
		}
		real := 0
		for real < sb.width && sb.b.segments[r][real] != 0 {
			real++
		}
		if err := samePositions(fmt.Sprintf("row %d alone vs in a batch of %d", r, len(sb.b.tokens)), got[0], sb.logits[r], real); err != nil {
			return err
		}
	}
	return nil
}

// longest is the index of the fixture's longest sequence.
func (s *session) longest() int {
	best := 0
	for i, seq := range s.golden.Sequences {
		if len(seq) > len(s.golden.Sequences[best]) {
			best = i
		}
	}
	return best
}

func checkCausality(s *session) error {
	sb, err := s.sharedBatch()
	if err != nil {
		return err
	}
	want := sb.logits[sb.longest]
	for r, k := range sb.cuts {
		if err := samePositions(fmt.Sprintf("tokens from %d on changed", k), sb.logits[sb.changedRow+r], want, k); err != nil {
			return err
		}
	}
	for r, k := range sb.prefixes {
		if err := samePositions(fmt.Sprintf("cut after %d tokens", k), sb.logits[sb.prefixRow+r], want, k); err != nil {
			return err
		}
	}
	return nil
}

// stepper runs Architecture.Step with the cache kept between calls, as a generation loop does.
type stepper struct {
	exec  *graph.Exec
	args  []any // the weights
	cache []*tensors.Tensor
}

func (s *session) newStepper(maxLength int) (*stepper, error) {
	params, err := s.paramTensors(dtypes.Float32)
	if err != nil {
		return nil, err
	}
	cacheShapes := s.arch.CacheShapes(maxLength, dtypes.Float32)
	specs, family := s.arch.Specs(), s.arch.Family()
	nP, nC := len(specs), len(cacheShapes)
	e, err := graph.NewExec(s.backend, func(in []*graph.Node) []*graph.Node {
		logits, cache := s.arch.Step(lm.ParamsFor(family, specs, in[:nP]), in[nP:nP+nC], in[nP+nC], in[nP+nC+1])
		return append([]*graph.Node{logits}, cache...)
	})
	if err != nil {
		return nil, err
	}
	st := &stepper{exec: e.SetMaxCache(-1)}
	for _, p := range params {
		st.args = append(st.args, p)
	}
	for _, c := range cacheShapes {
		st.cache = append(st.cache, tensors.FromShape(shapes.Make(c.DType, c.Dimensions...)))
	}
	return st, nil
}

// step feeds tokens starting at position start and returns their logits [S][V].
func (st *stepper) step(tokens []int32, start int) ([][]float32, error) {
	args := slices.Clone(st.args)
	for _, c := range st.cache {
		args = append(args, c)
	}
	args = append(args, tensors.FromValue([][]int32{tokens}), tensors.FromScalar(int32(start)))
	out, err := call(st.exec, args...)
	if err != nil {
		return nil, err
	}
	if len(out) != 1+len(st.cache) {
		return nil, fmt.Errorf("Step returned %d cache tensors, CacheShapes has %d", len(out)-1, len(st.cache))
	}
	for i, c := range out[1:] {
		if !c.Shape().Equal(st.cache[i].Shape()) {
			return nil, fmt.Errorf("Step returned cache tensor %d as %s, CacheShapes says %s", i, c.Shape(), st.cache[i].Shape())
		}
	}
	got, ok := out[0].Value().([][][]float32)
	if !ok || len(got) != 1 || len(got[0]) != len(tokens) {
		return nil, fmt.Errorf("Step returned logits %s, want float32 [1, %d, V]", out[0].Shape(), len(tokens))
	}
	st.cache = out[1:]
	return got[0], nil
}

func checkStep(s *session) error {
	i := s.longest()
	seq := s.golden.Sequences[i]
	full, err := s.alone(seq)
	if err != nil {
		return err
	}
	// A cache longer than the sequence (unused slots must not matter), fed a prefill of 2
	// tokens (shorter than a convolution window), a chunk of 5, then single tokens.
	maxLength := len(seq) + 3
	if n := s.arch.MaxLength(); n > 0 {
		maxLength = min(maxLength, n)
	}
	st, err := s.newStepper(maxLength)
	if err != nil {
		return err
	}
	var got [][]float32
	for start, chunk := 0, 2; start < len(seq); start += chunk {
		if start == 2 {
			chunk = 5
		} else if start > 2 {
			chunk = 1
		}
		out, err := st.step(seq[start:min(start+chunk, len(seq))], start)
		if err != nil {
			return err
		}
		got = append(got, out...)
	}
	if err := samePositions("Step (2, 5, then 1 token at a time) vs Logits", got, full, len(seq)); err != nil {
		return err
	}
	if err := s.againstGolden("Step", got, i); err != nil {
		return err
	}
	// A cache exactly as long as the sequence, filled by one prefill.
	exact, err := s.newStepper(len(seq))
	if err != nil {
		return err
	}
	if got, err = exact.step(seq, 0); err != nil {
		return err
	}
	return s.againstGolden("Step, one prefill into an exact-size cache", got, i)
}

func checkLossGradients(s *session) error {
	L := s.golden.Loss
	params, err := s.paramTensors(dtypes.Float32)
	if err != nil {
		return err
	}
	index := map[string]int{}
	for i, sp := range s.arch.Specs() {
		index[sp.Name] = i
	}
	var names []string
	for n := range L.Grads {
		if _, ok := index[n]; !ok {
			return fmt.Errorf("the reference has a gradient for %q, which is not a spec name", n)
		}
		names = append(names, n)
	}
	slices.Sort(names)
	// Every graph the family takes gradients of: Logits, and its training graph if it has one.
	graphs := map[string]func(p lm.Params, tokens, positions, segments *graph.Node) *graph.Node{"Logits": s.arch.Logits}
	if ta, ok := s.arch.(lm.TrainingLogits); ok {
		graphs["TrainingLogits"] = ta.TrainingLogits
	}
	var errs []error
	for _, what := range []string{"Logits", "TrainingLogits"} {
		if logits := graphs[what]; logits != nil {
			if err := s.lossGradients(what, logits, params, names, index); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", what, err))
			}
		}
	}
	return errors.Join(errs...)
}

// lossGradients checks the loss and gradients of the graph logits against the reference.
func (s *session) lossGradients(what string, logitsOf func(p lm.Params, tokens, positions, segments *graph.Node) *graph.Node,
	params []*tensors.Tensor, names []string, index map[string]int) error {
	L := s.golden.Loss
	specs, family := s.arch.Specs(), s.arch.Family()
	n := len(specs)
	e, err := graph.NewExec(s.backend, func(in []*graph.Node) []*graph.Node {
		tokens, targets, weights := in[n], in[n+1], in[n+2]
		positions := graph.Iota(tokens.Graph(), tokens.Shape(), 1)
		logits := logitsOf(lm.ParamsFor(family, specs, in[:n]), tokens, positions, graph.OnesLike(tokens))
		picked := graph.ReduceSum(graph.Mul(graph.LogSoftmax(logits, -1), graph.OneHot(targets, s.vocab, dtypes.Float32)), -1)
		loss := graph.Div(graph.Neg(graph.ReduceAllSum(graph.Mul(picked, weights))), graph.ReduceAllSum(weights))
		var wrt []*graph.Node
		for _, name := range names {
			wrt = append(wrt, in[index[name]])
		}
		return append([]*graph.Node{loss}, graph.Gradient(loss, wrt...)...)
	})
	if err != nil {
		return err
	}
	args := make([]any, 0, n+3)
	for _, p := range params {
		args = append(args, p)
	}
	args = append(args, tensors.FromValue([][]int32{L.Tokens}), tensors.FromValue([][]int32{L.Targets}),
		tensors.FromValue([][]float32{L.Weights}))
	out, err := call(e, args...)
	if err != nil {
		return err
	}
	var errs []error
	loss := float64(out[0].Value().(float32))
	lossRel, lossTol := math.Abs(loss-L.Value)/math.Abs(L.Value), s.fix.Tolerance/10
	s.logf("%s: loss %.7f, reference %.7f: relative error %.2e", what, loss, L.Value, lossRel)
	if !(lossRel <= lossTol) {
		errs = append(errs, fmt.Errorf("loss %.7f, reference %.7f: relative error %.2e > %.0e", loss, L.Value, lossRel, lossTol))
	}
	for i, name := range names {
		rel, maxAbs := goldentest.Compare(tensors.MustCopyFlatData[float32](out[1+i]), L.Grads[name])
		s.logf("%s: gradient of %s: relative error %.2e (max abs %.2e)", what, name, rel, maxAbs)
		if rel > s.fix.Tolerance || math.IsNaN(rel) {
			errs = append(errs, fmt.Errorf("gradient of %s: relative error %.2e (max abs %.2e) > %.0e", name, rel, maxAbs, s.fix.Tolerance))
		}
	}
	return errors.Join(errs...)
}
