package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/models/safetensors"
)

// Weight file names used by Hugging Face.
const (
	SingleFile = "model.safetensors"
	IndexFile  = "model.safetensors.index.json"
)

// TokenizerFiles are the files besides config and weights that make a folder usable by others.
var TokenizerFiles = []string{
	"tokenizer.json", "tokenizer.model", "tokenizer_config.json",
	"special_tokens_map.json", "generation_config.json",
}

// Checkpoint is an opened model folder: its config and the headers of its weight files.
// Tensors are read on demand; Close releases the files.
type Checkpoint struct {
	// Dir is the resolved folder (the snapshot for a Hugging Face cache folder).
	Dir string
	// Config is config.json as read.
	Config json.RawMessage

	files []*safetensors.File
	where map[string]*safetensors.File
}

// Index is the content of model.safetensors.index.json.
type Index struct {
	Metadata  map[string]any    `json:"metadata"`
	WeightMap map[string]string `json:"weight_map"`
}

// Open resolves dir (see Resolve), reads config.json and the headers of all weight files.
func Open(dir string) (*Checkpoint, error) {
	resolved, err := Resolve(dir)
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(resolved, ConfigFile)
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, err
	}
	if !json.Valid(cfg) {
		return nil, fmt.Errorf("%s: not valid JSON", cfgPath)
	}
	c := &Checkpoint{Dir: resolved, Config: cfg, where: map[string]*safetensors.File{}}
	if err := c.openWeights(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *Checkpoint) openWeights() error {
	indexPath := filepath.Join(c.Dir, IndexFile)
	raw, err := os.ReadFile(indexPath)
	if errors.Is(err, os.ErrNotExist) {
		single := filepath.Join(c.Dir, SingleFile)
		if !fileExists(single) {
			return fmt.Errorf("%s: no weights: neither %s nor %s", c.Dir, SingleFile, IndexFile)
		}
		f, err := safetensors.Open(single)
		if err != nil {
			return err
		}
		c.files = append(c.files, f)
		for _, name := range f.Names() {
			c.where[name] = f
		}
		return nil
	}
	if err != nil {
		return err
	}
	var idx Index
	if err := json.Unmarshal(raw, &idx); err != nil {
		return fmt.Errorf("%s: %w", indexPath, err)
	}
	if len(idx.WeightMap) == 0 {
		return fmt.Errorf("%s: empty or missing weight_map", indexPath)
	}
	byFile := map[string][]string{}
	for name, file := range idx.WeightMap {
		if file == "" || filepath.Base(file) != file {
			return fmt.Errorf("%s: tensor %q maps to invalid file name %q", indexPath, name, file)
		}
		byFile[file] = append(byFile[file], name)
	}
	shards := make([]string, 0, len(byFile))
	for f := range byFile {
		shards = append(shards, f)
	}
	sort.Strings(shards)
	for _, shard := range shards {
		p := filepath.Join(c.Dir, shard)
		f, err := safetensors.Open(p)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("%s: shard %s listed in %s is missing", c.Dir, shard, IndexFile)
			}
			return err
		}
		c.files = append(c.files, f)
		listed := map[string]bool{}
		for _, name := range byFile[shard] {
			if _, ok := f.Info(name); !ok {
				return fmt.Errorf("%s: tensor %q listed in %s is absent", p, name, IndexFile)
			}
			listed[name] = true
			c.where[name] = f
		}
		for _, name := range f.Names() {
			if !listed[name] {
				return fmt.Errorf("%s: tensor %q is not listed in %s", p, name, IndexFile)
			}
		}
	}
	return nil
}

// Names lists all tensor names, sorted.
func (c *Checkpoint) Names() []string {
	names := make([]string, 0, len(c.where))
	for n := range c.where {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Info describes a tensor and gives the path of the file holding it.
func (c *Checkpoint) Info(name string) (info safetensors.TensorInfo, path string, ok bool) {
	f, ok := c.where[name]
	if !ok {
		return info, "", false
	}
	info, _ = f.Info(name)
	return info, f.Path(), true
}

// Files lists the paths of the weight files.
func (c *Checkpoint) Files() []string {
	var out []string
	for _, f := range c.files {
		out = append(out, f.Path())
	}
	return out
}

// Tensor reads a tensor converted to dtype (InvalidDType keeps the stored dtype).
func (c *Checkpoint) Tensor(name string, dtype dtypes.DType) (*tensors.Tensor, error) {
	f, ok := c.where[name]
	if !ok {
		return nil, fmt.Errorf("%s: no tensor %q", c.Dir, name)
	}
	info, _ := f.Info(name)
	raw, err := f.ReadBytes(name)
	if err != nil {
		return nil, err
	}
	t, err := ToTensor(raw, info.DType, info.Shape, dtype)
	if err != nil {
		return nil, fmt.Errorf("%s: tensor %q: %w", f.Path(), name, err)
	}
	return t, nil
}

// PresentTokenizerFiles lists which of TokenizerFiles the folder has.
func (c *Checkpoint) PresentTokenizerFiles() []string {
	var out []string
	for _, n := range TokenizerFiles {
		if fileExists(filepath.Join(c.Dir, n)) {
			out = append(out, n)
		}
	}
	return out
}

// Close releases the weight files.
func (c *Checkpoint) Close() error {
	var first error
	for _, f := range c.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	c.files = nil
	return first
}
