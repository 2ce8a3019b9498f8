package bert

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph code reads like the equations.
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/models/backend"
	"github.com/perpetual-ml/perpetual/models/checkpoint"
)

// DefaultMaxLength caps the tokens per text (BGE models are trained with 512).
const DefaultMaxLength = 512

// Encoder embeds texts with a BERT model: CLS pooling, L2-normalised. Safe for concurrent use
// (calls are serialised).
type Encoder struct {
	cfg       Config
	tok       *Tokenizer
	backend   compute.Backend
	names     []string
	params    []*tensors.Tensor
	maxLength int
	batchSize int
	hash      string

	mu   sync.Mutex
	exec *Exec
}

// Options configure Load.
type Options struct {
	// MaxLength truncates texts to this many tokens including [CLS] and [SEP] (default
	// min(DefaultMaxLength, max_position_embeddings)).
	MaxLength int
	// BatchSize is the most texts per forward pass (default 16).
	BatchSize int
	// Backend runs the graphs (default backend.Shared()).
	Backend compute.Backend
}

// Load reads a Hugging Face BERT folder with default options.
func Load(dir string) (*Encoder, error) { return LoadWith(dir, Options{}) }

// LoadWith reads a Hugging Face BERT folder: config.json, model.safetensors (or shards) and
// vocab.txt / tokenizer.json. Missing or misshapen tensors are reported by name.
func LoadWith(dir string, opts Options) (*Encoder, error) {
	cfg, err := ReadConfig(dir)
	if err != nil {
		return nil, err
	}
	tok, err := LoadTokenizer(dir)
	if err != nil {
		return nil, err
	}
	ck, err := checkpoint.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("bert: %w", err)
	}
	defer ck.Close()
	stored := checkpointNames(ck)
	e := &Encoder{cfg: cfg, tok: tok, maxLength: opts.MaxLength, batchSize: opts.BatchSize, backend: opts.Backend}
	if e.maxLength <= 0 || e.maxLength > cfg.MaxPositionEmbeddings {
		e.maxLength = min(DefaultMaxLength, cfg.MaxPositionEmbeddings)
	}
	if e.maxLength < 2 {
		return nil, fmt.Errorf("bert: %s: max length %d leaves no room for [CLS] and [SEP]", dir, e.maxLength)
	}
	if e.batchSize <= 0 {
		e.batchSize = 16
	}
	if e.backend == nil {
		if e.backend, err = backend.Shared(); err != nil {
			return nil, err
		}
	}
	for _, s := range cfg.specs() {
		name, ok := stored[s.name]
		if !ok {
			return nil, fmt.Errorf("bert: %s: checkpoint has no tensor %s", dir, s.name)
		}
		info, _, _ := ck.Info(name)
		if fmt.Sprint(info.Shape) != fmt.Sprint(s.shape) {
			return nil, fmt.Errorf("bert: %s: tensor %s has shape %v, config.json implies %v", dir, name, info.Shape, s.shape)
		}
		if !checkpoint.IsFloat(info.DType) {
			return nil, fmt.Errorf("bert: %s: tensor %s has dtype %s, want a floating-point dtype", dir, name, info.DType)
		}
		t, err := ck.Tensor(name, dtypes.Float32)
		if err != nil {
			return nil, fmt.Errorf("bert: %w", err)
		}
		e.names = append(e.names, s.name)
		e.params = append(e.params, t)
	}
	if e.hash, err = encoderHash(dir, e.names, e.params); err != nil {
		return nil, err
	}
	return e, nil
}

// encoderHash is a SHA-256 (hex) of config.json, the tokenizer files and every weight as
// loaded: two folders that embed alike hash alike, and any change to what shapes a vector shows.
func encoderHash(dir string, names []string, params []*tensors.Tensor) (string, error) {
	h := sha256.New()
	field := func(b []byte) {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	for _, f := range []string{"config.json", "vocab.txt", "tokenizer.json"} {
		raw, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("bert: %w", err)
		}
		field([]byte(f))
		field(raw)
	}
	for i, name := range names {
		field([]byte(name))
		params[i].ConstBytes(func(b []byte) { field(b) })
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

type spec struct {
	name  string
	shape []int
}

// specs lists the BertModel tensors the encoder uses (the pooler is not: CLS pooling reads the
// last hidden state, as BGE does).
func (c Config) specs() []spec {
	H, I := c.HiddenSize, c.IntermediateSize
	s := []spec{
		{"embeddings.word_embeddings.weight", []int{c.VocabSize, H}},
		{"embeddings.position_embeddings.weight", []int{c.MaxPositionEmbeddings, H}},
		{"embeddings.token_type_embeddings.weight", []int{c.TypeVocabSize, H}},
		{"embeddings.LayerNorm.weight", []int{H}},
		{"embeddings.LayerNorm.bias", []int{H}},
	}
	for l := 0; l < c.NumHiddenLayers; l++ {
		p := fmt.Sprintf("encoder.layer.%d.", l)
		for _, n := range []string{"attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"} {
			s = append(s, spec{p + n + ".weight", []int{H, H}}, spec{p + n + ".bias", []int{H}})
		}
		s = append(s,
			spec{p + "attention.output.LayerNorm.weight", []int{H}}, spec{p + "attention.output.LayerNorm.bias", []int{H}},
			spec{p + "intermediate.dense.weight", []int{I, H}}, spec{p + "intermediate.dense.bias", []int{I}},
			spec{p + "output.dense.weight", []int{H, I}}, spec{p + "output.dense.bias", []int{H}},
			spec{p + "output.LayerNorm.weight", []int{H}}, spec{p + "output.LayerNorm.bias", []int{H}})
	}
	return s
}

// Config returns the model configuration.
func (e *Encoder) Config() Config { return e.cfg }

// Tokenizer returns the WordPiece tokenizer.
func (e *Encoder) Tokenizer() *Tokenizer { return e.tok }

// Dim is the embedding size (hidden_size).
func (e *Encoder) Dim() int { return e.cfg.HiddenSize }

// Hash identifies the encoder (config, tokenizer files and weights): an index records it so
// that querying with a different encoder is caught instead of returning meaningless neighbours.
func (e *Encoder) Hash() string { return e.hash }

// MaxLength is the token limit per text, [CLS] and [SEP] included.
func (e *Encoder) MaxLength() int { return e.maxLength }

// Embed tokenizes (truncating to MaxLength) and embeds texts.
func (e *Encoder) Embed(texts []string) ([][]float32, error) {
	ids := make([][]int32, len(texts))
	for i, t := range texts {
		ids[i] = e.tok.Encode(t, e.maxLength)
	}
	return e.EmbedIDs(ids)
}

// EmbedIDs embeds token id sequences (each starting with [CLS]). Sequences are sorted by length
// and run in batches padded to a multiple of 8 tokens with an attention mask, so a text's vector
// does not depend on its batch-mates beyond float rounding.
func (e *Encoder) EmbedIDs(ids [][]int32) ([][]float32, error) {
	for i, s := range ids {
		if len(s) == 0 || len(s) > e.cfg.MaxPositionEmbeddings {
			return nil, fmt.Errorf("bert: sequence %d has %d tokens (want 1..%d)", i, len(s), e.cfg.MaxPositionEmbeddings)
		}
		for _, id := range s {
			if id < 0 || int(id) >= e.cfg.VocabSize {
				return nil, fmt.Errorf("bert: sequence %d: token id %d outside the vocabulary of %d", i, id, e.cfg.VocabSize)
			}
		}
	}
	order := make([]int, len(ids))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return len(ids[order[a]]) < len(ids[order[b]]) })
	out := make([][]float32, len(ids))
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.exec == nil {
		exec, err := NewExec(e.backend, e.graph)
		if err != nil {
			return nil, fmt.Errorf("bert: %w", err)
		}
		e.exec = exec.SetMaxCache(64)
	}
	for start := 0; start < len(order); start += e.batchSize {
		batch := order[start:min(start+e.batchSize, len(order))]
		T := 0
		for _, i := range batch {
			T = max(T, len(ids[i]))
		}
		T = min((T+7)/8*8, e.cfg.MaxPositionEmbeddings)
		tok := make([][]int32, len(batch))
		mask := make([][]int32, len(batch))
		for r, i := range batch {
			tok[r] = make([]int32, T)
			mask[r] = make([]int32, T)
			for j := range tok[r] {
				tok[r][j] = e.tok.pad
			}
			copy(tok[r], ids[i])
			for j := range ids[i] {
				mask[r][j] = 1
			}
		}
		args := make([]any, 0, len(e.params)+2)
		for _, p := range e.params {
			args = append(args, p)
		}
		args = append(args, tensors.FromValue(tok), tensors.FromValue(mask))
		res, err := e.exec.Exec(args...)
		if err != nil {
			return nil, fmt.Errorf("bert: %w", err)
		}
		vecs := res[0].Value().([][]float32)
		for r, i := range batch {
			out[i] = vecs[r]
		}
	}
	return out, nil
}

// graph builds the encoder: inputs are the parameters (in specs order), token ids and the
// attention mask (int32 [B, T], 1 for real tokens); output float32 [B, H] unit vectors.
func (e *Encoder) graph(inputs []*Node) *Node {
	c := e.cfg
	n := len(e.names)
	p := map[string]*Node{}
	for i, name := range e.names {
		p[name] = inputs[i]
	}
	ids, mask := inputs[n], inputs[n+1]
	g := ids.Graph()
	B, T := ids.Shape().Dimensions[0], ids.Shape().Dimensions[1]
	H, NH := c.HiddenSize, c.NumAttentionHeads
	D := H / NH

	// Embeddings: word + absolute position + token type 0, then LayerNorm.
	x := Gather(p["embeddings.word_embeddings.weight"], ExpandAxes(ids, -1))    // [B, T, H]
	pos := Slice(p["embeddings.position_embeddings.weight"], AxisRange(0, T))   // [T, H]
	typ := Slice(p["embeddings.token_type_embeddings.weight"], AxisRange(0, 1)) // [1, H]
	x = Add(Add(x, ExpandAxes(pos, 0)), ExpandAxes(typ, 0))
	x = layerNorm(x, p["embeddings.LayerNorm.weight"], p["embeddings.LayerNorm.bias"], c.LayerNormEps)

	// Keys at padding positions are masked out for every query.
	allowed := BroadcastToDims(Reshape(Equal(mask, OnesLike(mask)), B, 1, 1, T), B, NH, T, T)
	negInf := BroadcastToDims(Scalar(g, dtypes.Float32, -1e30), B, NH, T, T)
	for l := 0; l < c.NumHiddenLayers; l++ {
		pre := fmt.Sprintf("encoder.layer.%d.", l)
		lin := func(in *Node, name string) *Node {
			return Add(linear(in, p[pre+name+".weight"]), ExpandLeftToRank(p[pre+name+".bias"], in.Rank()))
		}
		heads := func(t *Node) *Node { return TransposeAllAxes(Reshape(t, B, T, NH, D), 0, 2, 1, 3) } // [B, NH, T, D]
		q := heads(lin(x, "attention.self.query"))
		k := heads(lin(x, "attention.self.key"))
		v := heads(lin(x, "attention.self.value"))
		scores := MulScalar(DotGeneral(q, []int{3}, []int{0, 1}, k, []int{3}, []int{0, 1}), 1/math.Sqrt(float64(D))) // [B, NH, T, T]
		probs := Softmax(Where(allowed, scores, negInf), -1)
		ctx := DotGeneral(probs, []int{3}, []int{0, 1}, v, []int{2}, []int{0, 1}) // [B, NH, T, D]
		ctx = Reshape(TransposeAllAxes(ctx, 0, 2, 1, 3), B, T, H)
		a := layerNorm(Add(lin(ctx, "attention.output.dense"), x),
			p[pre+"attention.output.LayerNorm.weight"], p[pre+"attention.output.LayerNorm.bias"], c.LayerNormEps)
		inter := geluErf(lin(a, "intermediate.dense"))
		x = layerNorm(Add(lin(inter, "output.dense"), a),
			p[pre+"output.LayerNorm.weight"], p[pre+"output.LayerNorm.bias"], c.LayerNormEps)
	}
	cls := Reshape(Slice(x, AxisRange(), AxisRange(0, 1)), B, H)
	norm := Sqrt(ReduceAndKeep(Square(cls), ReduceSum, -1))
	return Div(cls, norm)
}

// linear is x W^T for a PyTorch-layout weight [out, in].
func linear(x, w *Node) *Node {
	return DotGeneral(x, []int{x.Rank() - 1}, nil, w, []int{1}, nil)
}

// layerNorm normalises the last axis: (x - mean) / sqrt(var + eps) * w + b (biased variance,
// as torch.nn.LayerNorm).
func layerNorm(x, w, b *Node, eps float64) *Node {
	mean := ReduceAndKeep(x, ReduceMean, -1)
	centred := Sub(x, mean)
	variance := ReduceAndKeep(Square(centred), ReduceMean, -1)
	normed := Div(centred, Sqrt(AddScalar(variance, eps)))
	return Add(Mul(normed, ExpandLeftToRank(w, x.Rank())), ExpandLeftToRank(b, x.Rank()))
}

// geluErf is the exact GELU of BERT's hidden_act "gelu": 0.5 x (1 + erf(x / sqrt 2)).
func geluErf(x *Node) *Node {
	return Mul(MulScalar(x, 0.5), OnePlus(Erf(MulScalar(x, 1/math.Sqrt2))))
}
