package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/models/tokenizer"
	"github.com/perpetual-ml/perpetual/zoo"
	"github.com/perpetual-ml/perpetual/zoo/zootest"
)

func readGenerations(t *testing.T, path string) []generation {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []generation
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var g generation
		if err := json.Unmarshal(sc.Bytes(), &g); err != nil {
			t.Fatal(err)
		}
		out = append(out, g)
	}
	return out
}

// genArgs are a generate run's arguments: 10 new tokens, quiet, and extra.
func genArgs(model, out string, extra ...string) []string {
	args := []string{"generate", "--model", model, "--out", out, "--max-new-tokens", "10", "--quiet"}
	return append(args, extra...)
}

func TestGenerateCommand(t *testing.T) {
	model := filepath.Join(t.TempDir(), "gemma")
	if err := zoo.RandomModel(model, zootest.TinyGemma, 3); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()

	// Greedy decoding with the cache gives the argmax continuation of full forward passes.
	greedy := filepath.Join(dir, "greedy.jsonl")
	if msg, err := runCLI(t, genArgs(model, greedy, "The river runs", "A town")...); err != nil {
		t.Fatalf("%v\n%s", err, msg)
	}
	gens := readGenerations(t, greedy)
	if len(gens) != 2 || gens[0].Prompt != "The river runs" || gens[1].Prompt != "A town" {
		t.Fatalf("generations %+v", gens)
	}
	m, err := lm.Load(model, lm.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(model)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gens {
		ids := append([]int32{tok.Special().BOS}, tok.Encode(g.Prompt)...)
		var want []int32
		for len(want) < len(g.Tokens) {
			logits, err := m.Logits([][]int32{append(slices.Clone(ids), want...)})
			if err != nil {
				t.Fatal(err)
			}
			last := logits[0][len(logits[0])-1]
			best := 0
			for i, x := range last {
				if x > last[best] {
					best = i
				}
			}
			want = append(want, int32(best))
		}
		if !slices.Equal(g.Tokens, want) {
			t.Fatalf("%q: cached greedy %v, full forward %v", g.Prompt, g.Tokens, want)
		}
		if g.Stopped == "length" && len(g.Tokens) != 10 {
			t.Errorf("%q: stopped for length after %d tokens", g.Prompt, len(g.Tokens))
		}
	}

	// Sampling is deterministic for a seed.
	sample := func(seed string) generation {
		out := filepath.Join(dir, "s"+seed+".jsonl")
		if msg, err := runCLI(t, genArgs(model, out, "--temperature", "1", "--seed", seed, "The river runs")...); err != nil {
			t.Fatalf("%v\n%s", err, msg)
		}
		return readGenerations(t, out)[0]
	}
	a, b, c := sample("5"), sample("5"), sample("6")
	if !slices.Equal(a.Tokens, b.Tokens) {
		t.Fatalf("seed 5 twice: %v vs %v", a.Tokens, b.Tokens)
	}
	if slices.Equal(a.Tokens, c.Tokens) {
		t.Fatalf("seeds 5 and 6 gave the same %d tokens from a random model", len(a.Tokens))
	}

	// A stop string ends generation and is cut from the completion.
	full := gens[0].Completion
	if len(full) < 6 {
		t.Fatalf("completion %q too short for the stop test", full)
	}
	stop := full[3:6]
	stopped := filepath.Join(dir, "stop.jsonl")
	if msg, err := runCLI(t, genArgs(model, stopped, "--stop", stop, "The river runs")...); err != nil {
		t.Fatalf("%v\n%s", err, msg)
	}
	g := readGenerations(t, stopped)[0]
	if g.Stopped != "stop" || g.Completion != full[:strings.Index(full, stop)] {
		t.Fatalf("stop %q: completion %q (%s), want %q", stop, g.Completion, g.Stopped, full[:strings.Index(full, stop)])
	}

	// One prompt without --out streams its completion to stdout.
	args := genArgs(model, "", "--stop", stop, "The river runs")
	msg, err := runCLI(t, args...)
	if err != nil || msg != g.Completion+"\n" {
		t.Fatalf("streamed %q (%v), want %q", msg, err, g.Completion+"\n")
	}

	// Prompts from a JSONL file.
	in := filepath.Join(dir, "in.jsonl")
	os.WriteFile(in, []byte(`{"prompt": "The river runs"}`+"\n\n"+`{"prompt": "A town"}`+"\n"), 0o644)
	fromFile := filepath.Join(dir, "file.jsonl")
	if msg, err := runCLI(t, genArgs(model, fromFile, "--input", in)...); err != nil {
		t.Fatalf("%v\n%s", err, msg)
	}
	if got := readGenerations(t, fromFile); len(got) != 2 || !slices.Equal(got[1].Tokens, gens[1].Tokens) {
		t.Fatalf("from file: %+v", got)
	}
}

func TestGenerateBadInput(t *testing.T) {
	model := filepath.Join(t.TempDir(), "gemma")
	if err := zoo.RandomModel(model, zootest.TinyGemma, 3); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	badJSONL := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(badJSONL, []byte(`{"prompt": "ok"}`+"\n"+`{"text": "no prompt"}`+"\n"), 0o644)
	out := filepath.Join(dir, "out.jsonl")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--max-new-tokens", "0", "hi"}, "--max-new-tokens"},
		{[]string{"--temperature", "-1", "hi"}, "--temperature"},
		{[]string{"--top-p", "2", "hi"}, "--top-p"},
		{[]string{"--top-k", "-1", "hi"}, "--top-k"},
		{[]string{"--prompt-format", "nope", "hi"}, "--prompt-format"},
		{[]string{"--stop", "", "hi"}, "--stop"},
		{[]string{"  "}, "prompt 1 is empty"},
		{[]string{"--input", badJSONL}, "bad.jsonl line 2"},
		{[]string{"--input", badJSONL, "hi"}, "not both"},
	} {
		msg, err := runCLI(t, genArgs(model, out, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one naming %q\n%s", c.args, err, c.want, msg)
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("%v: wrote %s although the input was refused", c.args, out)
		}
	}
	if _, err := runCLI(t, genArgs(filepath.Join(dir, "missing"), out, "hi")...); err == nil {
		t.Error("missing model folder: no error")
	}
}
