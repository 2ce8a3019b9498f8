package bert

import (
	"strings"

	"github.com/perpetual-ml/perpetual/models/checkpoint"
)

// checkpointNames maps the canonical BertModel name of each tensor to its name in the checkpoint.
// BertFor* checkpoints prefix names with "bert." and old ones call LayerNorm's parameters
// "gamma"/"beta"; both read as the plain BertModel names the encoder asks for.
func checkpointNames(ck *checkpoint.Checkpoint) map[string]string {
	out := map[string]string{}
	for _, name := range ck.Names() {
		out[canonicalName(name)] = name
	}
	return out
}

func canonicalName(name string) string {
	name = strings.TrimPrefix(name, "bert.")
	if strings.Contains(name, "LayerNorm.") {
		name = strings.Replace(name, "LayerNorm.gamma", "LayerNorm.weight", 1)
		name = strings.Replace(name, "LayerNorm.beta", "LayerNorm.bias", 1)
	}
	return name
}
