package zoo

import (
	"testing"

	"github.com/perpetual-ml/perpetual/models/prompt"
	"github.com/perpetual-ml/perpetual/models/tokenizer"
)

// generation_config's eos_token_id adds the prompt format's end of turn when the vocabulary has
// it, for any format (not only Gemma's): what the zoo wrote before for gemma and alpaca stays.
func TestEOSIDsFollowThePromptFormat(t *testing.T) {
	corpus := []string{"a river runs through the town", "the town has a river and a bridge"}
	load := func(special []string) tokenizer.Tokenizer {
		t.Helper()
		data, err := tokenizer.Train(corpus, 300, tokenizer.TrainOptions{SpecialTokens: special})
		if err != nil {
			t.Fatal(err)
		}
		tok, err := tokenizer.LoadJSON(data, "test")
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	zooTok := load(specialTokens) // <pad> <eos> <bos> <unk> <start_of_turn> <end_of_turn>
	chatTok := load(append(append([]string{}, specialTokens...), "<|eot_id|>", "<|im_end|>"))
	cases := []struct {
		tok    tokenizer.Tokenizer
		format string
		want   string
	}{
		{zooTok, "gemma", "[1, 5]"}, // the committed gemma-tiny's generation_config
		{zooTok, "alpaca", "1"},     // the committed mamba-tiny's
		{zooTok, "llama3", "1"},     // <|eot_id|> is not in the zoo's vocabulary
		{chatTok, "llama3", "[1, 6]"},
		{chatTok, "chatml", "[1, 7]"},
		{chatTok, "plain", "1"},
	}
	for _, c := range cases {
		tpl, err := prompt.Format(c.format)
		if err != nil {
			t.Fatal(err)
		}
		if got := eosIDs(c.tok, tpl); got != c.want {
			t.Errorf("%s: eos_token_id %s, want %s", c.format, got, c.want)
		}
	}
}
