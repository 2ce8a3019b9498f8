package evaluation

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
)

// DefaultMaxLength is lm-evaluation-harness's window for a model whose config.json and tokenizer
// give none (HFLM._DEFAULT_MAX_LENGTH): Mamba, for one. A recurrent model reads any length, but
// the harness still left-truncates its requests to DefaultMaxLength+1 tokens, and so do we.
const DefaultMaxLength = 2048

// tokenizerInfinity is what transformers gives model_max_length when tokenizer_config.json sets
// none (int(1e30) = 1000000000000000019884624838656); lm-evaluation-harness reads it as unset.
const tokenizerInfinity = 1e30

// ResolveMaxLength returns the window lm-evaluation-harness would truncate requests to for a
// model folder, and where it came from. window is the architecture's own limit
// (lm.Architecture.MaxLength, the model's max_position_embeddings; 0 for none): when set it wins,
// since the model cannot read more. Otherwise, as the harness's HFLM.max_length: config.json's
// n_positions, max_position_embeddings or n_ctx (the first present and not null), else
// tokenizer_config.json's model_max_length unless it is transformers' "unset" value 1e30, else
// DefaultMaxLength. A model_max_length too large to matter (over 2^31 tokens) gives 0, unbounded.
func ResolveMaxLength(modelDir string, window int) (int, string, error) {
	if window > 0 {
		return window, "the model's window", nil
	}
	cfgPath := filepath.Join(modelDir, "config.json")
	cfg, err := readJSONNumbers(cfgPath)
	if err != nil {
		return 0, "", err
	}
	// The fields lm-evaluation-harness reads a window from, in its order (resolve_max_length).
	for _, name := range []string{"n_positions", "max_position_embeddings", "n_ctx"} {
		v, ok := cfg[name]
		if !ok || v == nil {
			continue
		}
		n, err := positiveInt(v)
		if err != nil {
			return 0, "", fmt.Errorf("%s: %s: %w", cfgPath, name, err)
		}
		return n, "config.json " + name, nil
	}
	tokPath := filepath.Join(modelDir, "tokenizer_config.json")
	tc, err := readJSONNumbers(tokPath)
	if err != nil {
		return 0, "", err
	}
	if v, ok := tc["model_max_length"]; ok && v != nil {
		num, isNum := v.(json.Number)
		f, ferr := num.Float64()
		if !isNum || ferr != nil || f <= 0 || f != math.Trunc(f) {
			return 0, "", fmt.Errorf("%s: model_max_length %v is not a positive whole number (delete the field to use the harness's default %d)", tokPath, v, DefaultMaxLength)
		}
		switch {
		case f == tokenizerInfinity:
			// transformers' "unset": fall through to the default, as the harness does.
		case f > math.MaxInt32:
			return 0, "tokenizer_config.json model_max_length (unbounded)", nil
		default:
			return int(f), "tokenizer_config.json model_max_length", nil
		}
	}
	return DefaultMaxLength, "lm-evaluation-harness default", nil
}

// readJSONNumbers reads a JSON object keeping numbers as json.Number; a missing file is empty.
func readJSONNumbers(path string) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]any{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

func positiveInt(v any) (int, error) {
	num, ok := v.(json.Number)
	if !ok {
		return 0, fmt.Errorf("%v is not a number", v)
	}
	n, err := num.Int64()
	if err != nil || n <= 0 || n > math.MaxInt32 {
		return 0, fmt.Errorf("%v is not a positive whole number of tokens", v)
	}
	return int(n), nil
}

// BOS settings of EncodingOptions.AddBOS (lm-evaluation-harness's add_bos_token model argument).
const (
	// BOSAuto follows the model: AddBOSFor (also the meaning of "").
	BOSAuto = "auto"
	// BOSTrue prepends BOS to every request.
	BOSTrue = "true"
	// BOSFalse never prepends BOS (an empty context still starts with the prefix token).
	BOSFalse = "false"
)

// EncodingOptions are lm-evaluation-harness's model arguments that change the requests themselves:
// max_length and add_bos_token. The zero value follows the model, as the harness does by default.
// `perpetual eval` sets them with --max-length and --add-bos-token, a suite under eval:.
type EncodingOptions struct {
	// MaxLength is the window requests are left-truncated to (keeping the last MaxLength+1
	// tokens); 0 resolves it from the model folder (ResolveMaxLength). It may not exceed the
	// architecture's own window.
	MaxLength int `yaml:"max_length,omitempty" json:"max_length,omitempty"`
	// AddBOS is BOSAuto (or empty), BOSTrue or BOSFalse.
	AddBOS string `yaml:"add_bos_token,omitempty" json:"add_bos_token,omitempty"`
}

// Validate checks the options; errors use lm-evaluation-harness's argument names.
func (o EncodingOptions) Validate() error {
	if o.MaxLength < 0 {
		return fmt.Errorf("max_length %d is negative: give the window in tokens, or 0 for the model's own", o.MaxLength)
	}
	switch o.AddBOS {
	case "", BOSAuto, BOSTrue, BOSFalse:
	default:
		return fmt.Errorf("add_bos_token %q is not %s, %s or %s", o.AddBOS, BOSTrue, BOSFalse, BOSAuto)
	}
	return nil
}

// Encoding is what EncodingOptions resolve to for one model.
type Encoding struct {
	// MaxLength is Encoder.MaxLength (0 = unbounded).
	MaxLength int `json:"max_length"`
	// MaxLengthSource says where MaxLength came from.
	MaxLengthSource string `json:"max_length_source"`
	// AddBOS is Encoder.AddBOS.
	AddBOS bool `json:"add_bos_token"`
}

// Resolve applies the options to a model folder whose architecture has the given family and
// window (0 = none): an explicit max_length or add_bos_token wins, else ResolveMaxLength and
// AddBOSFor decide.
func (o EncodingOptions) Resolve(modelDir, family string, window int) (Encoding, error) {
	if err := o.Validate(); err != nil {
		return Encoding{}, err
	}
	var e Encoding
	switch {
	case o.MaxLength > 0 && window > 0 && o.MaxLength > window:
		return Encoding{}, fmt.Errorf("max_length %d exceeds the model's window of %d tokens: the model cannot read more; give at most %d",
			o.MaxLength, window, window)
	case o.MaxLength > 0:
		e.MaxLength, e.MaxLengthSource = o.MaxLength, "max_length option"
	default:
		var err error
		if e.MaxLength, e.MaxLengthSource, err = ResolveMaxLength(modelDir, window); err != nil {
			return Encoding{}, err
		}
	}
	switch o.AddBOS {
	case BOSTrue:
		e.AddBOS = true
	case BOSFalse:
	default:
		var err error
		if e.AddBOS, err = AddBOSFor(modelDir, family); err != nil {
			return Encoding{}, err
		}
	}
	return e, nil
}
