package plots

import (
	"context"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perpetual-ml/perpetual/internal/testenv"
)

// chromiumOrSkip returns the browser. Without one, the test fails in CI (.ci/run installs Debian's
// chromium, so a missing browser there is a broken setup) and skips loudly elsewhere.
func chromiumOrSkip(t *testing.T) string {
	t.Helper()
	p, err := FindChromium()
	if err == nil {
		return p
	}
	testenv.Require(t, "Chromium (PNG rendering)", err)
	return ""
}

func TestRenderWritesHTMLAndNonBlankPNGs(t *testing.T) {
	chromium := chromiumOrSkip(t)
	res := loadFixture(t)
	dir := t.TempDir()
	out, err := Render(context.Background(), res, dir, Options{PNG: true, Chromium: chromium})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(Build(res)) {
		t.Fatalf("%d outputs for %d charts", len(out), len(Build(res)))
	}
	for _, o := range out {
		page, err := os.ReadFile(o.HTML)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(page), `src="assets/echarts.min.js"`) {
			t.Errorf("%s does not load the local asset", o.HTML)
		}
		st, err := InspectPNG(o.PNG)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.NotBlank(); err != nil {
			t.Errorf("%s: %v", o.PNG, err)
		}
		if st.Width < o.Chart.Width || st.Height < o.Chart.Height {
			t.Errorf("%s: %dx%d image for a %dx%d chart", o.PNG, st.Width, st.Height, o.Chart.Width, o.Chart.Height)
		}
		dark := darkPixels(t, o.PNG)
		t.Logf("%s: %dx%d, %d colours, %d foreground pixels, %d whisker-dark pixels", filepath.Base(o.PNG), st.Width, st.Height, st.Colours, st.Foreground, dark)
		// The error bars are the only near-black marks (#222; text and axes are grey): accuracy
		// charts must show them, the others must not.
		switch kind := strings.SplitN(o.Chart.Name, "-", 2)[0]; {
		case kind == KindAccuracy && dark < 400:
			t.Errorf("%s: only %d near-black pixels, the error bars are missing", o.PNG, dark)
		case kind != KindAccuracy && dark > 250:
			t.Errorf("%s: %d near-black pixels on a chart without error bars", o.PNG, dark)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, AssetsDir, "echarts.min.js")); err != nil {
		t.Fatal(err)
	}
}

// Without the assets folder the page cannot draw: the blank check must notice, which is what makes
// the check above meaningful.
func TestScreenshotWithoutAssetIsBlank(t *testing.T) {
	chromium := chromiumOrSkip(t)
	c := chartByName(t, loadFixture(t), "accuracy-papers-letters")
	page, err := c.HTML()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	html, png := filepath.Join(dir, "x.html"), filepath.Join(dir, "x.png")
	if err := os.WriteFile(html, page, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Screenshot(context.Background(), chromium, html, png, c.Width, c.Height); err != nil {
		t.Fatal(err)
	}
	st, err := InspectPNG(png)
	if err != nil {
		t.Fatal(err)
	}
	if st.NotBlank() == nil {
		t.Fatalf("page without echarts.min.js passed the blank check: %+v", st)
	}
}

func TestScreenshotErrors(t *testing.T) {
	err := Screenshot(context.Background(), "chromium", filepath.Join(t.TempDir(), "missing.html"), "x.png", 10, 10)
	if err == nil || !strings.Contains(err.Error(), "missing.html") {
		t.Fatalf("missing page: %v", err)
	}
	t.Setenv(ChromiumEnv, "/nonexistent/chromium")
	if _, err := FindChromium(); err == nil || !strings.Contains(err.Error(), ChromiumEnv) {
		t.Fatalf("bad %s: %v", ChromiumEnv, err)
	}
}

func TestInspect(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 100, 100))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	if err := inspect(img).NotBlank(); err == nil {
		t.Fatal("white image passed")
	}
	for y := 10; y < 40; y++ {
		for x := 10; x < 90; x++ {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), 100, 255})
		}
	}
	st := inspect(img)
	if st.Foreground != 30*80 || st.Colours != 30*80+1 {
		t.Fatalf("stats %+v", st)
	}
	if err := st.NotBlank(); err != nil {
		t.Fatal(err)
	}
	if _, err := InspectPNG(filepath.Join(t.TempDir(), "none.png")); err == nil {
		t.Fatal("missing file accepted")
	}
	bad := filepath.Join(t.TempDir(), "bad.png")
	os.WriteFile(bad, []byte("not a png"), 0o644)
	if _, err := InspectPNG(bad); err == nil || !strings.Contains(err.Error(), "bad.png") {
		t.Fatalf("corrupt file: %v", err)
	}
}

// darkPixels counts pixels whose channels are all below 60 (of 255).
func darkPixels(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r < 60<<8 && g < 60<<8 && bl < 60<<8 {
				n++
			}
		}
	}
	return n
}
