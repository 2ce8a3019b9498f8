// Package lmtest is the conformance suite of the lm.Architecture contract: one set of checks
// that every model family runs on its golden fixtures, so a new family gets all of them by
// calling Conformance from its tests:
//
//	func TestConformance(t *testing.T) {
//		lmtest.Conformance(t, lmtest.Fixture{Dir: "testdata/tiny"}, lmtest.Fixture{Dir: "testdata/tiny_bf16"})
//	}
//
// A fixture is a tiny random Hugging Face folder (config.json, model.safetensors or shards with
// model.safetensors.index.json, F32 or BF16) plus golden.json (see Golden), written by an
// independent re-implementation of the family (models/<family>/testdata/make_golden.py). The
// family registers itself with lm.Register under config.json's model_type.
//
// The checks, each a subtest (Checks lists them):
//
//   - specs: Family, VocabSize, MaxLength and CacheShapes agree with the fixture; every
//     checkpoint tensor is a ParamSpec name or alias and every spec is present with its shape.
//   - golden-logits: Logits of each sequence alone equals the reference (float32).
//   - code-version: the logits of the first sequence equal those recorded in the fixture's
//     code_version.json (CodeVersionFile) with the lm.Version and family CodeVersion of the
//     code; logits that moved while both versions stayed the same fail, since results caches
//     key on them (set LMTEST_UPDATE_CODE_VERSION=1 to record after changing a version).
//   - padding: sequences padded on the right (padding of varied tokens and positions, a row of
//     padding only) give their reference logits, and every logit, padding included, is finite.
//   - packing: sequences packed in one row (segment ids, positions restarting) give their
//     reference logits.
//   - batch-independence: a row gives the same logits alone and among other rows.
//   - causality: changing the tokens from position k on (k = 1, 2, 5, T/2, T-1), or cutting
//     them off (padding in their place, k = 1, T-1), leaves the logits before k unchanged.
//   - step: incremental decoding with Step (a prefill of 2 tokens, a chunk of 5, then single
//     tokens; a cache longer than the sequence, and an exact-size cache filled by one prefill)
//     equals Logits on the whole sequence and the reference.
//   - loss-gradients: a masked mean cross-entropy and its gradients (graph.Gradient) equal the
//     reference's autograd, through Logits and, for a family that has one, through its training
//     graph (lm.TrainingLogits, whose gradients may be written by hand).
//   - runtime-logits: lm.Load of the folder and lm.Model.Logits (batched, padded by the
//     runtime; an empty sequence among them) give the reference; an out-of-vocabulary token is
//     an error.
//   - bfloat16, float16: lm.Load in that compute dtype converts every weight and the logits of
//     the sequences of up to 16 tokens stay within the fixture's tolerance of the reference
//     (logits_bf16 when golden.json has it).
//   - loglikelihood: lm.Model.LogLikelihood equals log-softmax sums and greedy flags computed
//     from the reference logits, with identical results at batch sizes 1 and all.
//   - shared-context: lm.Model.LogLikelihoodSharedContext (a context prefilled once through
//     Step, several continuations scored from its cache, one of them greedy, a one-token context,
//     a context asked once) equals LogLikelihood within 1e-4 on every log-probability, with the
//     same greedy flags and token counts, and the reference where a request continues a golden
//     sequence.
//   - generate: greedy lm.Model.Generate (prompts of up to 7 tokens prefilled in pieces of 4,
//     2 and 1, then decoding through Step) equals argmax decoding by full recomputation.
//   - save-reload: lm.Model.Save (in shards) then lm.Load gives the same model: family, config
//     and hash (every weight's name, dtype, shape and bytes).
//
// The graph-level checks read the weights with models/internal/goldentest's own safetensors
// reader, so they check the family's graph code apart from models/checkpoint and lm.Load; the
// runtime checks go through lm.Load as evaluation and training do.
//
// Beyond Conformance, the package holds what the families' own tests share: Load reads a fixture
// as data (config, weights as stored, golden.json) for family-specific checks;
// CheckSpecsNameTheCheckpoint and CheckSaveReloadHFNames check the Hugging Face names of a
// checkpoint and of a saved folder; CheckMissesReference that a fixture discriminates; the
// training checks (CheckTrainingLowersLoss, CheckLoRATargets, CheckPackedLossEqualsUnpacked) run
// a family through the trainer (package training), which Conformance itself does not use; and
// BenchConfig, BenchModel and BenchTrainStep are the families' benchmark model and train step.
package lmtest

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/models/backend"
	"github.com/perpetual-ml/perpetual/models/internal/goldentest"
	"github.com/perpetual-ml/perpetual/models/lm"
)

// Fixture is one golden folder of a family and the tolerances its reference allows.
type Fixture struct {
	// Dir is the golden folder: config.json, the safetensors weights and golden.json.
	Dir string
	// Tolerance bounds the relative L2 error of float32 logits and gradients against the
	// reference (and a tenth of it the relative error of the loss, a single number); 0 means
	// 1e-4.
	Tolerance float64
	// BFloat16Tolerance bounds the relative L2 error of logits computed in bfloat16 against
	// golden.json's logits_bf16 when present, else against its logits; 0 means 5e-2.
	BFloat16Tolerance float64
	// Float16Tolerance bounds the relative L2 error of logits computed in float16 against the
	// float32 reference; 0 means 1e-2.
	Float16Tolerance float64
}

// Tolerances the Fixture's zero values stand for, and the one for comparing a model with
// itself computed another way (batching, padding, chunking), which is not a fixture's choice.
const (
	DefaultTolerance         = 1e-4
	DefaultBFloat16Tolerance = 5e-2
	DefaultFloat16Tolerance  = 1e-2
	selfTolerance            = 1e-5
)

func (f Fixture) withDefaults() Fixture {
	if f.Tolerance == 0 {
		f.Tolerance = DefaultTolerance
	}
	if f.BFloat16Tolerance == 0 {
		f.BFloat16Tolerance = DefaultBFloat16Tolerance
	}
	if f.Float16Tolerance == 0 {
		f.Float16Tolerance = DefaultFloat16Tolerance
	}
	return f
}

// check is one property of the contract; it returns nil when the fixture's model has it.
type check struct {
	name string
	run  func(s *session) error
}

// checks run in this order; later ones reuse what earlier ones computed (the shared batch,
// the runtime model). Each distinct input shape costs a graph build and compile, most of the
// suite's time, so the checks share shapes where they can.
var checks = []check{
	{"specs", checkSpecs},
	{"golden-logits", checkGoldenLogits},
	{"code-version", checkCodeVersion},
	{"padding", checkPadding},
	{"packing", checkPacking},
	{"batch-independence", checkBatchIndependence},
	{"causality", checkCausality},
	{"step", checkStep},
	{"loss-gradients", checkLossGradients},
	{"runtime-logits", checkRuntimeLogits},
	{"bfloat16", func(s *session) error { return checkPrecision(s, dtypes.BFloat16) }},
	{"float16", func(s *session) error { return checkPrecision(s, dtypes.Float16) }},
	{"loglikelihood", checkLogLikelihood},
	{"shared-context", checkSharedContext},
	{"generate", checkGenerate},
	{"save-reload", checkSaveReload},
}

// Checks names the conformance checks, in the order Conformance runs them.
func Checks() []string {
	names := make([]string, len(checks))
	for i, c := range checks {
		names[i] = c.name
	}
	return names
}

// Conformance runs every check on each fixture, as subtests named after the fixture folder and
// the check. A fixture that cannot be read fails its subtest at once.
func Conformance(t *testing.T, fixtures ...Fixture) {
	t.Helper()
	if len(fixtures) == 0 {
		t.Fatal("lmtest.Conformance: no fixtures")
	}
	for _, f := range fixtures {
		t.Run(filepath.Base(f.Dir), func(t *testing.T) {
			s, err := open(f, t.Logf)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range checks {
				t.Run(c.name, func(t *testing.T) {
					s.logf = t.Logf
					if err := s.run(c); err != nil {
						t.Error(err)
					}
				})
			}
		})
	}
}

// Verify runs the named checks (every check when none is named) on one fixture and returns the
// failures by check name, nil when all pass; the error reports a fixture that cannot be read or
// an unknown check name. It is Conformance without a testing.T, for tests of the suite itself.
func Verify(f Fixture, only ...string) (map[string]error, error) {
	for _, name := range only {
		if !slices.Contains(Checks(), name) {
			return nil, fmt.Errorf("lmtest: unknown check %q (checks: %v)", name, Checks())
		}
	}
	s, err := open(f, func(string, ...any) {})
	if err != nil {
		return nil, err
	}
	var failures map[string]error
	for _, c := range checks {
		if len(only) > 0 && !slices.Contains(only, c.name) {
			continue
		}
		if err := s.run(c); err != nil {
			if failures == nil {
				failures = map[string]error{}
			}
			failures[c.name] = err
		}
	}
	return failures, nil
}

// session is one fixture opened for checking, with what the checks share.
type session struct {
	fix       Fixture
	config    json.RawMessage
	modelType string
	arch      lm.Architecture
	golden    *Golden
	vocab     int
	weights   map[string]goldentest.Tensor // as stored, aliases included
	backend   compute.Backend
	logf      func(format string, args ...any)

	params     map[dtypes.DType][]*tensors.Tensor // graph-level weights in Specs order
	logitsExec *graph.Exec
	shared     *sharedBatch
	model      *lm.Model // lm.Load of the folder in float32
}

func open(f Fixture, logf func(string, ...any)) (*session, error) {
	l, err := Load(f)
	if err != nil {
		return nil, err
	}
	s := &session{fix: l.Fixture, config: l.Config, modelType: l.ModelType, arch: l.Arch, golden: l.Golden,
		vocab: l.Golden.vocab(), weights: l.Weights, logf: logf, params: map[dtypes.DType][]*tensors.Tensor{}}
	if s.backend, err = backend.Shared(); err != nil {
		return nil, err
	}
	return s, nil
}

// run runs a check, turning a panic (a graph that fails to build, a shape mismatch) into its
// error.
func (s *session) run(c check) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: panic: %v", c.name, r)
		}
	}()
	return c.run(s)
}

// paramTensors returns the graph-level weights in Specs order as tensors of dtype.
func (s *session) paramTensors(dtype dtypes.DType) ([]*tensors.Tensor, error) {
	if p, ok := s.params[dtype]; ok {
		return p, nil
	}
	p, err := goldentest.ParamTensors(s.fix.Dir, s.arch.Specs(), s.weights, dtype)
	if err != nil {
		return nil, err
	}
	s.params[dtype] = p
	return p, nil
}

// runtime returns the fixture loaded by lm.Load in float32 (once).
func (s *session) runtime() (*lm.Model, error) {
	if s.model != nil {
		return s.model, nil
	}
	m, err := lm.Load(s.fix.Dir, lm.LoadOptions{Backend: s.backend})
	if err != nil {
		return nil, err
	}
	s.model = m
	return m, nil
}
