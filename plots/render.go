package plots

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/go-echarts/go-echarts/v2/opts"

	"github.com/perpetual-ml/perpetual/third_party/echarts"

	"github.com/perpetual-ml/perpetual/harness/results"
	"github.com/perpetual-ml/perpetual/internal/atomicfile"
)

// AssetsDir is the folder, next to the HTML files, that WriteHTML fills with echarts.min.js. The
// pages reference it by this relative path (never a file:// URL, which html/template rewrites to
// "#ZgotmplZ", and never a CDN), so a results folder can be moved or opened offline.
const AssetsDir = "assets"

// page renders the chart as a complete HTML page whose script tag points at assetsHost +
// "echarts.min.js", and with the given chart id (used as a DOM id and a JavaScript variable).
func (c *Chart) page(assetsHost, chartID string, snippet bool) (out []byte, el, script string, err error) {
	if c.build == nil {
		return nil, "", "", fmt.Errorf("plots: chart %q was not made by this package's constructors", c.Name)
	}
	defer func() {
		// go-echarts panics when its template or JSON encoding fails; report it as an error.
		if r := recover(); r != nil {
			err = fmt.Errorf("plots: rendering chart %q: %v", c.Name, r)
		}
	}()
	r := c.build(opts.Initialization{
		PageTitle:       c.Title,
		Width:           fmt.Sprintf("%dpx", c.Width),
		Height:          fmt.Sprintf("%dpx", c.Height),
		BackgroundColor: "#ffffff",
		ChartID:         chartID,
		AssetsHost:      assetsHost,
	})
	if snippet {
		s := r.RenderSnippet()
		return nil, s.Element, s.Script, nil
	}
	var buf bytes.Buffer
	if err := r.Render(&buf); err != nil {
		return nil, "", "", fmt.Errorf("plots: rendering chart %q: %w", c.Name, err)
	}
	return buf.Bytes(), "", "", nil
}

// HTML returns the chart as a standalone page that loads AssetsDir/echarts.min.js.
func (c *Chart) HTML() ([]byte, error) {
	b, _, _, err := c.page(AssetsDir+"/", jsIdent(c.Name), false)
	return b, err
}

var notebookSerial atomic.Int64

// NotebookHTML returns the chart as an HTML fragment (a div and the script that draws into it) for
// inline display, e.g. with gonbui.DisplayHTML. It expects the page to have ECharts loaded:
// display NotebookScript once before the first chart. Every call uses a fresh element id, so
// re-running a notebook cell does not collide with the chart drawn the previous time.
func (c *Chart) NotebookHTML() (string, error) {
	id := fmt.Sprintf("%s_nb%d_%d", jsIdent(c.Name), os.Getpid(), notebookSerial.Add(1))
	_, el, script, err := c.page("", id, true)
	if err != nil {
		return "", err
	}
	return el + "\n" + script, nil
}

// NotebookScript returns a <script> element with ECharts inlined (about 1 MB), for notebooks and
// other pages that cannot reach the assets folder. It defines the global "echarts" only if the
// page does not have it yet.
func NotebookScript() string {
	return "<script type=\"text/javascript\">\nif (typeof window.echarts === 'undefined') {\n" +
		string(echarts.MinJS) + "\n}\n</script>"
}

// WriteAssets writes dir/AssetsDir/echarts.min.js (skipping the write when an identical copy is
// already there, so repeated renders leave its modification time alone).
func WriteAssets(dir string) error {
	assets := filepath.Join(dir, AssetsDir)
	if err := os.MkdirAll(assets, 0o755); err != nil {
		return fmt.Errorf("plots: %w", err)
	}
	path := filepath.Join(assets, echarts.FileName)
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, echarts.MinJS) {
		return nil
	}
	return atomicfile.WriteFile(path, echarts.MinJS)
}

// Output names the files written for one chart; PNG is empty when no image was asked for.
type Output struct {
	Chart *Chart
	HTML  string
	PNG   string
}

// Options controls Render.
type Options struct {
	// PNG also writes a screenshot of every HTML page, with headless Chromium.
	PNG bool
	// Chromium is the browser binary; empty means FindChromium.
	Chromium string
}

// Render writes every chart of res into dir as NAME.html (plus NAME.png when o.PNG), with the
// ECharts script in dir/AssetsDir. Every PNG is checked not to be blank, which catches a page
// whose script failed to load.
func Render(ctx context.Context, res *results.Summary, dir string, o Options) ([]Output, error) {
	if err := res.Validate(); err != nil {
		return nil, fmt.Errorf("plots: %w", err)
	}
	chs := Build(res)
	if len(chs) == 0 {
		return nil, errors.New("plots: the results have no cells, loss, recall or curve points: nothing to chart")
	}
	if err := WriteAssets(dir); err != nil {
		return nil, err
	}
	chromium := o.Chromium
	if o.PNG && chromium == "" {
		var err error
		if chromium, err = FindChromium(); err != nil {
			return nil, err
		}
	}
	var browser *Browser
	if o.PNG {
		var err error
		if browser, err = StartBrowser(ctx, chromium); err != nil {
			return nil, err
		}
		defer browser.Close()
	}
	var out []Output
	for _, c := range chs {
		page, err := c.HTML()
		if err != nil {
			return nil, err
		}
		o1 := Output{Chart: c, HTML: filepath.Join(dir, c.Name+".html")}
		if err := atomicfile.WriteFile(o1.HTML, page); err != nil {
			return nil, err
		}
		if o.PNG {
			o1.PNG = filepath.Join(dir, c.Name+".png")
			if err := browser.Screenshot(o1.HTML, o1.PNG, c.Width, c.Height); err != nil {
				return nil, err
			}
			st, err := InspectPNG(o1.PNG)
			if err != nil {
				return nil, err
			}
			if err := st.NotBlank(); err != nil {
				return nil, fmt.Errorf("plots: %s: %w (did %s load?)", o1.PNG, err, filepath.Join(AssetsDir, echarts.FileName))
			}
		}
		out = append(out, o1)
	}
	return out, nil
}

// jsIdent turns a chart name into a JavaScript identifier (go-echarts declares variables with it).
func jsIdent(name string) string {
	b := []byte("chart_" + name)
	for i, ch := range b {
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}
