package lm

import (
	"fmt"
	"slices"
	"sort"

	"github.com/perpetual-ml/perpetual/models/checkpoint"
	"github.com/perpetual-ml/perpetual/models/safetensors"
)

// Inspection is what Inspect learns about a model folder without loading its weights.
type Inspection struct {
	// Dir is the resolved folder.
	Dir string
	// Family is config.json's model_type (empty if the config could not be read).
	Family string
	// Arch is the architecture config.json describes (nil if it could not be built).
	Arch Architecture
	// Parameters is the number of parameters the architecture needs (from config.json).
	Parameters int64
	// DTypes counts the checkpoint's tensors by stored dtype.
	DTypes map[safetensors.DType]int
	// Files are the weight files.
	Files []string
	// TokenizerFiles are the tokenizer files present.
	TokenizerFiles []string
	// Unused lists checkpoint tensors the architecture does not read.
	Unused []string
	// Problems are reasons Load would fail (missing or misshapen tensors, bad dtypes).
	Problems []string
}

// Inspect reads config.json and the safetensors headers of a model folder and checks them
// against the architecture, without reading any weights. An error means the folder could not be
// read at all; otherwise problems are listed in the result.
func Inspect(dir string) (*Inspection, error) {
	ck, err := checkpoint.Open(dir)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	in := &Inspection{Dir: ck.Dir, DTypes: map[safetensors.DType]int{}, Files: ck.Files(), TokenizerFiles: ck.PresentTokenizerFiles()}
	used := map[string]bool{}
	for _, n := range ck.Names() {
		info, _, _ := ck.Info(n)
		in.DTypes[info.DType]++
	}
	arch, err := NewArchitecture(ck.Config)
	if err != nil {
		in.Problems = append(in.Problems, fmt.Sprintf("%s: %v", ck.Dir, err))
		return in, nil
	}
	in.Family, in.Arch = arch.Family(), arch
	for _, spec := range arch.Specs() {
		n := int64(1)
		for _, d := range spec.Shape {
			n *= int64(d)
		}
		in.Parameters += n
		name, ok := findTensor(spec, func(n string) bool { _, _, ok := ck.Info(n); return ok })
		if !ok {
			in.Problems = append(in.Problems, fmt.Sprintf("tensor %q%s missing", spec.Name, aliasNote(spec)))
			continue
		}
		used[name] = true
		info, path, _ := ck.Info(name)
		if !slices.Equal(info.Shape, spec.Shape) {
			in.Problems = append(in.Problems, fmt.Sprintf("%s: tensor %q has shape %v, config.json implies %v", path, name, info.Shape, spec.Shape))
		}
		if !checkpoint.IsFloat(info.DType) {
			in.Problems = append(in.Problems, fmt.Sprintf("%s: tensor %q has non-float dtype %s", path, name, info.DType))
		}
	}
	for _, n := range ck.Names() {
		if !used[n] {
			in.Unused = append(in.Unused, n)
		}
	}
	sort.Strings(in.Unused)
	return in, nil
}
