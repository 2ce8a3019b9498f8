package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/perpetual-ml/perpetual/evaluation"
	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/models/prompt"
	"github.com/perpetual-ml/perpetual/models/safetensors"
	"github.com/perpetual-ml/perpetual/models/tokenizer"
)

// generateOptions are the flags of `perpetual generate`.
type generateOptions struct {
	model, format, input, out, dtype string
	maxNew, topK                     int
	temperature, topP                float64
	seed                             uint64
	stops                            []string
	quiet                            bool
}

// generation is one line of the batch output.
type generation struct {
	Prompt     string  `json:"prompt"`
	Completion string  `json:"completion"`
	Tokens     []int32 `json:"tokens"`
	// Stopped says why generation ended: "eos", "stop" (a stop string), "length".
	Stopped      string  `json:"stopped"`
	TokensPerSec float64 `json:"tokens_per_s"`
}

func (o *generateOptions) validate() error {
	switch {
	case o.model == "":
		return errors.New("--model is required")
	case o.maxNew < 1:
		return fmt.Errorf("--max-new-tokens must be at least 1, got %d", o.maxNew)
	case o.temperature < 0 || math.IsNaN(o.temperature):
		return fmt.Errorf("--temperature must be >= 0 (0 is greedy), got %v", o.temperature)
	case o.topK < 0:
		return fmt.Errorf("--top-k must be >= 0 (0 keeps every token), got %d", o.topK)
	case o.topP < 0 || o.topP > 1 || math.IsNaN(o.topP):
		return fmt.Errorf("--top-p must be in [0, 1] (0 or 1 keeps every token), got %v", o.topP)
	}
	for _, s := range o.stops {
		if s == "" {
			return errors.New("--stop: empty stop string")
		}
	}
	if o.format != "" {
		if _, err := prompt.Format(o.format); err != nil {
			return fmt.Errorf("--prompt-format: %w", err)
		}
	}
	return nil
}

// newGenerateCmd builds the `generate` command (fresh flags on every call).
func newGenerateCmd() *cobra.Command {
	o := &generateOptions{}
	cmd := &cobra.Command{
		Use:   "generate --model DIR [PROMPT...]",
		Short: "Generate text from a model: prompts from arguments, stdin or a JSONL file",
		Long: "Continues each prompt with the model's cached decoding (greedy by default; --temperature,\n" +
			"--top-k, --top-p and --seed sample, deterministically for a seed). --prompt-format wraps each\n" +
			"prompt in a format of models/prompt (" + strings.Join(prompt.Names(), ", ") + ") as the model was tuned.\n" +
			"Generation stops at the tokenizer's EOS (and at the format's end of turn: Gemma's <end_of_turn>,\n" +
			"Llama 3's <|eot_id|>, ChatML's <|im_end|>),\n" +
			"at a --stop string (cut from the completion) or after --max-new-tokens.\n\n" +
			"One prompt streams its completion to stdout. Several prompts (arguments, or --input FILE.jsonl\n" +
			"with one {\"prompt\": ...} per line) or --out write JSONL: prompt, completion, tokens,\n" +
			"stopped, tokens_per_s. Without arguments or --input the prompt is read from stdin.",
		Example: "  perpetual generate --model zoo/checkpoints/gemma-tiny --prompt-format gemma \"What is a river?\"\n" +
			"  perpetual generate --model DIR --input prompts.jsonl --out completions.jsonl --temperature 0.7 --seed 3",
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			prompts, err := readPrompts(args, o.input, cmd.InOrStdin())
			if err != nil {
				return err
			}
			g, err := newGenerator(o)
			if err != nil {
				return err
			}
			stream := len(prompts) == 1 && o.out == ""
			var results []generation
			for _, p := range prompts {
				var onText func(string)
				if stream {
					onText = func(s string) { fmt.Fprint(cmd.OutOrStdout(), s) }
				}
				r, err := g.generate(p, onText)
				if err != nil {
					return err
				}
				if stream {
					fmt.Fprintln(cmd.OutOrStdout())
					if !o.quiet {
						fmt.Fprintf(cmd.ErrOrStderr(), "[%d tokens, %.1f tokens/s, stopped: %s]\n", len(r.Tokens), r.TokensPerSec, r.Stopped)
					}
				}
				results = append(results, r)
			}
			if stream {
				return nil
			}
			write := func(w io.Writer) error {
				enc := json.NewEncoder(w)
				enc.SetEscapeHTML(false)
				for _, r := range results {
					if err := enc.Encode(r); err != nil {
						return err
					}
				}
				return nil
			}
			if o.out == "" {
				return write(cmd.OutOrStdout())
			}
			return safetensors.WriteAtomic(o.out, write)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.model, "model", "", "model folder (config.json, safetensors, tokenizer)")
	f.StringVar(&o.format, "prompt-format", "", "wrap prompts in a models/prompt format ("+strings.Join(prompt.Names(), ", ")+"); default: the raw prompt")
	f.StringVar(&o.input, "input", "", "JSONL file of prompts, one {\"prompt\": \"...\"} per line")
	f.StringVar(&o.out, "out", "", "write the JSONL results to this file (atomically) instead of stdout")
	f.StringVar(&o.dtype, "dtype", "float32", "compute dtype: float32, bfloat16 or float16")
	f.IntVar(&o.maxNew, "max-new-tokens", 64, "most tokens to generate per prompt")
	f.Float64Var(&o.temperature, "temperature", 0, "sampling temperature; 0 is greedy")
	f.IntVar(&o.topK, "top-k", 0, "sample among the k most likely tokens (0: all)")
	f.Float64Var(&o.topP, "top-p", 1, "nucleus sampling: the smallest set of tokens reaching this probability (1: all)")
	f.Uint64Var(&o.seed, "seed", 1, "sampling seed: equal seeds give equal samples")
	f.StringArrayVar(&o.stops, "stop", nil, "stop when the completion contains this string (repeatable); it is cut from the completion")
	f.BoolVar(&o.quiet, "quiet", false, "no statistics line on stderr")
	return cmd
}

// readPrompts takes the prompts from the arguments, else the JSONL file, else all of stdin.
func readPrompts(args []string, input string, stdin io.Reader) ([]string, error) {
	if len(args) > 0 && input != "" {
		return nil, errors.New("give prompts as arguments or with --input, not both")
	}
	if len(args) > 0 {
		for i, a := range args {
			if strings.TrimSpace(a) == "" {
				return nil, fmt.Errorf("prompt %d is empty", i+1)
			}
		}
		return args, nil
	}
	if input == "" {
		data, err := io.ReadAll(stdin)
		if err != nil {
			return nil, err
		}
		if strings.TrimSpace(string(data)) == "" {
			return nil, errors.New("no prompt: give one as an argument, on stdin or with --input FILE.jsonl")
		}
		return []string{strings.TrimSuffix(string(data), "\n")}, nil
	}
	f, err := os.Open(input)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for line := 1; sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var rec struct {
			Prompt *string `json:"prompt"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", input, line, err)
		}
		if rec.Prompt == nil || strings.TrimSpace(*rec.Prompt) == "" {
			return nil, fmt.Errorf("%s line %d: no \"prompt\" (or an empty one)", input, line)
		}
		out = append(out, *rec.Prompt)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", input, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no prompts", input)
	}
	return out, nil
}

// generator holds a loaded model and the encoding rules of its prompts.
type generator struct {
	o      *generateOptions
	m      *lm.Model
	tok    tokenizer.Tokenizer
	tpl    *prompt.Template
	addBOS bool
	stopID []int32
}

func newGenerator(o *generateOptions) (*generator, error) {
	opts := lm.LoadOptions{}
	var err error
	if opts.DType, err = lm.ParseDType(o.dtype); err != nil {
		return nil, err
	}
	m, err := lm.Load(o.model, opts)
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.Load(o.model)
	if err != nil {
		return nil, err
	}
	g := &generator{o: o, m: m, tok: tok}
	if g.addBOS, err = evaluation.AddBOSFor(o.model, m.Arch().Family()); err != nil {
		return nil, err
	}
	if o.format != "" {
		t, _ := prompt.Format(o.format)
		g.tpl = &t
	}
	if eos := tok.Special().EOS; eos >= 0 {
		g.stopID = append(g.stopID, eos)
	}
	if g.tpl != nil && g.tpl.EndOfTurn != "" {
		if id, ok := tok.TokenID(g.tpl.EndOfTurn); ok {
			g.stopID = append(g.stopID, id)
		}
	}
	return g, nil
}

// encode renders and tokenizes a prompt: the format's prompt with the text as the instruction
// (its "<bos>" becomes the BOS id), or the raw text with BOS when the model's tokenizer adds it.
func (g *generator) encode(text string) ([]int32, error) {
	if g.tpl != nil {
		enc, err := g.tpl.Encode(g.tok, prompt.Example{Instruction: text})
		if err != nil {
			return nil, err
		}
		ids := enc.IDs[:enc.PromptLen]
		if bos := g.tok.Special().BOS; g.addBOS && bos >= 0 && (len(ids) == 0 || ids[0] != bos) {
			ids = append([]int32{bos}, ids...)
		}
		return ids, nil
	}
	ids := g.tok.Encode(text)
	if bos := g.tok.Special().BOS; g.addBOS && bos >= 0 {
		ids = append([]int32{bos}, ids...)
	}
	return ids, nil
}

// generate continues one prompt. onText, when set, receives the completion's text as it grows
// (streaming), never past a stop string.
func (g *generator) generate(text string, onText func(string)) (generation, error) {
	ids, err := g.encode(text)
	if err != nil {
		return generation{}, err
	}
	r := generation{Prompt: text, Stopped: "length"}
	var shown int // bytes of the completion already streamed
	start := time.Now()
	var toks []int32
	out, err := g.m.Generate(ids, lm.GenerateOptions{MaxNewTokens: g.o.maxNew, Temperature: g.o.temperature, TopK: g.o.topK,
		TopP: g.o.topP, Seed: g.o.seed, StopTokens: g.stopID,
		OnToken: func(id int32) bool {
			for _, s := range g.stopID {
				if id == s {
					r.Stopped = "eos"
					return false
				}
			}
			toks = append(toks, id)
			full := g.tok.Decode(toks)
			for _, s := range g.o.stops {
				if i := strings.Index(full, s); i >= 0 {
					r.Stopped = "stop"
					r.Completion = full[:i]
					if onText != nil && i > shown {
						onText(full[shown:i])
					}
					return false
				}
			}
			// Hold back a tail that could still become a stop string.
			safe := len(full)
			for _, s := range g.o.stops {
				for k := min(len(s)-1, len(full)); k > 0; k-- {
					if strings.HasSuffix(full, s[:k]) {
						safe = min(safe, len(full)-k)
						break
					}
				}
			}
			for safe > shown && !utf8.ValidString(full[shown:safe]) {
				safe-- // never stream half a character
			}
			if onText != nil && safe > shown {
				onText(full[shown:safe])
				shown = safe
			}
			r.Completion = full
			return true
		}})
	if err != nil {
		return generation{}, fmt.Errorf("generating for prompt %q: %w", clipPrompt(text), err)
	}
	if r.Stopped != "stop" {
		r.Completion = g.tok.Decode(toks)
		if onText != nil && len(r.Completion) > shown {
			onText(r.Completion[shown:])
		}
	}
	r.Tokens = out
	r.TokensPerSec = math.Round(float64(len(out))/time.Since(start).Seconds()*10) / 10
	return r, nil
}

func clipPrompt(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
