package bench

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/perpetual-ml/perpetual/internal/procfs"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/models/backend"
)

// Machine describes where the numbers were measured.
type Machine struct {
	// CPU is the first "model name" of /proc/cpuinfo (empty where there is none).
	CPU string `json:"cpu"`
	// Cores is runtime.NumCPU (the CPUs this process may use), GOMAXPROCS the Go scheduler's.
	Cores      int `json:"cores"`
	GOMAXPROCS int `json:"gomaxprocs"`
	// Kernel is /proc/sys/kernel/osrelease.
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
	GOARCH    string `json:"goarch"`
	// Backend is the GoMLX backend's name and BackendConfig the configuration it was made
	// from ($GOMLX_BACKEND or the default).
	Backend       string `json:"backend"`
	BackendConfig string `json:"backend_config"`
}

func machineInfo(b compute.Backend) Machine {
	m := Machine{Cores: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version(), GOARCH: runtime.GOARCH,
		Backend: b.Name(), BackendConfig: backend.Config()}
	if raw, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(raw))
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// MatmulPeak is the float32 rate of a square matrix product on the backend: the yardstick of
// utilisation.
type MatmulPeak struct {
	// N is the side: C = A·Bᵀ with A, B, C all N x N, 2·N³ FLOPs.
	N int `json:"n"`
	// GFLOPS is the best timed run (the closest to the machine's capacity); MedianGFLOPS the
	// median run.
	GFLOPS       float64   `json:"gflops"`
	MedianGFLOPS float64   `json:"median_gflops"`
	Seconds      []float64 `json:"seconds"`
}

// MeasureMatmul times a float32 N x N by N x N product (GoMLX DotGeneral contracting the last
// axes of both operands, the layout of every linear layer: activations times a PyTorch-layout
// [out, in] weight) on backend: warmup untimed runs, then repeats timed ones.
func MeasureMatmul(b compute.Backend, n, warmup, repeats int) (peak *MatmulPeak, err error) {
	if n < 1 || repeats < 1 {
		return nil, fmt.Errorf("bench: matmul probe needs a positive size and repeats, got %d and %d", n, repeats)
	}
	defer func() {
		if r := recover(); r != nil {
			peak, err = nil, fmt.Errorf("bench: matmul probe: %v", r)
		}
	}()
	e, err := graph.NewExec(b, func(x, y *graph.Node) *graph.Node {
		return graph.DotGeneral(x, []int{1}, nil, y, []int{1}, nil)
	})
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(7, 7))
	fill := func() *tensors.Tensor {
		data := make([]float32, n*n)
		for i := range data {
			data[i] = rng.Float32()*2 - 1
		}
		return tensors.FromFlatDataAndDimensions(data, n, n)
	}
	x, y := fill(), fill()
	run := func() error {
		out, err := e.Exec(x, y)
		if err != nil {
			return err
		}
		out[0].MustFinalizeAll()
		return nil
	}
	for range warmup {
		if err := run(); err != nil {
			return nil, err
		}
	}
	peak = &MatmulPeak{N: n}
	for range repeats {
		t0 := time.Now()
		if err := run(); err != nil {
			return nil, err
		}
		peak.Seconds = append(peak.Seconds, time.Since(t0).Seconds())
	}
	median, best, _ := summarize(peak.Seconds)
	flops := 2 * float64(n) * float64(n) * float64(n)
	peak.GFLOPS, peak.MedianGFLOPS = flops/best/1e9, flops/median/1e9
	return peak, nil
}

// resetPeakRSS resets the kernel's peak-RSS counter of this process (VmHWM) by writing "5" to
// /proc/self/clear_refs; false where that is not allowed or not Linux.
func resetPeakRSS() bool {
	f, err := os.OpenFile("/proc/self/clear_refs", os.O_WRONLY, 0)
	if err != nil {
		return false
	}
	_, err = f.WriteString("5")
	return f.Close() == nil && err == nil
}

// peakRSS is VmHWM from /proc/self/status in bytes (0 where unknown).
func peakRSS() int64 { return procfs.Bytes("/proc/self/status", "VmHWM:") }

// heapSampler keeps the largest Go heap seen between runs and the runtime's last Sys.
type heapSampler struct {
	peak, sys uint64
}

func (h *heapSampler) sample() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	h.peak = max(h.peak, ms.HeapAlloc)
	h.sys = ms.Sys
}
