package lmtest

// A fixture read for a family's own tests, the checks beyond Conformance that need it as data
// (the fixture's weights, config and golden.json), and the Hugging Face save check that the
// families with a Transformers counterpart share.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/models/checkpoint"
	"github.com/perpetual-ml/perpetual/models/internal/goldentest"
	"github.com/perpetual-ml/perpetual/models/lm"
)

// Name is the fixture's folder name (the subtest name Conformance gives it).
func (f Fixture) Name() string { return filepath.Base(f.Dir) }

// Loaded is a fixture folder read for a family's own tests: what Conformance reads, as data.
type Loaded struct {
	// Fixture is the folder and its tolerances, the zero ones replaced by their defaults.
	Fixture
	// Config is config.json as stored, and ModelType its model_type.
	Config    []byte
	ModelType string
	// Arch is the architecture lm.NewArchitecture builds from Config (the family's package must
	// be imported).
	Arch lm.Architecture
	// Weights are the checkpoint's tensors by Hugging Face name as stored (aliases included),
	// read by goldentest's independent reader.
	Weights map[string]goldentest.Tensor
	// Golden is golden.json, validated.
	Golden *Golden
}

// Load reads a fixture folder: config.json, the weights and golden.json.
func Load(f Fixture) (*Loaded, error) {
	l := &Loaded{Fixture: f.withDefaults()}
	var err error
	if l.Config, err = os.ReadFile(filepath.Join(f.Dir, "config.json")); err != nil {
		return nil, err
	}
	var head struct {
		ModelType string `json:"model_type"`
	}
	if err := json.Unmarshal(l.Config, &head); err != nil {
		return nil, fmt.Errorf("%s/config.json: %w", f.Dir, err)
	}
	l.ModelType = head.ModelType
	if l.Arch, err = lm.NewArchitecture(l.Config); err != nil {
		return nil, fmt.Errorf("%s: %w (is the family's package imported?)", f.Dir, err)
	}
	if l.Golden, err = ReadGolden(f.Dir); err != nil {
		return nil, err
	}
	if l.Weights, err = goldentest.ReadWeights(f.Dir); err != nil {
		return nil, err
	}
	return l, nil
}

// MustLoad is Load, failing t on an error.
func MustLoad(t testing.TB, f Fixture) *Loaded {
	t.Helper()
	l, err := Load(f)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// MustLoadNamed loads the fixture of fixtures whose folder is called name.
func MustLoadNamed(t testing.TB, fixtures []Fixture, name string) *Loaded {
	t.Helper()
	for _, f := range fixtures {
		if f.Name() == name {
			return MustLoad(t, f)
		}
	}
	t.Fatalf("no fixture %q", name)
	return nil
}

// ParamTensors returns the fixture's weights as graph inputs of dtype, in the order of Arch's
// Specs (a spec's aliases are tried when its name is not stored).
func (l *Loaded) ParamTensors(t testing.TB, dtype dtypes.DType) []*tensors.Tensor {
	t.Helper()
	ps, err := goldentest.ParamTensors(l.Dir, l.Arch.Specs(), l.Weights, dtype)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// LoadModel is lm.Load of the fixture folder in dtype; the model must be of Arch's family.
func (l *Loaded) LoadModel(t testing.TB, dtype dtypes.DType) *lm.Model {
	t.Helper()
	m, err := lm.Load(l.Dir, lm.LoadOptions{DType: dtype})
	if err != nil {
		t.Fatal(err)
	}
	if m.Arch().Family() != l.Arch.Family() {
		t.Fatalf("loaded family %q, want %q", m.Arch().Family(), l.Arch.Family())
	}
	return m
}

// CheckSpecsNameTheCheckpoint checks that Arch's Specs name exactly the checkpoint's tensors,
// with the Hugging Face names the reference wrote: every spec is stored under its own name
// (not only an alias), and every stored tensor is a spec or one of unspecified (a tied head's
// lm_head.weight, say). It is stricter than Conformance's specs check, which accepts any alias.
func CheckSpecsNameTheCheckpoint(t testing.TB, l *Loaded, unspecified ...string) {
	t.Helper()
	want := map[string]bool{}
	for _, s := range l.Arch.Specs() {
		want[s.Name] = true
		if _, ok := l.Weights[s.Name]; !ok {
			t.Errorf("%s: spec %s not in the checkpoint", l.Name(), s.Name)
		}
	}
	for n := range l.Weights {
		if !want[n] && !slices.Contains(unspecified, n) {
			t.Errorf("%s: checkpoint tensor %s is not in Specs", l.Name(), n)
		}
	}
}

// CheckSaveReloadHFNames checks that m (the fixture loaded, in float32) saves a folder
// Transformers loads unchanged: saved in several shards, the tensors are exactly the
// checkpoint's under their Hugging Face names but for notSaved (an lm_head.weight alias of a tied
// embedding, which save_pretrained does not write), config.json has the fixture's fields and
// values, and the folder loads back as the same model (hash) with the reference logits of the
// first two golden sequences (batched together).
func CheckSaveReloadHFNames(t *testing.T, l *Loaded, m *lm.Model, notSaved ...string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "saved")
	if err := m.Save(dir, checkpoint.SaveOptions{MaxShardSize: 40000}); err != nil { // several shards
		t.Fatal(err)
	}
	var want []string
	for n := range l.Weights {
		if !slices.Contains(notSaved, n) {
			want = append(want, n)
		}
	}
	sort.Strings(want)
	saved, err := goldentest.ReadWeights(dir) // the independent reader, not the one Save mirrors
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for n := range saved {
		got = append(got, n)
	}
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Errorf("saved tensors %v, want the reference's %v", got, want)
	}
	savedConfig, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var a, b map[string]any
	if err := json.Unmarshal(savedConfig, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(l.Config, &b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("saved config.json differs:\n%s\nwant\n%s", savedConfig, l.Config)
	}
	back, err := lm.Load(dir, lm.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if back.Hash() != m.Hash() {
		t.Error("reloaded model hashes differently")
	}
	logits, err := back.Logits(l.Golden.Sequences[:2])
	if err != nil {
		t.Fatal(err)
	}
	for i := range logits {
		if rel, _ := goldentest.Compare(goldentest.Flatten(logits[i]), l.Golden.Logits[i]); rel > l.Tolerance {
			t.Errorf("reloaded logits of sequence %d: relative error %.2e", i, rel)
		}
	}
}

// CheckMissesReference checks that arch run with params (in Specs order) on the fixture's second
// golden sequence alone misses the reference logits by more than 100 times the fixture's
// tolerance: the change to the model or its weights that what names matters on this fixture, so
// the golden checks test it (the fixture discriminates).
func CheckMissesReference(t testing.TB, l *Loaded, arch lm.Architecture, params []*tensors.Tensor, what string) {
	t.Helper()
	got := goldentest.SequenceLogits(t, arch, params, l.Golden.Sequences[1])
	rel, _ := goldentest.Compare(goldentest.Flatten(got), l.Golden.Logits[1])
	t.Logf("%s with %s: relative error %.2e", l.Name(), what, rel)
	if rel < 100*l.Tolerance {
		t.Errorf("%s with %s is within %.2e of the reference: the fixture does not test it", l.Name(), what, rel)
	}
}
