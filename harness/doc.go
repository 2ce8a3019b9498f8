// Package harness runs a suite of experiments end to end: for every task x model x condition
// (base, fine-tuned, RAG, fine-tuned + RAG) it builds the curriculum (package curriculum), the
// retrieval index (rag), fine-tunes where a fine-tuned model is missing (through a FineTuner, the
// training package), evaluates the cell (evaluation), and writes a results folder: results.md in
// the layout of the paper's table, results.json (its shared part's schema is package
// harness/results), per-sample logs and the charts (plots.Render), and beside them, kept out of
// the deterministic results, timings.json and timings.md: where the run's wall time went.
//
// Every expensive step is cached on disk under a key that hashes its inputs (the suite entry, the
// model's files, the curriculum's files, the recipe and the harness's code version), so a second
// run with nothing changed only re-reads small JSON files, and changing one model reruns only its
// cells. Writes are atomic (temporary file or folder, then rename), so an interrupted run resumes
// cell by cell.
//
// The harness knows nothing of tensors: it drives the packages through their Go APIs.
// Suites are YAML (gopkg.in/yaml.v3, already used by evaluation's task files); progress bars are
// github.com/schollz/progressbar/v3, as in evaluation.
package harness
