package training

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/models/checkpoint"
	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/models/safetensors"
)

// The checkpoint folders inside Options.Out. A save assembles the new checkpoint in
// checkpointTmp, marks it complete by writing its state.json last (every other file synced
// first), then swaps it in: checkpointDir is renamed to checkpointOld, checkpointTmp to
// checkpointDir, and checkpointOld removed. A kill at any point leaves at least one complete
// checkpoint, and recoverCheckpoint brings the folders back to the newest one before a resume
// or the next save reads or replaces anything.
const (
	checkpointDir = "checkpoint"
	checkpointTmp = ".checkpoint-tmp"
	checkpointOld = ".checkpoint-old"
	stateFile     = "state.json"
	optimizerFile = "optimizer.safetensors"
)

// state.json beside the optimizer moments. It is written last, after every other file of the
// checkpoint is synced: a folder whose state.json parses (and whose optimizer file has a valid
// header) is a complete checkpoint.
type runState struct {
	Step     int     `json:"step"`
	Epoch    int     `json:"epoch"`
	Seed     int64   `json:"seed"`
	Total    int     `json:"total_steps"`
	LR       float64 `json:"lr"`
	Warmup   int     `json:"warmup_steps"`
	Schedule string  `json:"schedule"`
	// DataHash identifies the training examples (token ids, loss masks, splittability, order):
	// see dataHash.
	DataHash string `json:"data_hash,omitempty"`
	// Recipe holds the other options that shape the run.
	Recipe *runRecipe `json:"options,omitempty"`
	// Checkpoints written before DataHash and Recipe existed lack them; a resume from one is
	// checked on the fields above them only.
}

// runRecipe are the options besides runState's own that a resumed run must share with its
// checkpoint: with any of them changed, the resumed run is neither the interrupted one nor a
// fresh one.
type runRecipe struct {
	Epochs       int     `json:"epochs"`
	BatchSize    int     `json:"batch_size"`
	Accumulation int     `json:"accumulation"`
	MaxLength    int     `json:"max_length"`
	Packing      bool    `json:"packing"`
	Mask         string  `json:"mask"`
	Order        string  `json:"order"`
	ClipNorm     float64 `json:"clip_norm"`
	WeightDecay  float64 `json:"weight_decay"`
	Beta1        float64 `json:"beta1"`
	Beta2        float64 `json:"beta2"`
	Eps          float64 `json:"eps"`
	// LoRA is "" for full training, else "rank R alpha A targets T1,T2".
	LoRA string `json:"lora"`
}

// recipeOf records o (after Defaults) with the row length in use.
func recipeOf(o Options, maxLen int) *runRecipe {
	r := &runRecipe{Epochs: o.Epochs, BatchSize: o.BatchSize, Accumulation: o.Accumulation, MaxLength: maxLen,
		Packing: !o.NoPacking, Mask: o.Mask, Order: o.Order, ClipNorm: *o.ClipNorm, WeightDecay: *o.WeightDecay,
		Beta1: o.Beta1, Beta2: o.Beta2, Eps: o.Eps}
	if l := o.LoRA; l != nil {
		r.LoRA = fmt.Sprintf("rank %d alpha %g targets %s", l.Rank, l.Alpha, strings.Join(l.Targets, ","))
	}
	return r
}

// dataHash is the SHA-256 of the training examples in order: each one's length, token ids,
// loss mask and splittability.
func dataHash(exs []Example) string {
	h := sha256.New()
	var buf []byte
	for _, ex := range exs {
		buf = binary.LittleEndian.AppendUint64(buf[:0], uint64(len(ex.IDs)))
		for _, id := range ex.IDs {
			buf = binary.LittleEndian.AppendUint32(buf, uint32(id))
		}
		for _, t := range ex.Train {
			buf = append(buf, map[bool]byte{false: 0, true: 1}[t])
		}
		buf = append(buf, map[bool]byte{false: 0, true: 1}[ex.Splittable])
		// Weights join the hash only when set, so the data hash of unweighted data is the one
		// checkpoints written before weights existed recorded.
		if ex.Weights != nil {
			buf = append(buf, 'w')
			for _, w := range ex.Weights {
				buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(w))
			}
		}
		h.Write(buf)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// resumeMismatch lists the recorded settings of a checkpoint that differ from this run's, one
// "name: checkpoint X, this run Y" each. Fields the checkpoint does not record are not compared.
func resumeMismatch(ck, now runState) []string {
	var diffs []string
	add := func(name string, a, b any) {
		if fmt.Sprint(a) != fmt.Sprint(b) {
			diffs = append(diffs, fmt.Sprintf("%s: checkpoint %v, this run %v", name, a, b))
		}
	}
	add("seed", ck.Seed, now.Seed)
	add("total_steps", ck.Total, now.Total)
	add("lr", ck.LR, now.LR)
	add("warmup_steps", ck.Warmup, now.Warmup)
	if ck.Schedule != "" {
		add("schedule", ck.Schedule, now.Schedule)
	}
	if ck.DataHash != "" {
		add("data_hash (the training examples)", ck.DataHash, now.DataHash)
	}
	if ck.Recipe != nil && now.Recipe != nil {
		a, b := asMap(ck.Recipe), asMap(now.Recipe)
		var keys []string
		for k := range a {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			add(k, quoteString(a[k]), quoteString(b[k]))
		}
	}
	return diffs
}

func asMap(v any) map[string]any {
	data, _ := json.Marshal(v)
	var m map[string]any
	_ = json.Unmarshal(data, &m)
	return m
}

func quoteString(v any) any {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return v
}

// readState reads dir/state.json and checks that dir is a complete checkpoint: state.json
// parses and the optimizer file has a valid safetensors header.
func readState(dir string) (runState, error) {
	var st runState
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("%s: %w", filepath.Join(dir, stateFile), err)
	}
	f, err := safetensors.Open(filepath.Join(dir, optimizerFile))
	if err != nil {
		return st, err
	}
	return st, f.Close()
}

// complete says whether dir holds a complete checkpoint.
func complete(dir string) bool {
	_, err := readState(dir)
	return err == nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// HasCheckpoint reports whether out holds a complete checkpoint to resume from, counting one
// left beside out/checkpoint by an interrupted save (which a resume recovers).
func HasCheckpoint(out string) bool {
	for _, d := range []string{checkpointDir, checkpointTmp, checkpointOld} {
		if complete(filepath.Join(out, d)) {
			return true
		}
	}
	return false
}

// recoverCheckpoint finishes or undoes an interrupted save so that out/checkpoint is the newest
// complete checkpoint (if any) and no temporary folder is left. A complete checkpointTmp is the
// newest (it was assembled after checkpoint existed) and is swapped in; an incomplete one is
// removed (it never is the only complete copy); checkpointOld is removed once checkpoint is
// complete and renamed back when checkpoint is missing. Nothing that is the only complete
// checkpoint is ever deleted.
func recoverCheckpoint(out string) error {
	dir, tmp, old := filepath.Join(out, checkpointDir), filepath.Join(out, checkpointTmp), filepath.Join(out, checkpointOld)
	if complete(tmp) {
		return swapIn(out)
	}
	if exists(tmp) {
		if err := os.RemoveAll(tmp); err != nil {
			return fmt.Errorf("checkpoint: removing the incomplete %s: %w", tmp, err)
		}
	}
	switch {
	case complete(dir):
		if exists(old) {
			if err := os.RemoveAll(old); err != nil {
				return fmt.Errorf("checkpoint: %w", err)
			}
		}
	case complete(old):
		if exists(dir) {
			return fmt.Errorf("checkpoint: %s is incomplete (no valid %s or %s) while %s is complete; move the first away to resume from the second", dir, stateFile, optimizerFile, old)
		}
		if err := os.Rename(old, dir); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
	}
	return syncPath(out)
}

// swapIn makes the complete out/.checkpoint-tmp out/checkpoint: the current checkpoint is set
// aside as .checkpoint-old (replacing an older one there, as two newer complete copies exist),
// tmp renamed into place, then the old one removed. Each step leaves a state recoverCheckpoint
// finishes.
func swapIn(out string) error {
	dir, tmp, old := filepath.Join(out, checkpointDir), filepath.Join(out, checkpointTmp), filepath.Join(out, checkpointOld)
	if exists(dir) {
		if err := os.RemoveAll(old); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
		if err := os.Rename(dir, old); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := syncPath(out); err != nil {
		return err
	}
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return syncPath(out)
}

// saveCheckpoint writes Out/checkpoint atomically: the model (HF format, LoRA merged) in
// checkpoint/model, trainables and AdamW moments in checkpoint/optimizer.safetensors and the
// run state in checkpoint/state.json (see commitCheckpoint).
func saveCheckpoint(out string, model *lm.Model, s *Setup, st runState, frozen, train, m, v []*tensors.Tensor, lora *LoRA) error {
	return commitCheckpoint(out, st, func(tmp string) error {
		ws, err := exportWeights(model, s, frozen, train, lora)
		if err != nil {
			return err
		}
		if err := checkpoint.Save(filepath.Join(tmp, "model"), model.Config(), ws, checkpoint.SaveOptions{TokenizerFrom: model.Dir()}); err != nil {
			return err
		}
		var ts []safetensors.Tensor
		for _, part := range []struct {
			prefix string
			list   []*tensors.Tensor
		}{{"w/", train}, {"m/", m}, {"v/", v}} {
			for i, t := range part.list {
				dt, data, err := checkpoint.FromTensor(t)
				if err != nil {
					return err
				}
				ts = append(ts, safetensors.Tensor{Name: part.prefix + s.Train[i].Name, DType: dt, Shape: t.Shape().Dimensions, Data: data})
			}
		}
		return safetensors.Write(filepath.Join(tmp, optimizerFile), ts, nil)
	})
}

// commitCheckpoint replaces out/checkpoint with a new one: after recovering from any
// interrupted save, fill writes the checkpoint's files into a fresh out/.checkpoint-tmp; they
// are synced, state.json (st) is written last and synced as the completion mark, and the folder
// swapped in.
func commitCheckpoint(out string, st runState, fill func(dir string) error) error {
	if err := recoverCheckpoint(out); err != nil {
		return err
	}
	tmp := filepath.Join(out, checkpointTmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	if err := fill(tmp); err != nil {
		return err
	}
	if err := syncTree(tmp); err != nil {
		return err
	}
	data, _ := json.MarshalIndent(st, "", "  ")
	if err := writeFileSynced(filepath.Join(tmp, stateFile), data); err != nil {
		return err
	}
	return swapIn(out)
}

// syncPath fsyncs a file or folder.
func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return f.Close()
}

// syncTree fsyncs every file and folder under dir, dir included.
func syncTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return nil
		}
		return syncPath(p)
	})
}

// writeFileSynced writes path atomically and durably: a synced temporary file in the same
// folder, renamed over path, and the folder synced.
func writeFileSynced(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(f.Name(), 0o644)
	}
	if werr == nil {
		werr = os.Rename(f.Name(), path)
	}
	if werr != nil {
		os.Remove(f.Name())
		return fmt.Errorf("writing %s: %w", path, werr)
	}
	return syncPath(filepath.Dir(path))
}

func lastCheckpointStep(out string) int {
	data, err := os.ReadFile(filepath.Join(out, checkpointDir, stateFile))
	if err != nil {
		return 0
	}
	var st runState
	_ = json.Unmarshal(data, &st)
	return st.Step
}

// loadCheckpoint recovers from an interrupted save (recoverCheckpoint) and reads Out/checkpoint,
// refusing it when its recorded settings differ from want's (this run's): a resume with another
// learning rate, schedule, seed, data or recipe would be neither run.
func loadCheckpoint(out string, s *Setup, want runState) (st runState, train, m, v []*tensors.Tensor, err error) {
	if err := recoverCheckpoint(out); err != nil {
		return st, nil, nil, nil, fmt.Errorf("resume: %w", err)
	}
	dir := filepath.Join(out, checkpointDir)
	if !exists(dir) {
		return st, nil, nil, nil, fmt.Errorf("resume: no checkpoint in %s", out)
	}
	if st, err = readState(dir); err != nil {
		return st, nil, nil, nil, fmt.Errorf("resume: %w", err)
	}
	if diffs := resumeMismatch(st, want); len(diffs) > 0 {
		return st, nil, nil, nil, fmt.Errorf("resume %s: the checkpoint was written with other settings than this run's — %s; resume with the checkpoint's settings and data, or train afresh into another output folder",
			dir, strings.Join(diffs, "; "))
	}
	path := filepath.Join(dir, optimizerFile)
	f, err := safetensors.Open(path)
	if err != nil {
		return st, nil, nil, nil, fmt.Errorf("resume: %w", err)
	}
	defer f.Close()
	read := func(prefix string) ([]*tensors.Tensor, error) {
		out := make([]*tensors.Tensor, len(s.Train))
		for i, t := range s.Train {
			info, ok := f.Info(prefix + t.Name)
			if !ok {
				return nil, fmt.Errorf("resume: %s has no tensor %q (was the checkpoint made with other options?)", path, prefix+t.Name)
			}
			if !slices.Equal(info.Shape, t.Shape) {
				return nil, fmt.Errorf("resume: %s tensor %q has shape %v, want %v", path, prefix+t.Name, info.Shape, t.Shape)
			}
			raw, err := f.ReadBytes(prefix + t.Name)
			if err != nil {
				return nil, fmt.Errorf("resume: %s: %w", path, err)
			}
			if out[i], err = checkpoint.ToTensor(raw, info.DType, info.Shape, dtypes.Float32); err != nil {
				return nil, fmt.Errorf("resume: %s %q: %w", path, prefix+t.Name, err)
			}
		}
		return out, nil
	}
	if train, err = read("w/"); err != nil {
		return
	}
	if m, err = read("m/"); err != nil {
		return
	}
	v, err = read("v/")
	return
}

// truncateMetrics keeps the metrics lines up to step (a resumed run rewrites the rest). The file
// is replaced atomically (a synced temporary file renamed over it): a kill while truncating
// leaves the old file or the new one, never an empty or half-written one.
func truncateMetrics(path string, step int) ([]Metric, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var kept []Metric
	var buf bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		var mt Metric
		if json.Unmarshal(sc.Bytes(), &mt) != nil || mt.Step > step {
			continue
		}
		kept = append(kept, mt)
		buf.Write(sc.Bytes())
		buf.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if bytes.Equal(buf.Bytes(), data) {
		return kept, nil
	}
	return kept, writeFileSynced(path, buf.Bytes())
}
