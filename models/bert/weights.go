package bert

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gomlx/compute/dtypes/bfloat16"
	"github.com/gomlx/compute/dtypes/float16"
)

// tensorF32 is a checkpoint tensor widened to float32.
type tensorF32 struct {
	shape []int
	data  []float32
}

// readWeights reads model.safetensors, or the shards listed in model.safetensors.index.json,
// widening F32/F16/BF16 tensors to float32. Names lose a leading "bert." (BertFor* checkpoints)
// and old "gamma"/"beta" LayerNorm names become "weight"/"bias".
func readWeights(dir string) (map[string]tensorF32, error) {
	files := []string{"model.safetensors"}
	ipath := filepath.Join(dir, "model.safetensors.index.json")
	if raw, err := os.ReadFile(ipath); err == nil {
		var index struct {
			WeightMap map[string]string `json:"weight_map"`
		}
		if err := json.Unmarshal(raw, &index); err != nil {
			return nil, fmt.Errorf("bert: %s: %w", ipath, err)
		}
		seen := map[string]bool{}
		files = nil
		for _, f := range index.WeightMap {
			if !seen[f] {
				seen[f] = true
				files = append(files, f)
			}
		}
		sort.Strings(files)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("bert: %w", err)
	}
	out := map[string]tensorF32{}
	for _, f := range files {
		if err := readSafetensors(filepath.Join(dir, f), out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func readSafetensors(path string, into map[string]tensorF32) error {
	buf, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("bert: %w", err)
	}
	if len(buf) < 8 {
		return fmt.Errorf("bert: %s: too short for a safetensors file", path)
	}
	n := binary.LittleEndian.Uint64(buf)
	if n > uint64(len(buf)-8) {
		return fmt.Errorf("bert: %s: header length %d runs past the end of the file", path, n)
	}
	var header map[string]json.RawMessage
	if err := json.Unmarshal(buf[8:8+n], &header); err != nil {
		return fmt.Errorf("bert: %s: header: %w", path, err)
	}
	data := buf[8+n:]
	for name, raw := range header {
		if name == "__metadata__" {
			continue
		}
		var e struct {
			DType   string   `json:"dtype"`
			Shape   []int    `json:"shape"`
			Offsets [2]int64 `json:"data_offsets"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			return fmt.Errorf("bert: %s: tensor %s: %w", path, name, err)
		}
		count := int64(1)
		for _, d := range e.Shape {
			if d < 0 {
				return fmt.Errorf("bert: %s: tensor %s has a negative dimension", path, name)
			}
			count *= int64(d)
		}
		size := map[string]int64{"F32": 4, "F16": 2, "BF16": 2}[e.DType]
		if size == 0 {
			return fmt.Errorf("bert: %s: tensor %s has dtype %s (want F32, F16 or BF16)", path, name, e.DType)
		}
		lo, hi := e.Offsets[0], e.Offsets[1]
		if lo < 0 || hi < lo || hi > int64(len(data)) || hi-lo != count*size {
			return fmt.Errorf("bert: %s: tensor %s: offsets [%d, %d) do not fit %d values of %s in %d data bytes", path, name, lo, hi, count, e.DType, len(data))
		}
		b := data[lo:hi]
		vals := make([]float32, count)
		for i := range vals {
			switch e.DType {
			case "F32":
				vals[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
			case "F16":
				vals[i] = float16.Float16(binary.LittleEndian.Uint16(b[2*i:])).Float32()
			case "BF16":
				vals[i] = bfloat16.BFloat16(binary.LittleEndian.Uint16(b[2*i:])).Float32()
			}
		}
		into[canonicalName(name)] = tensorF32{shape: e.Shape, data: vals}
	}
	return nil
}

func canonicalName(name string) string {
	name = strings.TrimPrefix(name, "bert.")
	if strings.Contains(name, "LayerNorm.") {
		name = strings.Replace(name, "LayerNorm.gamma", "LayerNorm.weight", 1)
		name = strings.Replace(name, "LayerNorm.beta", "LayerNorm.bias", 1)
	}
	return name
}
