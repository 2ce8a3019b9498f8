package harness

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/perpetual-ml/perpetual/evaluation"
	"github.com/perpetual-ml/perpetual/harness/results"
)

// is what harness-v1 computed: cached cells stay valid.
func TestCellKeyUnchangedWithoutOptions(t *testing.T) {
	parts := []any{"cell", "products", "gemma-tiny", "", results.Base, int64(0), "hash", "cur", "", 0, []string{"letters"}, EvalSettings{BatchSize: 8}, ""}
	legacy := keyOf(parts...)
	// The eval settings hash as before when the new fields are unset.
	if b, _ := json.Marshal(EvalSettings{BatchSize: 16, Bootstrap: 2000}); string(b) != `{"batch_size":16,"limit":0,"bootstrap":2000}` {
		t.Errorf("eval settings JSON changed: %s", b)
	}
	if got := cellKey(slices.Clone(parts), evaluation.TaskOptions{}, encodingInfo{enc: evaluation.Encoding{MaxLength: 1024}}); got != legacy {
		t.Errorf("key without options %s, harness-v1 %s", got, legacy)
	}
	empty := ""
	for name, k := range map[string]string{
		"chat_target_delimiter": cellKey(slices.Clone(parts), evaluation.TaskOptions{ChatTargetDelimiter: &empty}, encodingInfo{}),
		"strip_question":        cellKey(slices.Clone(parts), evaluation.TaskOptions{StripQuestion: true}, encodingInfo{}),
		"window":                cellKey(slices.Clone(parts), evaluation.TaskOptions{}, encodingInfo{enc: evaluation.Encoding{MaxLength: 2048}, changed: true}),
		"eval settings":         keyOf(append(slices.Clone(parts[:11]), EvalSettings{BatchSize: 8, EncodingOptions: evaluation.EncodingOptions{MaxLength: 64}}, "")...),
		"shared_context":        keyOf(append(slices.Clone(parts[:11]), EvalSettings{BatchSize: 8, SharedContext: true}, "")...),
	} {
		if k == legacy {
			t.Errorf("%s does not change the cell key", name)
		}
	}
}
