package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/training"
	"github.com/perpetual-ml/perpetual/zoo/zootest"
)

func TestTrainCommandStopAndResume(t *testing.T) {
	base, cdir := zootest.Folders(t, zootest.TinyMamba, 6)
	out := filepath.Join(t.TempDir(), "out")
	args := []string{"train", "--model", base, "--curriculum", cdir, "--out", out, "--epochs", "1", "--lr", "1e-3",
		"--batch-size", "2", "--accumulation", "1", "--max-length", "512", "--quiet", "--checkpoint-every", "1",
		"--clip", "0", "--weight-decay", "0"}
	got, err := runCLI(t, append(args, "--stop-after-step", "1")...)
	if err != nil || !strings.Contains(got, "stopped after step 1") {
		t.Fatalf("%v\n%s", err, got)
	}
	// --clip 0 and --weight-decay 0 mean none, not the defaults.
	var st struct {
		Options map[string]any `json:"options"`
	}
	data, _ := os.ReadFile(filepath.Join(out, "checkpoint", "state.json"))
	if err := json.Unmarshal(data, &st); err != nil || st.Options["clip_norm"] != 0.0 || st.Options["weight_decay"] != 0.0 {
		t.Errorf("checkpoint records %v (%v), want clip_norm 0 and weight_decay 0", st.Options, err)
	}
	// A resume with another learning rate or warm-up is refused, naming both values.
	_, err = runCLI(t, append(args, "--resume", "--lr", "2e-3", "--warmup", "0")...)
	if err == nil || !strings.Contains(err.Error(), "lr: checkpoint 0.001, this run 0.002") || !strings.Contains(err.Error(), "warmup_steps: checkpoint 5, this run 0") {
		t.Fatalf("resume with other settings: %v", err)
	}
	got, err = runCLI(t, append(args, "--resume", "--stop-after-step", "0")...)
	if err != nil || !strings.Contains(got, "trained") || !strings.Contains(got, "validation loss") {
		t.Fatalf("%v\n%s", err, got)
	}
	if _, err := lm.Load(out, lm.LoadOptions{}); err != nil {
		t.Fatal(err)
	}
	// A metrics.jsonl emptied by a kill (the old in-place truncation) resumes from the final
	// checkpoint without a crash.
	if err := os.WriteFile(filepath.Join(out, "metrics.jsonl"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err = runCLI(t, append(args, "--resume")...)
	if err != nil || !strings.Contains(got, "trained") {
		t.Fatalf("resume with empty metrics: %v\n%s", err, got)
	}
	if _, err := runCLI(t, "train", "--model", base, "--curriculum", "", "--out", out); err == nil || !strings.Contains(err.Error(), "--curriculum") {
		t.Errorf("missing --curriculum: %v", err)
	}
}

// Bad numbers and names are refused with the flag named, before the output folder is made (the
// old command exported the untrained model there, then crashed).
func TestTrainCommandRefusesBadFlags(t *testing.T) {
	base, cdir := zootest.Folders(t, zootest.TinyMamba, 4)
	out := filepath.Join(t.TempDir(), "out")
	for _, bad := range [][]string{
		{"--batch-size", "-1"}, {"--accumulation", "-1"}, {"--epochs", "-1"}, {"--epochs", "0"}, {"--max-length", "0"},
		{"--lr", "0"}, {"--lr", "-1e-3"}, {"--warmup", "-1"}, {"--clip", "-1"}, {"--weight-decay", "-0.1"},
		{"--mask", "answer"}, {"--order", "sideways"}, {"--lora-rank", "0"}, {"--lora-rank", "-4"}, {"--lora-alpha", "8"},
		{"--lora-rank", "4", "--lora-alpha", "-1"}, {"--lora-rank", "4", "--lora-targets", ""}, {"--checkpoint-every", "-1"},
		{"--val-every", "-2"}, {"--replay-fraction", "-0.5"}, {"--retention-limit", "0"}, {"--memory-limit", "-1"},
		{"--paraphrases", "-1"},
	} {
		args := append([]string{"train", "--model", base, "--curriculum", cdir, "--out", out, "--quiet"}, bad...)
		_, err := runCLI(t, args...)
		flag := bad[len(bad)-2]
		if bad[0] == "--lora-alpha" {
			flag = "--lora-rank" // LoRA requested without a rank
		}
		if err == nil || !strings.Contains(err.Error(), flag+" ") {
			t.Errorf("%v: error %v, want one naming %s", bad, err, flag)
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("%v: the output folder was created", bad)
		}
	}
}

// --paraphrases limits the paraphrase flashcards only when given; absent, all are trained on.
func TestTrainParaphrasesFlag(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{{nil, "<nil>"}, {[]string{"--paraphrases", "0"}, "0"}, {[]string{"--paraphrases", "2"}, "2"}} {
		f := newTrainCmd().Flags()
		if err := f.Parse(c.args); err != nil {
			t.Fatal(err)
		}
		n, _ := f.GetInt("paraphrases")
		o, err := trainOptions(f, training.Options{Out: "x", Epochs: 1, LR: 1e-3}, trainFlags{paraphrases: n, clip: 1})
		if err != nil {
			t.Fatal(err)
		}
		got := "<nil>"
		if o.Paraphrases != nil {
			got = fmt.Sprint(*o.Paraphrases)
		}
		if got != c.want {
			t.Errorf("%v: Paraphrases %s, want %s", c.args, got, c.want)
		}
	}
}
