package bench

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// WriteText prints the report for people: the setting, the matmul peak, then one line per
// phase, and the generation phase's own table (one line per prompt length).
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "model:    %s from %s, %s parameters, %s, vocabulary %s\n", r.Model.Family, r.Model.Source, commas(float64(r.Model.Params)), r.Model.DType, commas(float64(r.Model.Vocab)))
	fmt.Fprintf(&b, "machine:  %s, %d cores (GOMAXPROCS %d), kernel %s, %s/%s, backend %s (%s)\n", orUnknown(m.CPU), m.Cores, m.GOMAXPROCS, orUnknown(m.Kernel), m.GoVersion, m.GOARCH, m.Backend, m.BackendConfig)
	fmt.Fprintf(&b, "run:      %s, ", r.Date)
	if r.Scoring != nil || r.Training != nil {
		fmt.Fprintf(&b, "batch %d x %d tokens, ", r.Batch, r.Length)
	}
	fmt.Fprintf(&b, "%d warm-up + %d timed runs per phase\n", r.Warmup, r.Repeats)
	if p := r.Matmul; p != nil {
		fmt.Fprintf(&b, "matmul:   float32 %d x %d x %d, %d chained products per run: %.1f GFLOP/s best, %.1f median", p.N, p.N, p.N, p.Products, p.GFLOPS, p.MedianGFLOPS)
		if p.CPUGFLOPS > 0 {
			fmt.Fprintf(&b, ", %.1f per CPU second, %.2f cores in the best run", p.CPUGFLOPS, p.Cores)
		}
		if p.Layout != "" {
			fmt.Fprintf(&b, " (%s layout); by layout, best / median:", p.Layout)
			for i, l := range p.Layouts {
				if i > 0 {
					b.WriteString(",")
				}
				fmt.Fprintf(&b, " %s %.1f / %.1f", l.Layout, l.GFLOPS, l.MedianGFLOPS)
			}
		}
		b.WriteString("\n")
	}
	if r.Scoring != nil || r.Training != nil {
		if err := r.writePhases(&b); err != nil {
			return err
		}
	}
	if g := r.Generation; g != nil {
		if err := g.writeText(&b); err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writePhases prints the table of the scoring and training phases and their notes.
func (r *Report) writePhases(b *strings.Builder) error {
	b.WriteString("\n")
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tmedian s\tmin s\tmax s\ttokens/s\t(range)\tGFLOP/s\tof peak\tGFLOP/CPU s\tof peak\tpeak RSS\testimate\tGo heap\t")
	for _, ph := range []struct {
		name string
		p    *Phase
	}{{PhaseScoring, r.Scoring}, {PhaseTraining, r.Training}} {
		p := ph.p
		if p == nil {
			continue
		}
		gflops, util, cpuGflops, cpuUtil := "-", "-", "-", "-"
		if p.FLOPs > 0 {
			gflops = fmt.Sprintf("%.1f", p.GFLOPS)
		}
		if p.Utilisation > 0 {
			util = fmt.Sprintf("%.0f%%", 100*p.Utilisation)
		}
		if p.CPUGFLOPS > 0 {
			cpuGflops = fmt.Sprintf("%.1f", p.CPUGFLOPS)
		}
		if p.CPUUtilisation > 0 {
			cpuUtil = fmt.Sprintf("%.0f%%", 100*p.CPUUtilisation)
		}
		fmt.Fprintf(tw, "%s\t%.3f\t%.3f\t%.3f\t%s\t(%s-%s)\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", ph.name, p.MedianS, p.MinS, p.MaxS,
			commas(p.TokensPerS), commas(p.TokensPerSMin), commas(p.TokensPerSMax), gflops, util, cpuGflops, cpuUtil, gib(p.Memory.PeakRSSBytes),
			gib(p.EstimatedBytes), gib(int64(p.Memory.GoHeapPeakBytes)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if p := r.Scoring; p != nil {
		fmt.Fprintf(b, "\nscoring:  LogLikelihood of %d requests (%d context tokens + 1), run as %d call(s), %d row(s) of %d tokens with padding",
			r.Batch, r.Length, p.Calls, p.PaddedRows, p.Width)
		if p.FLOPs > 0 {
			fmt.Fprintf(b, "; %.2f GFLOP per run", p.FLOPs/1e9)
		}
		b.WriteString("\n")
	}
	if p := r.Training; p != nil {
		fmt.Fprintf(b, "training: one optimizer step (AdamW) on %d packed rows, %d loss targets; loss %.4f -> %.4f over the runs", r.Batch, p.Targets, p.LossFirst, p.LossLast)
		if p.FLOPs > 0 {
			fmt.Fprintf(b, "; %.2f GFLOP per step (3 x forward)", p.FLOPs/1e9)
		}
		b.WriteString("\n")
	}
	b.WriteString("estimate: lm.EstimateMemory (the trainer's pre-flight check; docs/runtime.md), to compare with the peak RSS\n")
	for _, p := range []*Phase{r.Scoring, r.Training} {
		if p != nil && p.Memory.PeakRSSScope != "phase" {
			b.WriteString("peak RSS is the process's since it started (the kernel refused to reset it per phase)\n")
			break
		}
	}
	return nil
}

// writeText prints the generation phase: one line per prompt length.
func (g *Generation) writeText(b *strings.Builder) error {
	fmt.Fprintf(b, "\ngeneration: greedy Generate (the path of perpetual generate), %d new tokens per run whatever they are: the first from the prefill, then %d single-token decoding steps\n",
		g.NewTokens, g.DecodeSteps)
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "prompt\tcache\tcache size\tprefill s\tprefill tokens/s\tdecode ms/token\t(range)\tdecode tokens/s\trun s\tpeak RSS\tGo heap\t")
	scope := true
	for _, p := range g.Prompts {
		fmt.Fprintf(tw, "%d\t%d\t%s\t%.3f\t%s\t%.2f\t(%.2f-%.2f)\t%.1f\t%.3f\t%s\t%s\t\n", p.PromptTokens, p.CachePositions, mib(p.CacheBytes),
			p.PrefillMedianS, commas(p.PrefillTokensPerS), p.DecodeMsPerToken, p.DecodeMsPerTokenMin, p.DecodeMsPerTokenMax,
			p.DecodeTokensPerS, p.MedianS, gib(p.Memory.PeakRSSBytes), gib(int64(p.Memory.GoHeapPeakBytes)))
		scope = scope && p.Memory.PeakRSSScope == "phase"
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	b.WriteString("cache: the positions Generate allocates (prompt + new tokens, rounded up to a length bucket) and the bytes of the cache or recurrent state; prefill s, run s: medians\n")
	if !scope {
		b.WriteString("peak RSS is the process's since it started (the kernel refused to reset it per prompt)\n")
	}
	return nil
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func gib(n int64) string { return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30)) }

func mib(n int64) string { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }

// commas formats x rounded to an integer with thousands separators.
func commas(x float64) string {
	s := strconv.FormatInt(int64(x+0.5), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}
