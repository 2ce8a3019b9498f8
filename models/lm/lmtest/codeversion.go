package lmtest

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/perpetual-ml/perpetual/models/internal/goldentest"
	"github.com/perpetual-ml/perpetual/models/lm"
)

// CodeVersionFile is the file in a fixture folder that records the code version a family had
// when its logits were last recorded, and a sample of those logits. It is a change detector, not
// a reference: golden.json says whether the logits are right; this file says whether they moved.
const CodeVersionFile = "code_version.json"

// UpdateCodeVersionEnv, set to 1 in a test run, makes the code-version check record the current
// code version and logits in each fixture instead of comparing them.
const UpdateCodeVersionEnv = "LMTEST_UPDATE_CODE_VERSION"

// codeVersionLogits is how many logits of each position the record keeps (the first ones).
const codeVersionLogits = 16

// codeVersionRecord is CodeVersionFile's content.
type codeVersionRecord struct {
	// LM is lm.Version and Family the architecture's CodeVersion when Logits were recorded.
	LM     string `json:"lm"`
	Family string `json:"family"`
	// Logits are the first codeVersionLogits logits of each position of the fixture's first
	// golden sequence, computed by the family alone in float32.
	Logits [][]float32 `json:"logits"`
}

// checkCodeVersion keeps results caches honest: harness cells and fine-tunings are cached under
// keys that hold lm.Version and the family's CodeVersion, so logits that move beyond float32
// rounding while both stay the same would let a cache serve results of the old code. The check
// fails then, and when the versions changed without the record being updated.
func checkCodeVersion(s *session) error {
	got, err := s.alone(s.golden.Sequences[0])
	if err != nil {
		return err
	}
	now := codeVersionRecord{LM: lm.Version, Family: s.arch.CodeVersion()}
	for _, row := range got[:len(s.golden.Sequences[0])] {
		now.Logits = append(now.Logits, row[:min(codeVersionLogits, len(row))])
	}
	path := filepath.Join(s.fix.Dir, CodeVersionFile)
	if os.Getenv(UpdateCodeVersionEnv) == "1" {
		b, err := json.Marshal(now)
		if err != nil {
			return err
		}
		s.logf("recorded %s", path)
		return os.WriteFile(path, append(b, '\n'), 0o644)
	}
	update := fmt.Sprintf("run the family's conformance test with %s=1 to record it", UpdateCodeVersionEnv)
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%w: %s", err, update)
	}
	var was codeVersionRecord
	if err := json.Unmarshal(raw, &was); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if was.LM != now.LM || was.Family != now.Family {
		return fmt.Errorf("%s records lm.Version %q and %s CodeVersion %q, the code has %q and %q: %s",
			path, was.LM, s.modelType, was.Family, now.LM, now.Family, update)
	}
	if len(was.Logits) != len(now.Logits) {
		return fmt.Errorf("%s: %d positions recorded, the fixture's first sequence has %d: %s", path, len(was.Logits), len(now.Logits), update)
	}
	var a, b []float32
	for i := range now.Logits {
		a, b = append(a, now.Logits[i]...), append(b, was.Logits[i]...)
	}
	if len(a) != len(b) {
		return fmt.Errorf("%s: %d logits recorded, the model gives %d: %s", path, len(b), len(a), update)
	}
	rel, maxAbs := goldentest.Compare(a, goldentest.Float64s(b))
	if rel > selfTolerance || math.IsNaN(rel) {
		return fmt.Errorf("the logits moved since %s was recorded (relative error %.2e, max abs %.2e > %.0e) "+
			"while lm.Version (%q) and the family's CodeVersion (%q) stayed the same: change the version that owns "+
			"the change, so cached results of the old code are not reused, then %s", path, rel, maxAbs, selfTolerance, now.LM, now.Family, update)
	}
	return nil
}
