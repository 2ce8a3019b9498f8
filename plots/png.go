package plots

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
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

// screenshotTimeout bounds one browser run; a first start on a cold machine takes a few seconds.
const screenshotTimeout = 90 * time.Second

// Screenshot loads htmlPath in headless Chromium and writes a PNG of a viewport that fits a chart
// of width x height CSS pixels (plus the page margins go-echarts adds) to pngPath. Each run gets
// its own throw-away profile, so concurrent runs do not fight over a profile lock, and network
// features are off: the page must work offline.
func Screenshot(ctx context.Context, chromium, htmlPath, pngPath string, width, height int) error {
	absHTML, err := filepath.Abs(htmlPath)
	if err != nil {
		return fmt.Errorf("plots: %w", err)
	}
	absPNG, err := filepath.Abs(pngPath)
	if err != nil {
		return fmt.Errorf("plots: %w", err)
	}
	if _, err := os.Stat(absHTML); err != nil {
		return fmt.Errorf("plots: screenshot: %w", err)
	}
	profile, err := os.MkdirTemp("", "perpetual-chromium-")
	if err != nil {
		return fmt.Errorf("plots: %w", err)
	}
	defer os.RemoveAll(profile)
	// Write to a temporary name so a failed run never leaves a stale image under the real name.
	tmpPNG := absPNG + ".tmp.png"
	os.Remove(tmpPNG)
	ctx, cancel := context.WithTimeout(ctx, screenshotTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium,
		"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-extensions", "--no-first-run", "--no-default-browser-check", "--mute-audio",
		"--hide-scrollbars", "--force-device-scale-factor=1",
		"--user-data-dir="+profile,
		// Lets the page's scripts run to completion before the picture is taken.
		"--virtual-time-budget=5000",
		fmt.Sprintf("--window-size=%d,%d", width+40, height+60),
		"--screenshot="+tmpPNG,
		"file://"+absHTML)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = append(os.Environ(), "HOME="+profile)
	runErr := cmd.Run()
	if _, err := os.Stat(tmpPNG); err != nil {
		if runErr == nil {
			runErr = errors.New("no screenshot written")
		}
		return fmt.Errorf("plots: screenshot of %s with %s: %v\n%s", htmlPath, chromium, runErr, tail(out.String(), 2000))
	}
	if err := os.Rename(tmpPNG, absPNG); err != nil {
		return fmt.Errorf("plots: %w", err)
	}
	return nil
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

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
