package zoo

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads like math
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/models/lm"
)

// PhaseLog is what one training phase did: steps, tokens, the mean loss of the first and last
// tenth of its steps, and wall time.
type PhaseLog struct {
	Name       string    `json:"name"`
	Examples   int       `json:"examples"`
	Epochs     int       `json:"epochs"`
	Steps      int       `json:"steps"`
	Tokens     int       `json:"tokens"`
	FirstLoss  float64   `json:"first_loss"`
	FinalLoss  float64   `json:"final_loss"`
	Losses     []float64 `json:"losses"` // mean loss of every 10 steps
	WallSecond float64   `json:"wall_seconds"`
}

// batch is one packed training batch, [B, T] each.
type batch struct {
	tokens, positions, segments, targets []int32
	weights                              []float32
	lossTokens                           int
}

// packRows packs examples (in the given order) into rows of width T: each example gets its
// own segment id and positions from 0, so packed examples never see each other. Examples
// longer than T keep their last T tokens (the response end matters most).
func packRows(exs []example, T int) [][]example {
	var rows [][]example
	var cur []example
	used := 0
	for _, ex := range exs {
		if len(ex.ids) < 2 {
			continue
		}
		if len(ex.ids) > T {
			cut := len(ex.ids) - T
			ex = example{ids: ex.ids[cut:], promptLen: max(0, ex.promptLen-cut)}
		}
		if used+len(ex.ids) > T && len(cur) > 0 {
			rows = append(rows, cur)
			cur, used = nil, 0
		}
		cur = append(cur, ex)
		used += len(ex.ids)
	}
	if len(cur) > 0 {
		rows = append(rows, cur)
	}
	return rows
}

// makeBatch lays out B packed rows (missing rows are padding).
func makeBatch(rows [][]example, B, T int) batch {
	b := batch{tokens: make([]int32, B*T), positions: make([]int32, B*T), segments: make([]int32, B*T),
		targets: make([]int32, B*T), weights: make([]float32, B*T)}
	for r, row := range rows {
		off := r * T
		for s, ex := range row {
			for j, id := range ex.ids {
				i := off + j
				b.tokens[i], b.positions[i], b.segments[i] = id, int32(j), int32(s+1)
				// The token at j predicts ex.ids[j+1]; it counts when that target is response.
				if j+1 < len(ex.ids) {
					b.targets[i] = ex.ids[j+1]
					if j+1 >= ex.promptLen {
						b.weights[i] = 1
						b.lossTokens++
					}
				}
			}
			off += len(ex.ids)
		}
	}
	return b
}

// trainer runs AdamW steps over an lm.Model's weights in one compiled graph.
type trainer struct {
	model *lm.Model
	cfg   TrainConfig
	exec  *Exec
	state []*tensors.Tensor // weights, first moments, second moments
	n     int
	step  int
}

func newTrainer(m *lm.Model, cfg TrainConfig) (*trainer, error) {
	specs := m.Arch().Specs()
	n := len(specs)
	decay := make([]bool, n)
	for i, s := range specs {
		// Decay matrices only: norms, biases, Mamba's A_log and D keep their parameterisation.
		decay[i] = len(s.Shape) >= 2 && !strings.HasSuffix(s.Name, "A_log")
	}
	family := m.Arch().Family()
	arch := m.Arch()
	wd, clip := cfg.WeightDecay, cfg.Clip
	const beta1, beta2, eps = 0.9, 0.95, 1e-8
	exec, err := NewExec(m.Backend(), func(inputs []*Node) []*Node {
		theta, mom, vel := inputs[:n], inputs[n:2*n], inputs[2*n:3*n]
		rest := inputs[3*n:]
		step, lr := rest[0], rest[1]
		tokens, positions, segments, targets, weights := rest[2], rest[3], rest[4], rest[5], rest[6]
		logits := arch.Logits(lm.ParamsFor(family, specs, theta), tokens, positions, segments)
		if logits.DType() != dtypes.Float32 {
			logits = ConvertDType(logits, dtypes.Float32)
		}
		ce := crossEntropy(logits, targets)
		total := Max(ReduceAllSum(weights), ScalarOne(weights.Graph(), dtypes.Float32))
		loss := Div(ReduceAllSum(Mul(ce, weights)), total)
		grads := Gradient(loss, theta...)
		g := loss.Graph()
		if clip > 0 {
			sq := make([]*Node, n)
			for i := range grads {
				sq[i] = ReduceAllSum(Square(grads[i]))
			}
			norm := Sqrt(ReduceAllSum(Stack(sq, 0)))
			scale := Min(ScalarOne(g, dtypes.Float32), Div(Scalar(g, dtypes.Float32, clip), AddScalar(norm, 1e-6)))
			for i := range grads {
				grads[i] = Mul(grads[i], scale)
			}
		}
		bias1 := OneMinus(Pow(Scalar(g, dtypes.Float32, beta1), step))
		bias2 := OneMinus(Pow(Scalar(g, dtypes.Float32, beta2), step))
		outs := make([]*Node, 3*n+1)
		for i := range n {
			mi := Add(MulScalar(mom[i], beta1), MulScalar(grads[i], 1-beta1))
			vi := Add(MulScalar(vel[i], beta2), MulScalar(Square(grads[i]), 1-beta2))
			update := Div(Div(mi, bias1), AddScalar(Sqrt(Div(vi, bias2)), eps))
			w := theta[i]
			if decay[i] && wd > 0 {
				w = Sub(w, Mul(MulScalar(w, wd), lr))
			}
			outs[i] = Sub(w, Mul(update, lr))
			outs[n+i], outs[2*n+i] = mi, vi
		}
		outs[3*n] = loss
		return outs
	})
	if err != nil {
		return nil, err
	}
	exec = exec.WithName("zoo-train-" + family)
	t := &trainer{model: m, cfg: cfg, exec: exec, n: n}
	for _, w := range m.WeightList() {
		c, err := cloneTensor(w)
		if err != nil {
			return nil, err
		}
		t.state = append(t.state, c)
	}
	for range 2 {
		for _, w := range m.WeightList() {
			t.state = append(t.state, tensors.FromShape(w.Shape()))
		}
	}
	return t, nil
}

func cloneTensor(t *tensors.Tensor) (*tensors.Tensor, error) {
	data, err := tensors.CopyFlatData[float32](t)
	if err != nil {
		return nil, fmt.Errorf("zoo: training needs float32 weights: %w", err)
	}
	return tensors.FromFlatDataAndDimensions(data, t.Shape().Dimensions...), nil
}

// crossEntropy is logsumexp - logit[target] per position, [B, T], gathering the target logit
// instead of materialising a [B, T, V] one-hot.
func crossEntropy(logits, targets *Node) *Node {
	g := logits.Graph()
	dims := targets.Shape().Dimensions
	maxLogit := StopGradient(ReduceAndKeep(logits, ReduceMax, -1))
	lse := Add(Log(ReduceSum(Exp(Sub(logits, maxLogit)), -1)), Squeeze(maxLogit, -1))
	idx := Concatenate([]*Node{
		ExpandAxes(Iota(g, shapes.Make(dtypes.Int32, dims...), 0), -1),
		ExpandAxes(Iota(g, shapes.Make(dtypes.Int32, dims...), 1), -1),
		ExpandAxes(ConvertDType(targets, dtypes.Int32), -1),
	}, -1)
	return Sub(lse, Gather(logits, idx))
}

// lrAt is linear warmup then cosine decay to a tenth of the peak over total steps.
func lrAt(cfg TrainConfig, step, total int) float64 {
	if step < cfg.WarmupSteps {
		return cfg.LR * float64(step+1) / float64(cfg.WarmupSteps)
	}
	span := max(1, total-cfg.WarmupSteps)
	p := math.Min(1, float64(step-cfg.WarmupSteps)/float64(span))
	return cfg.LR * (0.1 + 0.9*0.5*(1+math.Cos(math.Pi*p)))
}

// runPhase trains on exs for epochs (shuffled and re-packed every epoch) with its own warmup
// and decay, then writes the weights back into the model. progress (may be nil) gets a line
// every 10 steps.
func (t *trainer) runPhase(ctx context.Context, name string, exs []example, epochs int, seed int64, progress func(string)) (PhaseLog, error) {
	start := time.Now()
	log := PhaseLog{Name: name, Examples: len(exs), Epochs: epochs}
	B, T := t.cfg.BatchSize, t.cfg.SeqLen
	rng := rand.New(rand.NewPCG(uint64(seed), 0x7a11))
	var plan [][][]example
	for range epochs {
		order := append([]example(nil), exs...)
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		rows := packRows(order, T)
		for i := 0; i < len(rows); i += B {
			plan = append(plan, rows[i:min(i+B, len(rows))])
		}
	}
	total := len(plan)
	var window []float64
	var losses []float64
	for s, rows := range plan {
		if err := ctx.Err(); err != nil {
			return log, err
		}
		b := makeBatch(rows, B, T)
		t.step++
		args := make([]any, 0, 3*t.n+7)
		for _, st := range t.state {
			args = append(args, st)
		}
		args = append(args, tensors.FromScalar(float32(t.step)), tensors.FromScalar(float32(lrAt(t.cfg, s, total))),
			tensors.FromFlatDataAndDimensions(b.tokens, B, T), tensors.FromFlatDataAndDimensions(b.positions, B, T),
			tensors.FromFlatDataAndDimensions(b.segments, B, T), tensors.FromFlatDataAndDimensions(b.targets, B, T),
			tensors.FromFlatDataAndDimensions(b.weights, B, T))
		out, err := t.exec.Exec(args...)
		if err != nil {
			return log, fmt.Errorf("zoo: %s step %d: %w", name, s, err)
		}
		for _, st := range t.state {
			st.FinalizeAll()
		}
		copy(t.state, out[:3*t.n])
		loss := float64(out[3*t.n].Value().(float32))
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return log, fmt.Errorf("zoo: %s step %d: loss is %v (lower train.lr in zoo/config.yaml)", name, s, loss)
		}
		losses = append(losses, loss)
		window = append(window, loss)
		log.Tokens += b.lossTokens
		if len(window) == 10 || s == total-1 {
			log.Losses = append(log.Losses, round4(mean(window)))
			if progress != nil {
				progress(fmt.Sprintf("%s step %d/%d loss %.4f (%.0fs)", name, s+1, total, mean(window), time.Since(start).Seconds()))
			}
			window = window[:0]
		}
	}
	log.Steps = total
	if k := max(1, total/10); total > 0 {
		log.FirstLoss, log.FinalLoss = round4(mean(losses[:k])), round4(mean(losses[total-k:]))
	}
	log.WallSecond = math.Round(time.Since(start).Seconds()*10) / 10
	w, err := t.weights()
	if err != nil {
		return log, err
	}
	if err := t.model.SetWeights(w); err != nil {
		return log, err
	}
	return log, nil
}

// weights copies the trained parameters out by name (the trainer keeps updating its own).
func (t *trainer) weights() (map[string]*tensors.Tensor, error) {
	out := map[string]*tensors.Tensor{}
	for i, s := range t.model.Arch().Specs() {
		c, err := cloneTensor(t.state[i])
		if err != nil {
			return nil, err
		}
		out[s.Name] = c
	}
	return out, nil
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

func round4(x float64) float64 { return math.Round(x*1e4) / 1e4 }
