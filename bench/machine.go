package bench

import (
	"bufio"
	"fmt"
	"math"
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

// MatmulLayout is the rate of the probe's product in one layout.
type MatmulLayout struct {
	// Layout is MatmulNonTransposed or MatmulTransposed.
	Layout string `json:"layout"`
	// GFLOPS is the best timed run, MedianGFLOPS the median run, Seconds every timed run.
	GFLOPS       float64   `json:"gflops"`
	MedianGFLOPS float64   `json:"median_gflops"`
	Seconds      []float64 `json:"seconds"`
}

// MatmulPeak is the float32 rate of a square matrix product on the backend: the yardstick of
// utilisation. Each layout of MatmulLayouts is timed; the peak is the fastest.
type MatmulPeak struct {
	// N is the side: A, B, C all N x N, 2·N³ FLOPs.
	N int `json:"n"`
	// GFLOPS is the best timed run of the fastest layout (the closest to the machine's
	// capacity); MedianGFLOPS and Seconds are that layout's median run and timed runs.
	GFLOPS       float64   `json:"gflops"`
	MedianGFLOPS float64   `json:"median_gflops"`
	Seconds      []float64 `json:"seconds"`
	// Layout is the layout that gave GFLOPS, Layouts every layout's numbers (MatmulLayouts'
	// order).
	Layout  string         `json:"layout"`
	Layouts []MatmulLayout `json:"layouts"`
}

// MeasureMatmul times a float32 N x N by N x N product (GoMLX DotGeneral) on backend in each
// layout of MatmulLayouts: per layout one untimed run that compiles the graph and checks a few
// entries of the product against a float64 dot product, warmup-1 more untimed runs, then
// repeats timed runs, the layouts taking turns so that both see the same machine. The peak is
// the layout with the best run.
//
// On the Go backend a product of fewer than 4 Mi multiply-adds (N <= 161) takes the unpacked
// "small" kernel on one core; larger ones take the packed, multi-core GEMM that the models'
// layers use, so measure the peak with N of a few hundred or more.
func MeasureMatmul(b compute.Backend, n, warmup, repeats int) (peak *MatmulPeak, err error) {
	if n < 1 || repeats < 1 || warmup < 0 {
		return nil, fmt.Errorf("bench: matmul probe needs a positive size and repeats and warm-up >= 0, got size %d, repeats %d, warm-up %d", n, repeats, warmup)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	fill := func() []float32 {
		data := make([]float32, n*n)
		for i := range data {
			data[i] = rng.Float32()*2 - 1
		}
		return data
	}
	xData, yData := fill(), fill()
	x := tensors.FromFlatDataAndDimensions(xData, n, n)
	y := tensors.FromFlatDataAndDimensions(yData, n, n)
	type probe struct {
		layout string
		exec   *graph.Exec
		times  []float64
	}
	probes := make([]*probe, len(MatmulLayouts))
	for i, layout := range MatmulLayouts {
		e, err := matmulExec(b, layout)
		if err != nil {
			return nil, err
		}
		probes[i] = &probe{layout: layout, exec: e}
	}
	// run executes one product; with check, it compares a few entries with float64 sums.
	run := func(p *probe, check bool) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("bench: matmul probe (%s layout, %d^3): %v", p.layout, n, r)
			}
		}()
		out, err := p.exec.Exec(x, y)
		if err != nil {
			return fmt.Errorf("bench: matmul probe (%s layout, %d^3): %w", p.layout, n, err)
		}
		defer out[0].MustFinalizeAll()
		if check {
			return checkMatmul(p.layout, n, xData, yData, out[0])
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
			t0 := time.Now()
			if err := run(p, false); err != nil {
				return nil, err
			}
			p.times = append(p.times, time.Since(t0).Seconds())
		}
	}
	flops := 2 * float64(n) * float64(n) * float64(n)
	peak = &MatmulPeak{N: n}
	for _, p := range probes {
		median, best, _ := summarize(p.times)
		l := MatmulLayout{Layout: p.layout, GFLOPS: flops / best / 1e9, MedianGFLOPS: flops / median / 1e9, Seconds: p.times}
		peak.Layouts = append(peak.Layouts, l)
		if peak.Layout == "" || l.GFLOPS > peak.GFLOPS {
			peak.Layout, peak.GFLOPS, peak.MedianGFLOPS, peak.Seconds = l.Layout, l.GFLOPS, l.MedianGFLOPS, l.Seconds
		}
	}
	return peak, nil
}

// matmulExec builds the probe's graph for layout: (x, y) -> the N x N product.
func matmulExec(b compute.Backend, layout string) (e *graph.Exec, err error) {
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
		return graph.DotGeneral(x, []int{1}, nil, y, []int{yContracting}, nil)
	})
	if err != nil {
		return nil, fmt.Errorf("bench: matmul probe (%s layout): %w", layout, err)
	}
	return e, nil
}

// checkMatmul compares a few entries of out (the N x N product of x and y in layout) with
// float64 dot products: a probe that timed a wrong contraction would time nothing useful.
func checkMatmul(layout string, n int, x, y []float32, out *tensors.Tensor) error {
	if dims := out.Shape().Dimensions; len(dims) != 2 || dims[0] != n || dims[1] != n {
		return fmt.Errorf("bench: matmul probe (%s layout): product shaped %v, want [%d %d]", layout, dims, n, n)
	}
	got, err := tensors.CopyFlatData[float32](out)
	if err != nil {
		return fmt.Errorf("bench: matmul probe (%s layout): reading the product: %w", layout, err)
	}
	for _, ij := range [][2]int{{0, 0}, {n - 1, n - 1}, {n / 2, n / 3}, {n / 3, n - 1}} {
		i, j := ij[0], ij[1]
		var want, scale float64
		for k := range n {
			yk := y[k*n+j] // y[k, j]
			if layout == MatmulTransposed {
				yk = y[j*n+k] // y[j, k]
			}
			t := float64(x[i*n+k]) * float64(yk)
			want += t
			scale += math.Abs(t)
		}
		if d := math.Abs(float64(got[i*n+j]) - want); d > 1e-4*scale+1e-6 {
			return fmt.Errorf("bench: matmul probe (%s layout, %d^3): product[%d][%d] = %g, want %g", layout, n, i, j, got[i*n+j], want)
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
