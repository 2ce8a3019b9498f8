package lmtest_test

// The suite's own tests: broken variants of a real family (Gemma, on its mha fixture) must fail
// the check aimed at what they break and pass some checks they leave alone (the cheap ones:
// each compiled shape costs time), so a family that passes Conformance is known to have each
// property rather than to have slipped past a check that cannot fail.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/graph"

	_ "github.com/perpetual-ml/perpetual/models/gemma"
	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/models/lm/lmtest"
)

var base = filepath.Join("..", "..", "gemma", "testdata", "mha")

// mutant is a family's architecture with Logits, Step or VocabSize replaced.
type mutant struct {
	lm.Architecture
	family string
	vocab  int // added to VocabSize
	logits func(a lm.Architecture, p lm.Params, tokens, positions, segments *graph.Node) *graph.Node
	step   func(a lm.Architecture, p lm.Params, cache []*graph.Node, tokens, start *graph.Node) (*graph.Node, []*graph.Node)
	// train, when set, makes the mutant a trainingMutant.
	train func(a lm.Architecture, p lm.Params, tokens, positions, segments *graph.Node) *graph.Node
}

func (m mutant) Family() string { return m.family }

func (m mutant) VocabSize() int { return m.Architecture.VocabSize() + m.vocab }

func (m mutant) Logits(p lm.Params, tokens, positions, segments *graph.Node) *graph.Node {
	if m.logits == nil {
		return m.Architecture.Logits(p, tokens, positions, segments)
	}
	return m.logits(m.Architecture, p, tokens, positions, segments)
}

// trainingMutant is a mutant with a training graph (lm.TrainingLogits): its train function.
type trainingMutant struct{ mutant }

func (m trainingMutant) TrainingLogits(p lm.Params, tokens, positions, segments *graph.Node) *graph.Node {
	return m.train(m.Architecture, p, tokens, positions, segments)
}

func (m mutant) Step(p lm.Params, cache []*graph.Node, tokens, start *graph.Node) (*graph.Node, []*graph.Node) {
	if m.step == nil {
		return m.Architecture.Step(p, cache, tokens, start)
	}
	return m.step(m.Architecture, p, cache, tokens, start)
}

// detachedEmbedding is Logits with no gradient reaching the embedding.
func detachedEmbedding(a lm.Architecture, p lm.Params, tok, pos, seg *graph.Node) *graph.Node {
	return a.Logits(func(name string) *graph.Node {
		if name == "model.embed_tokens.weight" {
			return graph.StopGradient(p(name))
		}
		return p(name)
	}, tok, pos, seg)
}

// perRow broadcasts x [B, T] to the logits' shape and adds 0.01 x to them.
func perRow(logits, x *graph.Node) *graph.Node {
	x = graph.ConvertDType(x, dtypes.Float32)
	return graph.Add(logits, graph.MulScalar(graph.BroadcastToDims(graph.ExpandAxes(x, -1), logits.Shape().Dimensions...), 0.01))
}

// register makes m loadable as model_type m.family (Gemma underneath) and returns a copy of the
// mha fixture that names it.
func register(t *testing.T, m mutant) lmtest.Fixture {
	t.Helper()
	lm.Register(m.family, func(raw json.RawMessage) (lm.Architecture, error) {
		inner, err := lm.NewArchitecture(setModelType(t, raw, "gemma"))
		if err != nil {
			return nil, err
		}
		m.Architecture = inner
		if m.train != nil {
			return trainingMutant{m}, nil
		}
		return m, nil
	})
	dir := t.TempDir()
	for _, name := range []string{"config.json", "model.safetensors", "golden.json", lmtest.CodeVersionFile} {
		raw, err := os.ReadFile(filepath.Join(base, name))
		if err != nil {
			t.Fatal(err)
		}
		if name == "config.json" {
			raw = setModelType(t, raw, m.family)
		}
		if err := os.WriteFile(filepath.Join(dir, name), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return lmtest.Fixture{Dir: dir}
}

func setModelType(t *testing.T, raw []byte, modelType string) []byte {
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["model_type"] = modelType
	out, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestBrokenArchitecturesFailTheirCheck(t *testing.T) {
	cases := []struct {
		m          mutant
		fail, pass []string
	}{{
		// Position t also sees token t+1.
		mutant{family: "gemma_peeks_ahead", logits: func(a lm.Architecture, p lm.Params, tok, pos, seg *graph.Node) *graph.Node {
			next := graph.Concatenate([]*graph.Node{graph.Slice(tok, graph.AxisRange(), graph.AxisRange(1)),
				graph.ZerosLike(graph.Slice(tok, graph.AxisRange(), graph.AxisRange(0, 1)))}, 1)
			return perRow(a.Logits(p, tok, pos, seg), next)
		}},
		[]string{"causality", "golden-logits"}, []string{"specs"},
	}, {
		// Every position sees how much padding its row has.
		mutant{family: "gemma_reads_padding", logits: func(a lm.Architecture, p lm.Params, tok, pos, seg *graph.Node) *graph.Node {
			pads := graph.ReduceSum(graph.ConvertDType(graph.Equal(seg, graph.ZerosLike(seg)), dtypes.Float32), -1)
			return perRow(a.Logits(p, tok, pos, seg), graph.BroadcastToDims(graph.ExpandAxes(pads, -1), tok.Shape().Dimensions...))
		}},
		[]string{"padding", "runtime-logits"}, []string{"golden-logits"},
	}, {
		// Packed documents see each other: every real token is in segment 1.
		mutant{family: "gemma_ignores_segments", logits: func(a lm.Architecture, p lm.Params, tok, pos, seg *graph.Node) *graph.Node {
			return a.Logits(p, tok, pos, graph.MinScalar(seg, 1))
		}},
		[]string{"packing"}, []string{"golden-logits", "padding", "causality"},
	}, {
		// Each row sees the other rows' tokens (nothing changes in a batch of one).
		mutant{family: "gemma_mixes_rows", logits: func(a lm.Architecture, p lm.Params, tok, pos, seg *graph.Node) *graph.Node {
			f := graph.ConvertDType(tok, dtypes.Float32)
			others := graph.Sub(graph.BroadcastToDims(graph.ExpandAxes(graph.ReduceMean(f, 0), 0), tok.Shape().Dimensions...), f)
			return perRow(a.Logits(p, tok, pos, seg), others)
		}},
		[]string{"batch-independence"}, []string{"golden-logits"},
	}, {
		// Step forgets the cache it is given.
		mutant{family: "gemma_forgets_cache", step: func(a lm.Architecture, p lm.Params, cache []*graph.Node, tok, start *graph.Node) (*graph.Node, []*graph.Node) {
			var zeros []*graph.Node
			for _, c := range cache {
				zeros = append(zeros, graph.ZerosLike(c))
			}
			return a.Step(p, zeros, tok, start)
		}},
		[]string{"step", "generate", "shared-context"}, []string{"golden-logits", "padding", "packing", "causality", "loglikelihood"},
	}, {
		// No gradient reaches the embedding.
		mutant{family: "gemma_detached_embedding", logits: detachedEmbedding},
		[]string{"loss-gradients"}, []string{"golden-logits", "save-reload"},
	}, {
		// The training graph's gradient misses the embedding; Logits is right.
		mutant{family: "gemma_training_graph_detached", train: detachedEmbedding},
		[]string{"loss-gradients"}, []string{"golden-logits"},
	}, {
		// Logits move by 3e-5 (inside the reference's tolerance) under the same code version.
		mutant{family: "gemma_drifts", logits: func(a lm.Architecture, p lm.Params, tok, pos, seg *graph.Node) *graph.Node {
			return graph.MulScalar(a.Logits(p, tok, pos, seg), 1+3e-5)
		}},
		[]string{"code-version"}, []string{"golden-logits", "specs"},
	}, {
		// Claims one token more than its logits have.
		mutant{family: "gemma_wrong_vocab", vocab: 1},
		[]string{"specs"}, []string{"golden-logits"},
	}}
	for _, c := range cases {
		t.Run(c.m.family, func(t *testing.T) {
			f := register(t, c.m)
			failures, err := lmtest.Verify(f, append(slices.Clone(c.fail), c.pass...)...)
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range c.fail {
				if failures[name] == nil {
					t.Errorf("check %s passed", name)
				} else {
					t.Logf("%s: %v", name, failures[name])
				}
			}
			for _, name := range c.pass {
				if failures[name] != nil {
					t.Errorf("check %s failed: %v", name, failures[name])
				}
			}
		})
	}
}

func TestVerifyPassesTheFamilyAndRejectsUnknownChecks(t *testing.T) {
	failures, err := lmtest.Verify(lmtest.Fixture{Dir: base}, "specs", "golden-logits", "step")
	if err != nil || failures != nil {
		t.Fatalf("gemma mha: %v, %v", failures, err)
	}
	if _, err := lmtest.Verify(lmtest.Fixture{Dir: base}, "nope"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("unknown check: %v", err)
	}
	if _, err := lmtest.Verify(lmtest.Fixture{Dir: t.TempDir()}); err == nil {
		t.Fatal("empty folder: no error")
	}
}

func TestReadGoldenValidates(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(base, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	for what, edit := range map[string]func(g map[string]any){
		"at least 2": func(g map[string]any) {
			g["sequences"] = g["sequences"].([]any)[:1]
			g["logits"] = g["logits"].([]any)[:1]
		},
		"logits lists":    func(g map[string]any) { g["logits"] = g["logits"].([]any)[:2] },
		"want 14 tokens":  func(g map[string]any) { l := g["logits"].([]any); l[1] = l[1].([]any)[1:] },
		"outside":         func(g map[string]any) { g["sequences"].([]any)[2].([]any)[0] = 1000.0 },
		"no gradients":    func(g map[string]any) { delete(g["loss"].(map[string]any), "grads") },
		"targets":         func(g map[string]any) { g["loss"].(map[string]any)["targets"] = []any{} },
		"logits_bf16 lis": func(g map[string]any) { g["logits_bf16"] = []any{} },
	} {
		var g map[string]any
		if err := json.Unmarshal(raw, &g); err != nil {
			t.Fatal(err)
		}
		edit(g)
		out, _ := json.Marshal(g)
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "golden.json"), out, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := lmtest.ReadGolden(dir); err == nil || !strings.Contains(err.Error(), what) {
			t.Errorf("%s: %v", what, err)
		}
	}
	if g, err := lmtest.ReadGolden(base); err != nil || len(g.Sequences) != 3 || len(g.Loss.Grads) == 0 {
		t.Fatalf("%v", err)
	}
}
