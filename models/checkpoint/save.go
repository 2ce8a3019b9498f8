package checkpoint

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/models/safetensors"

	"github.com/perpetual-ml/perpetual/internal/atomicfile"
)

// DefaultMaxShardSize is Hugging Face's default shard limit (5 GB).
const DefaultMaxShardSize = 5_000_000_000

// SaveOptions controls Save.
type SaveOptions struct {
	// MaxShardSize is the largest shard in bytes (0: DefaultMaxShardSize). A tensor larger than
	// the limit gets a shard of its own.
	MaxShardSize int64
	// DType converts float tensors on save (InvalidDType, the zero value: keep each tensor's).
	DType dtypes.DType
	// TokenizerFrom is a folder whose TokenizerFiles present are copied (empty: none).
	TokenizerFrom string
	// Metadata is stored in every shard's "__metadata__" (format=pt is always added).
	Metadata map[string]string
}

// Save writes config and weights as a Hugging Face model folder at dir, atomically: everything
// is written into a temporary sibling folder, then renamed into place (an existing dir is
// replaced only once the new one is complete).
func Save(dir string, config json.RawMessage, weights map[string]*tensors.Tensor, opts SaveOptions) (err error) {
	if !json.Valid(config) {
		return fmt.Errorf("saving %s: config is not valid JSON", dir)
	}
	if len(weights) == 0 {
		return fmt.Errorf("saving %s: no weights", dir)
	}
	limit := opts.MaxShardSize
	if limit <= 0 {
		limit = DefaultMaxShardSize
	}
	dir = filepath.Clean(dir)
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := atomicfile.TempDir(parent, filepath.Base(dir))
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()

	// Convert and pack tensors (sorted by name) greedily into shards.
	names := make([]string, 0, len(weights))
	for n := range weights {
		names = append(names, n)
	}
	sort.Strings(names)
	var shards [][]safetensors.Tensor
	var cur []safetensors.Tensor
	var curSize, total int64
	for _, n := range names {
		t := weights[n]
		if t == nil {
			return fmt.Errorf("saving %s: tensor %q is nil", dir, n)
		}
		if opts.DType != dtypes.InvalidDType && t.DType().IsFloat() {
			if t, err = Cast(t, opts.DType); err != nil {
				return fmt.Errorf("saving %s: tensor %q: %w", dir, n, err)
			}
		}
		d, raw, err := FromTensor(t)
		if err != nil {
			return fmt.Errorf("saving %s: tensor %q: %w", dir, n, err)
		}
		size := int64(len(raw))
		if len(cur) > 0 && curSize+size > limit {
			shards = append(shards, cur)
			cur, curSize = nil, 0
		}
		cur = append(cur, safetensors.Tensor{Name: n, DType: d, Shape: t.Shape().Dimensions, Data: raw})
		curSize += size
		total += size
	}
	shards = append(shards, cur)

	meta := map[string]string{"format": "pt"}
	for k, v := range opts.Metadata {
		meta[k] = v
	}
	if len(shards) == 1 {
		if err := safetensors.Write(filepath.Join(tmp, SingleFile), shards[0], meta); err != nil {
			return err
		}
	} else {
		idx := Index{Metadata: map[string]any{"total_size": total}, WeightMap: map[string]string{}}
		for i, s := range shards {
			name := fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(shards))
			if err := safetensors.Write(filepath.Join(tmp, name), s, meta); err != nil {
				return err
			}
			for _, t := range s {
				idx.WeightMap[t.Name] = name
			}
		}
		if err := writeJSON(filepath.Join(tmp, IndexFile), idx); err != nil {
			return err
		}
	}
	if err := writeBytes(filepath.Join(tmp, ConfigFile), config); err != nil {
		return err
	}
	if opts.TokenizerFrom != "" {
		from, err := Resolve(opts.TokenizerFrom)
		if err != nil {
			from = opts.TokenizerFrom
		}
		for _, n := range TokenizerFiles {
			src := filepath.Join(from, n)
			if !fileExists(src) {
				continue
			}
			data, err := os.ReadFile(src)
			if err != nil {
				return err
			}
			if err := writeBytes(filepath.Join(tmp, n), data); err != nil {
				return err
			}
		}
	}
	return atomicfile.ReplaceDir(tmp, dir)
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeBytes(path, append(data, '\n'))
}

func writeBytes(path string, data []byte) error {
	return safetensors.WriteAtomic(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}
