package results

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadErrorsNameFileAndProblem(t *testing.T) {
	good := `{"task":"t","model":"m","condition":"rag","formulation":"letters","acc":0.5,"low":0.4,"high":0.6,"n":10,"delta_vs_base":0.1,"p_value":0.2}`
	cases := []struct {
		name, body, want string
	}{
		{"empty", "", "empty file"},
		{"syntax", "{", "unexpected EOF"},
		{"type", `{"cells": 3}`, "cells: json: cannot unmarshal"},
		{"not harness", `{"results": {"perpetual_letters": {"acc,none": 0.5}}}`, "not a harness results file"},
		{"array", `[1]`, "cannot unmarshal array"},
		{"condition", `{"cells":[` + strings.Replace(good, `"rag"`, `"ragg"`, 1) + `]}`, `condition "ragg" is not one of`},
		{"no task", `{"cells":[` + strings.Replace(good, `"task":"t"`, `"task":""`, 1) + `]}`, "empty task"},
		{"acc range", `{"cells":[` + strings.Replace(good, `"acc":0.5`, `"acc":1.5`, 1) + `]}`, "acc 1.5 outside [0, 1]"},
		{"interval", `{"cells":[` + strings.Replace(good, `"low":0.4`, `"low":0.55`, 1) + `]}`, "does not contain acc"},
		{"negative n", `{"cells":[` + strings.Replace(good, `"n":10`, `"n":-1`, 1) + `]}`, "negative n"},
		{"delta", `{"cells":[` + strings.Replace(good, `"delta_vs_base":0.1`, `"delta_vs_base":-2`, 1) + `]}`, "delta_vs_base -2"},
		{"duplicate", `{"cells":[` + good + `,` + good + `]}`, "duplicate of cells[0]"},
		{"loss step", `{"loss":[{"model":"m","task":"t","step":-1,"loss":1}]}`, "negative step"},
		{"loss empty", `{"loss":[{"model":"","task":"t","step":1,"loss":1}]}`, "empty model or task"},
		{"recall k", `{"recall":[{"task":"t","retriever":"bm25","k":0,"recall":0.5}]}`, "k 0 < 1"},
		{"recall range", `{"recall":[{"task":"t","retriever":"bm25","k":1,"recall":-0.1}]}`, "outside [0, 1]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, File), []byte(c.body), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(dir)
			if err == nil {
				t.Fatalf("Load accepted %s", c.body)
			}
			if !strings.Contains(err.Error(), filepath.Join(dir, File)) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q should name the file and contain %q", err, c.want)
			}
		})
	}
	if _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), File) {
		t.Fatalf("missing file: got %v", err)
	}
}

func TestValidateRejectsNonFinite(t *testing.T) {
	nan := 0.0
	nan = nan / nan
	r := &Summary{Loss: []LossPoint{{Model: "m", Task: "t", Step: 1, Loss: 1, ValLoss: &nan}}}
	if err := r.Validate(); err == nil || !strings.Contains(err.Error(), "val_loss") {
		t.Fatalf("NaN val_loss: got %v", err)
	}
	r = &Summary{Cells: []Cell{{Task: "t", Model: "m", Condition: Base, Acc: nan}}}
	if err := r.Validate(); err == nil || !strings.Contains(err.Error(), "acc") {
		t.Fatalf("NaN acc: got %v", err)
	}
}
