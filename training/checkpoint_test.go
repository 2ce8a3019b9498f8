package training

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/models/safetensors"
)

// ckptSetup is a Setup with one trainable of 2 floats: enough for loadCheckpoint.
func ckptSetup() *Setup { return &Setup{Train: []Trainable{{Name: "x", Shape: []int{2}}}} }

func ckptState(step int) runState {
	return runState{Step: step, Seed: 1, Total: 10, LR: 1e-3, Warmup: 2, Schedule: "linear"}
}

// fillFor writes a checkpoint's files whose tensors all hold step, so a load shows which
// checkpoint it read.
func fillFor(step int) func(string) error {
	return func(dir string) error {
		if err := os.MkdirAll(filepath.Join(dir, "model"), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "model", "config.json"), []byte("{}"), 0o644); err != nil {
			return err
		}
		var ts []safetensors.Tensor
		for _, p := range []string{"w/", "m/", "v/"} {
			var data []byte
			for range 2 {
				data = binary.LittleEndian.AppendUint32(data, math.Float32bits(float32(step)))
			}
			ts = append(ts, safetensors.Tensor{Name: p + "x", DType: safetensors.F32, Shape: []int{2}, Data: data})
		}
		return safetensors.Write(filepath.Join(dir, optimizerFile), ts, nil)
	}
}

// makeCheckpoint writes a complete checkpoint of step at out/name.
func makeCheckpoint(t *testing.T, out, name string, step int) {
	t.Helper()
	scratch := t.TempDir()
	if err := commitCheckpoint(scratch, ckptState(step), fillFor(step)); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(scratch, checkpointDir), filepath.Join(out, name)); err != nil {
		t.Fatal(err)
	}
}

// makePartial writes an incomplete checkpoint at out/name: a save killed while assembling it
// (the files written, state.json not yet).
func makePartial(t *testing.T, out, name string) {
	t.Helper()
	if err := fillFor(99)(filepath.Join(out, name)); err != nil {
		t.Fatal(err)
	}
}

func loadedStep(t *testing.T, out string) int {
	t.Helper()
	st, w, m, v, err := loadCheckpoint(out, ckptSetup(), ckptState(0))
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range [][]*tensors.Tensor{w, m, v} {
		if got := tensors.MustCopyFlatData[float32](x[0]); got[0] != float32(st.Step) {
			t.Fatalf("state.json says step %d, the optimizer file %v: read from two checkpoints", st.Step, got)
		}
	}
	return st.Step
}

// onlyCheckpoint checks that out holds checkpoint/ and no temporary folder.
func onlyCheckpoint(t *testing.T, out string) {
	t.Helper()
	for _, name := range []string{checkpointTmp, checkpointOld} {
		if exists(filepath.Join(out, name)) {
			t.Errorf("%s left behind", name)
		}
	}
	if !complete(filepath.Join(out, checkpointDir)) {
		t.Error("no complete checkpoint/")
	}
}

// Every state a kill can leave during a save (between any two of its steps) resumes from the
// newest complete checkpoint, and a following save that is killed while assembling loses
// nothing: the older complete checkpoint is never deleted before the newer is in place.
func TestCheckpointSwapRecoversEveryState(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, out string)
		want  int
	}{
		// Killed between assembling tmp and the first rename.
		{"checkpoint + complete tmp", func(t *testing.T, out string) {
			makeCheckpoint(t, out, checkpointDir, 4)
			makeCheckpoint(t, out, checkpointTmp, 5)
		}, 5},
		// Killed between the two renames.
		{"old + complete tmp", func(t *testing.T, out string) {
			makeCheckpoint(t, out, checkpointOld, 4)
			makeCheckpoint(t, out, checkpointTmp, 5)
		}, 5},
		// The old code's second kill: only the complete tmp survives.
		{"only complete tmp", func(t *testing.T, out string) { makeCheckpoint(t, out, checkpointTmp, 5) }, 5},
		{"only old", func(t *testing.T, out string) { makeCheckpoint(t, out, checkpointOld, 4) }, 4},
		// Killed after the second rename, before removing the old one.
		{"checkpoint + old", func(t *testing.T, out string) {
			makeCheckpoint(t, out, checkpointOld, 4)
			makeCheckpoint(t, out, checkpointDir, 5)
		}, 5},
		// Killed while assembling tmp.
		{"checkpoint + partial tmp", func(t *testing.T, out string) {
			makeCheckpoint(t, out, checkpointDir, 4)
			makePartial(t, out, checkpointTmp)
		}, 4},
		{"old + partial tmp", func(t *testing.T, out string) {
			makeCheckpoint(t, out, checkpointOld, 4)
			makePartial(t, out, checkpointTmp)
		}, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			tc.setup(t, out)
			if !HasCheckpoint(out) {
				t.Error("HasCheckpoint is false")
			}
			if got := loadedStep(t, out); got != tc.want {
				t.Errorf("resumed from step %d, want %d", got, tc.want)
			}
			onlyCheckpoint(t, out)

			// The same state, then a save killed while assembling: the newest complete
			// checkpoint survives.
			out = t.TempDir()
			tc.setup(t, out)
			killed := errors.New("killed")
			err := commitCheckpoint(out, ckptState(6), func(dir string) error {
				if err := fillFor(6)(dir); err != nil {
					return err
				}
				os.Remove(filepath.Join(dir, optimizerFile))
				return killed
			})
			if !errors.Is(err, killed) {
				t.Fatalf("save: %v", err)
			}
			if got := loadedStep(t, out); got != tc.want {
				t.Errorf("after a killed save: resumed from step %d, want %d", got, tc.want)
			}
			// A save that completes replaces it and leaves nothing else.
			if err := commitCheckpoint(out, ckptState(6), fillFor(6)); err != nil {
				t.Fatal(err)
			}
			if got := loadedStep(t, out); got != 6 {
				t.Errorf("after a save: step %d, want 6", got)
			}
			onlyCheckpoint(t, out)
		})
	}
	// Nothing to resume from.
	out := t.TempDir()
	makePartial(t, out, checkpointTmp)
	if HasCheckpoint(out) {
		t.Error("HasCheckpoint is true for a partial checkpoint")
	}
	if _, _, _, _, err := loadCheckpoint(out, ckptSetup(), ckptState(0)); err == nil || !strings.Contains(err.Error(), "no checkpoint") {
		t.Errorf("partial tmp only: %v", err)
	}
}

// A metrics.jsonl emptied by a kill during the old in-place truncation resumes with no metrics,
// and truncation replaces the file (a new inode), never rewriting it in place.
func TestTruncateMetricsAtomic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metrics.jsonl")
	os.WriteFile(path, nil, 0o644)
	if kept, err := truncateMetrics(path, 3); err != nil || len(kept) != 0 {
		t.Fatalf("empty file: %v %v", kept, err)
	}
	os.WriteFile(path, []byte("{\"step\":1}\n{\"step\":2}\n{\"step\":3}\nnot json\n"), 0o644)
	before, _ := os.Stat(path)
	kept, err := truncateMetrics(path, 2)
	if err != nil || len(kept) != 2 || kept[1].Step != 2 {
		t.Fatalf("kept %v, %v", kept, err)
	}
	after, _ := os.Stat(path)
	if os.SameFile(before, after) {
		t.Error("metrics.jsonl was rewritten in place")
	}
	if data, _ := os.ReadFile(path); string(data) != "{\"step\":1}\n{\"step\":2}\n" {
		t.Errorf("file now %q", data)
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
}

// The recorded settings of a checkpoint are compared with the run's, each difference named with
// both values.
func TestResumeMismatch(t *testing.T) {
	o := Options{Out: "x", ClipNorm: new(0.0)}
	o.Defaults()
	ck := ckptState(3)
	ck.DataHash, ck.Recipe = "aaa", recipeOf(o, 512)
	now := ck
	if d := resumeMismatch(ck, now); len(d) != 0 {
		t.Fatalf("same settings: %v", d)
	}
	o2 := o
	o2.Mask = MaskAnswers
	now.LR, now.Warmup, now.DataHash, now.Recipe = 2e-3, 0, "bbb", recipeOf(o2, 512)
	got := strings.Join(resumeMismatch(ck, now), "; ")
	for _, want := range []string{"lr: checkpoint 0.001, this run 0.002", "warmup_steps: checkpoint 2, this run 0",
		"data_hash (the training examples): checkpoint aaa, this run bbb", `mask: checkpoint "all", this run "answers"`} {
		if !strings.Contains(got, want) {
			t.Errorf("differences %q lack %q", got, want)
		}
	}
	// A checkpoint from before the data hash and recipe were recorded is checked on the rest.
	old := ckptState(3)
	if d := resumeMismatch(old, now); len(d) != 2 {
		t.Errorf("old checkpoint: %v", d)
	}
}
