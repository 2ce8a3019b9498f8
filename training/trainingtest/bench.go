package trainingtest

// The benchmark model and the trainer's step benchmark the families' bench_test.go files share.

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/perpetual-ml/perpetual/bench"
	"github.com/perpetual-ml/perpetual/models/backend"
	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/training"
)

// BenchConfig is the family's benchmark config, testdata/bench_config.json of the package under
// test (also read by scripts/bench_peer.py and `perpetual bench --config`).
func BenchConfig(t testing.TB) json.RawMessage {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "bench_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// BenchModel is the benchmark model of BenchConfig with the random weights of bench.RandomModel
// (seed 1), the ones `perpetual bench --config testdata/bench_config.json` times, on the shared
// backend; it logs the parameter count.
func BenchModel(b *testing.B) *lm.Model {
	b.Helper()
	be, err := backend.Shared()
	if err != nil {
		b.Fatal(err)
	}
	m, err := bench.RandomModel(BenchConfig(b), 1, lm.LoadOptions{Backend: be})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("parameters: %d", lm.NumParams(m.Arch().Specs()))
	return m
}

// BenchTrainStep times the trainer's own optimizer step (training.Bench, the step Fit runs and
// `perpetual bench` times) on model: batch packed rows of seq tokens, the summed cross-entropy
// and its gradient, global-norm clipping and AdamW on every parameter at the default options.
// The first step (the compile) runs before the timer; it reports tokens/s and the process's CPU
// time per step (cpu-s/op, user and system over all threads: on a machine shared with other jobs
// it measures the work where wall time also measures the waiting), and fails when three or more
// steps do not lower the loss.
func BenchTrainStep(b *testing.B, model *lm.Model, batch, seq int) {
	b.Helper()
	tb, err := training.NewBench(model, batch, seq, 1)
	if err != nil {
		b.Fatal(err)
	}
	first, err := tb.Step() // compile
	if err != nil {
		b.Fatal(err)
	}
	last := first
	b.ResetTimer()
	cpu0 := cpuTime()
	for range b.N {
		if last, err = tb.Step(); err != nil {
			b.Fatal(err)
		}
	}
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(b.N*tb.Tokens())/b.Elapsed().Seconds(), "tokens/s")
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
	b.StopTimer()
	if math.IsNaN(last.Loss()) || (b.N >= 3 && !(last.Loss() < first.Loss())) {
		b.Fatalf("training did not reduce the loss: %g -> %g", first.Loss(), last.Loss())
	}
	b.Logf("loss %.4f -> %.4f after %d steps", first.Loss(), last.Loss(), b.N+1)
}

// cpuTime is the CPU time (user and system, all threads) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
