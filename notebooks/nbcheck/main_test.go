package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func problemsOf(t *testing.T, nb string) []string {
	t.Helper()
	ps, err := check(strings.NewReader(nb))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

// testdata/gonb-errors.ipynb is a notebook executed by GoNB v0.11.5 with --allow-errors, one
// failure kind per cell: a panic, a compile error, error text on stderr, os.Exit(3), a failing
// shell command, and a last cell that is fine.
func TestGoNBFailuresAreAllCaught(t *testing.T) {
	ps, err := checkFile(filepath.Join("testdata", "gonb-errors.ipynb"))
	if err != nil {
		t.Fatal(err)
	}
	perCell := map[int][]string{}
	for _, p := range ps {
		perCell[p.Cell] = append(perCell[p.Cell], p.Reason+": "+p.Excerpt)
	}
	want := map[int][]string{
		1: {"stderr shows a failure: panic: boom", "text/html output shows a failure", "error output ERROR: exit status 2"},
		2: {"text/html output shows a failure", "error output ERROR: failed to run"},
		3: {"error text on stderr: error: something failed"},
		4: {"error text on stderr: exit status 3", "error output ERROR: exit status 3"},
		5: {"error text on stderr: exit status 1"},
	}
	if len(perCell) != len(want) {
		t.Errorf("cells with problems: %v", perCell)
	}
	for cell, reasons := range want {
		got := perCell[cell]
		if len(got) != len(reasons) {
			t.Errorf("cell %d: got %q, want %d problems", cell, got, len(reasons))
			continue
		}
		for i, r := range reasons {
			if !strings.HasPrefix(got[i], r) {
				t.Errorf("cell %d problem %d: got %q, want prefix %q", cell, i, got[i], r)
			}
		}
	}
}

func TestCleanNotebookPasses(t *testing.T) {
	nb := `{"nbformat": 4, "cells": [
	 {"cell_type": "markdown", "source": "# error: in markdown is fine"},
	 {"cell_type": "code", "execution_count": 1, "source": ["x := 1\n", "fmt.Println(x)"], "outputs": [
	  {"output_type": "stream", "name": "stdout", "text": ["0 errors, accuracy 0.5\n", "error rate: 0.1\n"]},
	  {"output_type": "stream", "name": "stderr", "text": "Warning: slow machine\n"},
	  {"output_type": "display_data", "data": {"text/html": "<b>ok</b>", "application/json": {"a": 1}}, "metadata": {}}
	 ]},
	 {"cell_type": "code", "execution_count": null, "source": "  \n", "outputs": []}
	]}`
	if ps := problemsOf(t, nb); len(ps) != 0 {
		t.Fatalf("clean notebook reported %q", ps)
	}
}

func TestUnexecutedAndTextFailures(t *testing.T) {
	nb := `{"nbformat": 4, "cells": [
	 {"cell_type": "code", "execution_count": null, "source": "fmt.Println(1)", "outputs": []},
	 {"cell_type": "code", "execution_count": 2, "source": "x", "outputs": [
	  {"output_type": "stream", "name": "stdout", "text": "goroutine 7 [running]:\n"},
	  {"output_type": "display_data", "data": {"text/plain": ["Traceback (most recent call last):\n", "  File x\n"]}}
	 ]}
	]}`
	got := strings.Join(problemsOf(t, nb), "\n")
	for _, want := range []string{"cell 1: not executed", "cell 2: stdout shows a failure: goroutine 7", "cell 2: text/plain output shows a failure: Traceback"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
}

func TestBadInput(t *testing.T) {
	for _, nb := range []string{"", "{", `{"nbformat": 3, "cells": []}`} {
		if _, err := check(strings.NewReader(nb)); err == nil {
			t.Errorf("accepted %q", nb)
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "broken.ipynb")
	os.WriteFile(path, []byte("nope"), 0o644)
	if _, err := checkFile(path); err == nil || !strings.Contains(err.Error(), "broken.ipynb") {
		t.Fatalf("error should name the file: %v", err)
	}
}
