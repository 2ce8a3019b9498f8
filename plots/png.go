package plots

import (
	"context"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/perpetual-ml/perpetual/internal/atomicfile"
)

// ChromiumEnv names the environment variable that overrides the browser FindChromium returns.
const ChromiumEnv = "PERPETUAL_CHROMIUM"

// chromiumNames are tried in order on PATH: Debian's package, then other distributions' names.
var chromiumNames = []string{"chromium", "chromium-browser", "google-chrome-stable", "google-chrome"}

// FindChromium returns the browser used for PNG screenshots: $PERPETUAL_CHROMIUM if set, else the
// first of chromium, chromium-browser, google-chrome-stable, google-chrome found on PATH.
func FindChromium() (string, error) {
	if p := os.Getenv(ChromiumEnv); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			return "", fmt.Errorf("plots: %s=%s: %w", ChromiumEnv, p, err)
		}
		return p, nil
	}
	for _, n := range chromiumNames {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("plots: no Chromium on PATH (tried %s; on Debian: apt-get install -y chromium, or set %s)",
		strings.Join(chromiumNames, ", "), ChromiumEnv)
}

// Timeouts: starting a browser on a cold, busy machine takes a few seconds; one page is fast.
const (
	startTimeout = 90 * time.Second
	pageTimeout  = 60 * time.Second
)

// Browser is a headless Chromium kept open for a series of screenshots (through
// github.com/chromedp/chromedp: starting the browser costs about a second of CPU, a page a few
// milliseconds, so Render shares one browser across all charts). It runs with a throw-away profile,
// no sandbox (containers, root) and no network features: the pages must work offline. A Browser
// is not safe for concurrent use.
type Browser struct {
	ctx    context.Context
	cancel func()
	path   string
}

// StartBrowser starts the Chromium at path (see FindChromium).
func StartBrowser(ctx context.Context, path string) (*Browser, error) {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
		chromedp.Flag("force-device-scale-factor", "1"),
	)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	b := &Browser{ctx: bctx, cancel: func() { bcancel(); acancel() }, path: path}
	// The first Do starts the browser and binds it to bctx, so the timeout must not wrap bctx
	// itself: watch it from outside instead.
	done := make(chan error, 1)
	go func() { done <- chromedp.Do(bctx) }()
	select {
	case err := <-done:
		if err != nil {
			b.cancel()
			return nil, fmt.Errorf("plots: starting %s: %w", path, err)
		}
	case <-time.After(startTimeout):
		b.cancel()
		return nil, fmt.Errorf("plots: starting %s: no answer after %s", path, startTimeout)
	}
	return b, nil
}

// Close stops the browser and removes its profile.
func (b *Browser) Close() { b.cancel() }

// Screenshot loads htmlPath and writes a PNG of a viewport that fits a chart of width x height CSS
// pixels, plus the page margins go-echarts adds, to pngPath.
func (b *Browser) Screenshot(htmlPath, pngPath string, width, height int) error {
	abs, err := filepath.Abs(htmlPath)
	if err != nil {
		return fmt.Errorf("plots: %w", err)
	}
	if _, err := os.Stat(abs); err != nil {
		return fmt.Errorf("plots: screenshot: %w", err)
	}
	ctx, cancel := context.WithTimeout(b.ctx, pageTimeout)
	defer cancel()
	if err := chromedp.Do(ctx,
		chromedp.EmulateViewport(int64(width+40), int64(height+60)),
		chromedp.Navigate("file://"+abs),
	); err != nil {
		return fmt.Errorf("plots: screenshot of %s: %w", htmlPath, err)
	}
	// go-echarts draws from a script at the end of <body> and animation is off, so the chart is
	// complete at the load event Navigate waits for; one frame more lets the canvas reach the
	// compositor.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`new Promise(r => requestAnimationFrame(() => r(true)))`, chromedp.EvalAwaitPromise)); err != nil {
		return fmt.Errorf("plots: screenshot of %s: %w", htmlPath, err)
	}
	img, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		return fmt.Errorf("plots: screenshot of %s: %w", htmlPath, err)
	}
	return atomicfile.WriteFile(pngPath, img)
}

// Screenshot photographs one page with a browser started for it (see Browser.Screenshot).
func Screenshot(ctx context.Context, chromium, htmlPath, pngPath string, width, height int) error {
	if _, err := os.Stat(htmlPath); err != nil {
		return fmt.Errorf("plots: screenshot: %w", err)
	}
	b, err := StartBrowser(ctx, chromium)
	if err != nil {
		return err
	}
	defer b.Close()
	return b.Screenshot(htmlPath, pngPath, width, height)
}

// PNGStats summarises an image for the blank check.
type PNGStats struct {
	Width, Height int
	// Colours is the number of distinct RGBA colours.
	Colours int
	// Foreground is the number of pixels that differ from the top-left pixel (the background).
	Foreground int
}

// NotBlank reports an error when the image looks empty: a chart has axes, text and coloured
// marks, so fewer than 8 colours or under 0.5% of non-background pixels means nothing was drawn.
func (s PNGStats) NotBlank() error {
	if s.Colours < 8 || s.Foreground*200 < s.Width*s.Height {
		return fmt.Errorf("image is blank: %d colours, %d of %d pixels differ from the background",
			s.Colours, s.Foreground, s.Width*s.Height)
	}
	return nil
}

// InspectPNG decodes a PNG file and counts its colours and non-background pixels.
func InspectPNG(path string) (PNGStats, error) {
	f, err := os.Open(path)
	if err != nil {
		return PNGStats{}, fmt.Errorf("plots: %w", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		return PNGStats{}, fmt.Errorf("plots: %s: %w", path, err)
	}
	return inspect(img), nil
}

func inspect(img image.Image) PNGStats {
	b := img.Bounds()
	st := PNGStats{Width: b.Dx(), Height: b.Dy()}
	if b.Empty() {
		return st
	}
	bg := img.At(b.Min.X, b.Min.Y)
	br, bgG, bb, ba := bg.RGBA()
	colours := map[[4]uint32]struct{}{}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, a := img.At(x, y).RGBA()
			colours[[4]uint32{r, g, bl, a}] = struct{}{}
			if r != br || g != bgG || bl != bb || a != ba {
				st.Foreground++
			}
		}
	}
	st.Colours = len(colours)
	return st
}
