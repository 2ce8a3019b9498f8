package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perpetual-ml/perpetual/harness"
	"github.com/perpetual-ml/perpetual/harness/results"
	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/zoo"
	"github.com/perpetual-ml/perpetual/zoo/zootest"
)

// zoo:NAME means the committed checkpoint for every caller: the resolver the CLI hands the
// harness (perpetual results), the one the notebooks build (&zoo.Resolver{}), each through
// harness.ResolveModel, give a folder whose weights are the committed checkpoint's, and every
// zoo model is committed for the current recipe (a recipe change comes with `make zoo`).
func TestZooResolvesToCommittedWeights(t *testing.T) {
	cfg, err := zoo.DefaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range cfg.Names() {
		if !zoo.Committed(cfg, name) {
			t.Errorf("%s: zoo/checkpoints has no checkpoint for the current zoo/config.yaml (run make zoo)", name)
			continue
		}
		committed := t.TempDir()
		if err := zoo.Materialize(context.Background(), cfg, name, committed, zoo.Options{}); err != nil {
			t.Fatal(err)
		}
		want, err := lm.Load(committed, lm.LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		version, _ := zoo.Version(cfg, name)
		for _, r := range []harness.Zoo{zooResolver(io.Discard), &zoo.Resolver{}} {
			dir, err := harness.ResolveModel("zoo:"+name, t.TempDir(), r)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasSuffix(dir, name+"-"+version) {
				t.Errorf("%s resolved to %s, want the zoo's version %s", name, dir, version)
			}
			got, err := lm.Load(dir, lm.LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got.Hash() != want.Hash() {
				t.Errorf("%s: resolved weights differ from the committed checkpoint", name)
			}
			for _, f := range []string{"tokenizer.json", zoo.ManifestFile} {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Error(err)
				}
			}
		}
	}
	if _, err := harness.ResolveModel("zoo:gemma-tiny", t.TempDir(), nil); err == nil || !strings.Contains(err.Error(), "Options.Zoo") {
		t.Fatalf("no zoo: %v", err)
	}
	if _, err := harness.ResolveModel("zoo:nope", t.TempDir(), &zoo.Resolver{}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("unknown zoo model: %v", err)
	}
}

func TestZooCommandUnknownModel(t *testing.T) {
	msg, err := runCLI(t, "zoo", "--name", "nope", "--out", t.TempDir())
	if err == nil || !strings.Contains(err.Error()+msg, "nope") {
		t.Fatalf("error %v\n%s", err, msg)
	}
}

// `zoo curve` charts the probes of a running build (metrics.jsonl in its work folder) and of a
// finished one (manifest.json), and refuses a source without probes.
func TestZooCurveCommand(t *testing.T) {
	work := filepath.Join(t.TempDir(), "gemma-x", "reading")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	metrics := `{"step":1,"loss":3}
{"step":2,"loss":2.5,"probe":{"read_cloze":0.25,"book_cloze":0.3}}
{"step":4,"loss":2,"probe":{"read_cloze":0.5,"book_cloze":0.35}}
`
	if err := os.WriteFile(filepath.Join(work, "metrics.jsonl"), []byte(metrics), 0o644); err != nil {
		t.Fatal(err)
	}
	model := t.TempDir()
	manifest := `{"name": "mamba-x", "phases": [{"name": "reading", "probes": [{"step": 10, "scores": {"read_cloze": 0.4}}]}]}`
	if err := os.WriteFile(filepath.Join(model, zoo.ManifestFile), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if msg, err := runCLI(t, "zoo", "curve", "--out", out, filepath.Join(work, "metrics.jsonl"), model); err != nil {
		t.Fatalf("%v\n%s", err, msg)
	}
	res, err := results.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []results.CurvePoint{{Model: "gemma-x", Probe: "book_cloze", Step: 2, Value: 0.3}, {Model: "gemma-x", Probe: "book_cloze", Step: 4, Value: 0.35},
		{Model: "gemma-x", Probe: "read_cloze", Step: 2, Value: 0.25}, {Model: "gemma-x", Probe: "read_cloze", Step: 4, Value: 0.5}, {Model: "mamba-x", Probe: "read_cloze", Step: 10, Value: 0.4}}
	if fmt.Sprint(res.Curves) != fmt.Sprint(want) {
		t.Fatalf("curves %v, want %v", res.Curves, want)
	}
	for _, f := range []string{"curve-gemma-x.html", "curve-mamba-x.html"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	empty := filepath.Join(t.TempDir(), "metrics.jsonl")
	_ = os.WriteFile(empty, []byte(`{"step":1,"loss":3}`+"\n"), 0o644)
	if _, err := runCLI(t, "zoo", "curve", "--out", t.TempDir(), empty); err == nil || !strings.Contains(err.Error(), "no probe points") {
		t.Fatalf("a source without probes: %v", err)
	}
}

// `zoo reach` prints one accuracy per distance of a model folder, as JSON with --json, and
// names the folder when it cannot load it.
func TestZooReachCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "m")
	if err := zoo.RandomModel(dir, zootest.TinyGemma, 1); err != nil {
		t.Fatal(err)
	}
	msg, err := runCLI(t, "zoo", "reach", "--drills", "2", "--json", dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, msg)
	}
	var pts []zoo.ReachPoint
	if err := json.Unmarshal([]byte(msg), &pts); err != nil {
		t.Fatalf("%v\n%s", err, msg)
	}
	if len(pts) != len(zoo.ReachGaps)+len(zoo.ReachPairs) || pts[0].Drill != "copy" || pts[len(pts)-1].Distance != zoo.ReachPairs[len(zoo.ReachPairs)-1] {
		t.Fatalf("points %+v", pts)
	}
	missing := filepath.Join(t.TempDir(), "none")
	if _, err := runCLI(t, "zoo", "reach", missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("a missing folder: %v", err)
	}
}
