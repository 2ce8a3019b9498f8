package bench

import (
	"bufio"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
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

// The layouts of the matmul probe: the two the Go backend's DotGeneral runs natively
// (compute's internal/gobackend/dot, LayoutNonTransposed and LayoutTransposed). Any other
// contraction is first transposed into one of them, so the faster of the two is the backend's
// peak.
const (
	// MatmulNonTransposed is x·y, x [N, K] by y [K, N]: DotGeneral contracting axis 1 of x with
	// axis 0 of y (graph.MatMul, a BLAS "NN" product).
	MatmulNonTransposed = "nontransposed"
	// MatmulTransposed is x·yᵀ, x [N, K] by y [N, K]: DotGeneral contracting the last axes of
	// both (the layout of every linear layer: activations times a PyTorch-layout [out, in]
	// weight; a BLAS "NT" product).
	MatmulTransposed = "transposed"
)

// MatmulLayouts lists the layouts MeasureMatmul times, in its order.
var MatmulLayouts = []string{MatmulNonTransposed, MatmulTransposed}

// MatmulProducts is how many N x N x N products one timed run of the matmul probe computes:
// a chain z = x·y·y·...·y (or x·yᵀ·yᵀ·...) in one graph, each product taking the backend's
// multi-core GEMM in turn. One product of the default N = 1024 lasts 10-40 ms on two cores, so
// a run of one measured how much of the machine the probe got in that window (docs/benchmarks.md,
// "What is timed"); 8 make a run of 17 GFLOP, a fraction of a second.
const MatmulProducts = 8

// MatmulLayout is the rate of the probe's product in one layout.
type MatmulLayout struct {
	// Layout is MatmulNonTransposed or MatmulTransposed.
	Layout string `json:"layout"`
	// GFLOPS is the best timed run, MedianGFLOPS the median run, Seconds every timed run (wall
	// clock, each run MatmulPeak.FLOPs).
	GFLOPS       float64   `json:"gflops"`
	MedianGFLOPS float64   `json:"median_gflops"`
	Seconds      []float64 `json:"seconds"`
	// CPUSeconds is the process's CPU time (user + system, all threads) of each timed run, and
	// CPUGFLOPS the FLOPs per CPU second of the median of those runs: the GEMM's rate per core,
	// which other processes on the machine do not lower the way they lower the wall-clock rate.
	// Cores is CPUSeconds / Seconds of the best run: how many cores the probe had then (up
	// to GOMAXPROCS). Zero where the CPU time is unknown (not a Unix system).
	CPUSeconds []float64 `json:"cpu_seconds,omitempty"`
	CPUGFLOPS  float64   `json:"cpu_gflops,omitempty"`
	Cores      float64   `json:"cores,omitempty"`
}

// MatmulPeak is the float32 rate of square matrix products on the backend: the yardstick of
// utilisation. Each layout of MatmulLayouts is timed; the peak is the fastest.
type MatmulPeak struct {
	// N is the side: every product is N x N by N x N, 2·N³ FLOPs. Products is how many chained
	// products one timed run computes (MatmulProducts) and FLOPs their count, 2·Products·N³.
	N        int     `json:"n"`
	Products int     `json:"products"`
	FLOPs    float64 `json:"flops"`
	// GFLOPS is the best timed run of the fastest layout (the closest to the machine's
	// capacity); MedianGFLOPS and Seconds are that layout's median run and timed runs, and
	// CPUGFLOPS and Cores its rate per CPU second and the cores of its best run.
	GFLOPS       float64   `json:"gflops"`
	MedianGFLOPS float64   `json:"median_gflops"`
	Seconds      []float64 `json:"seconds"`
	CPUGFLOPS    float64   `json:"cpu_gflops,omitempty"`
	Cores        float64   `json:"cores,omitempty"`
	// Layout is the layout that gave GFLOPS, Layouts every layout's numbers (MatmulLayouts'
	// order).
	Layout  string         `json:"layout"`
	Layouts []MatmulLayout `json:"layouts"`
}

// MeasureMatmul times float32 N x N by N x N products (GoMLX DotGeneral) on backend in each
// layout of MatmulLayouts, MatmulProducts chained products per run (one graph, one call): per
// layout one untimed run that compiles the graph and checks a few entries of the result against
// float64 arithmetic, warmup-1 more untimed runs, then repeats timed runs, the layouts taking
// turns so that both see the same machine. The peak is the layout with the best run.
//
// On the Go backend a product of fewer than 4 Mi multiply-adds (N <= 161) takes the unpacked
// "small" kernel on one core; larger ones take the packed, multi-core GEMM that the models'
// layers use, so measure the peak with N of a few hundred or more.
func MeasureMatmul(b compute.Backend, n, warmup, repeats int) (peak *MatmulPeak, err error) {
	return measureMatmul(b, n, MatmulProducts, warmup, repeats)
}

func measureMatmul(b compute.Backend, n, products, warmup, repeats int) (peak *MatmulPeak, err error) {
	if n < 1 || products < 1 || repeats < 1 || warmup < 0 {
		return nil, fmt.Errorf("bench: matmul probe needs a positive size, products and repeats and warm-up >= 0, got size %d, products %d, repeats %d, warm-up %d", n, products, repeats, warmup)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	fill := func(scale float32) []float32 {
		data := make([]float32, n*n)
		for i := range data {
			data[i] = (rng.Float32()*2 - 1) * scale
		}
		return data
	}
	// y's entries have variance 1/n, so each product keeps the size of z's entries: the chain
	// neither overflows nor underflows into denormals (which would time something else).
	xData, yData := fill(1), fill(float32(math.Sqrt(3/float64(n))))
	x := tensors.FromFlatDataAndDimensions(xData, n, n)
	y := tensors.FromFlatDataAndDimensions(yData, n, n)
	type probe struct {
		layout     string
		exec       *graph.Exec
		times, cpu []float64
	}
	probes := make([]*probe, len(MatmulLayouts))
	for i, layout := range MatmulLayouts {
		e, err := matmulExec(b, layout, products)
		if err != nil {
			return nil, err
		}
		probes[i] = &probe{layout: layout, exec: e}
	}
	// run executes one chain; with check, it compares a few entries with float64 arithmetic.
	run := func(p *probe, check bool) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("bench: matmul probe (%s layout, %d x %d^3): %v", p.layout, products, n, r)
			}
		}()
		out, err := p.exec.Exec(x, y)
		if err != nil {
			return fmt.Errorf("bench: matmul probe (%s layout, %d x %d^3): %w", p.layout, products, n, err)
		}
		defer out[0].MustFinalizeAll()
		if check {
			return checkMatmul(p.layout, n, products, xData, yData, out[0])
		}
		return nil
	}
	for _, p := range probes {
		for i := range max(warmup, 1) {
			if err := run(p, i == 0); err != nil {
				return nil, err
			}
		}
	}
	for range repeats {
		for _, p := range probes {
			c0, cpuOK := cpuSeconds()
			t0 := time.Now()
			if err := run(p, false); err != nil {
				return nil, err
			}
			p.times = append(p.times, time.Since(t0).Seconds())
			if c1, ok := cpuSeconds(); ok && cpuOK {
				p.cpu = append(p.cpu, c1-c0)
			}
		}
	}
	flops := 2 * float64(products) * float64(n) * float64(n) * float64(n)
	peak = &MatmulPeak{N: n, Products: products, FLOPs: flops}
	for _, p := range probes {
		median, best, _ := summarize(p.times)
		l := MatmulLayout{Layout: p.layout, GFLOPS: flops / best / 1e9, MedianGFLOPS: flops / median / 1e9, Seconds: p.times}
		if len(p.cpu) == len(p.times) {
			l.CPUSeconds = p.cpu
			if cpuMedian, _, _ := summarize(p.cpu); cpuMedian > 0 {
				l.CPUGFLOPS = flops / cpuMedian / 1e9
			}
			l.Cores = p.cpu[slices.Index(p.times, best)] / best
		}
		peak.Layouts = append(peak.Layouts, l)
		if peak.Layout == "" || l.GFLOPS > peak.GFLOPS {
			peak.Layout, peak.GFLOPS, peak.MedianGFLOPS, peak.Seconds = l.Layout, l.GFLOPS, l.MedianGFLOPS, l.Seconds
			peak.CPUGFLOPS, peak.Cores = l.CPUGFLOPS, l.Cores
		}
	}
	return peak, nil
}

// matmulExec builds the probe's graph for layout: (x, y) -> x·y·...·y, products products in a
// chain (x·yᵀ·...·yᵀ in the transposed layout). Each product depends on the one before, so the
// backend can neither merge nor overlap them: they run one after the other, each on its GEMM.
func matmulExec(b compute.Backend, layout string, products int) (e *graph.Exec, err error) {
	var yContracting int
	switch layout {
	case MatmulNonTransposed:
		yContracting = 0
	case MatmulTransposed:
		yContracting = 1
	default:
		return nil, fmt.Errorf("bench: matmul probe: unknown layout %q (want one of %s)", layout, strings.Join(MatmulLayouts, ", "))
	}
	defer func() {
		if r := recover(); r != nil {
			e, err = nil, fmt.Errorf("bench: matmul probe (%s layout): %v", layout, r)
		}
	}()
	e, err = graph.NewExec(b, func(x, y *graph.Node) *graph.Node {
		z := x
		for range products {
			z = graph.DotGeneral(z, []int{1}, nil, y, []int{yContracting}, nil)
		}
		return z
	})
	if err != nil {
		return nil, fmt.Errorf("bench: matmul probe (%s layout): %w", layout, err)
	}
	return e, nil
}

// checkMatmul compares a few entries of out (x times y products times, in layout, N x N) with
// float64 arithmetic: a probe that timed a wrong contraction, or fewer products than it counts,
// would time nothing useful.
func checkMatmul(layout string, n, products int, x, y []float32, out *tensors.Tensor) error {
	if dims := out.Shape().Dimensions; len(dims) != 2 || dims[0] != n || dims[1] != n {
		return fmt.Errorf("bench: matmul probe (%s layout): product shaped %v, want [%d %d]", layout, dims, n, n)
	}
	got, err := tensors.CopyFlatData[float32](out)
	if err != nil {
		return fmt.Errorf("bench: matmul probe (%s layout): reading the product: %w", layout, err)
	}
	yAt := func(k, j int) float64 { // the (k, j) entry of y, or of yᵀ in the transposed layout
		if layout == MatmulTransposed {
			return float64(y[j*n+k])
		}
		return float64(y[k*n+j])
	}
	for _, ij := range [][2]int{{0, 0}, {n - 1, n - 1}, {n / 2, n / 3}, {n / 3, n - 1}} {
		i, j := ij[0], ij[1]
		// Row i of x times all but the last product, in float64; then the last product's entry j.
		row := make([]float64, n)
		for k := range n {
			row[k] = float64(x[i*n+k])
		}
		for range products - 1 {
			next := make([]float64, n)
			for k, r := range row {
				for c := range n {
					next[c] += r * yAt(k, c)
				}
			}
			row = next
		}
		var want, scale float64
		for k, r := range row {
			t := r * yAt(k, j)
			want += t
			scale += math.Abs(t)
		}
		// float32 rounding grows with the chain; a wrong layout or product count misses by O(scale).
		if d := math.Abs(float64(got[i*n+j]) - want); d > 1e-4*float64(products)*scale+1e-6 {
			return fmt.Errorf("bench: matmul probe (%s layout, %d x %d^3): result[%d][%d] = %g, want %g", layout, products, n, i, j, got[i*n+j], want)
		}
	}
	return nil
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
