package backend

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/graph"
)

func TestDefaultIsGoBackendAndComputes(t *testing.T) {
	t.Setenv(EnvVar, "")
	if got := Config(); got != DefaultConfig {
		t.Fatalf("Config() = %q, want %q", got, DefaultConfig)
	}
	b, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if b.Name() != "go" && !strings.Contains(strings.ToLower(b.Name()), "go") {
		t.Fatalf("default backend is %q, want the Go backend", b.Name())
	}
	exec, err := graph.NewExec(b, func(x *graph.Node) *graph.Node { return graph.MatMul(x, x) })
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Exec([][]float32{{1, 2}, {3, 4}})
	if err != nil {
		t.Fatal(err)
	}
	got := out[0].Value().([][]float32)
	want := [][]float32{{7, 10}, {15, 22}}
	for i := range want {
		for j := range want[i] {
			if got[i][j] != want[i][j] {
				t.Fatalf("matmul = %v, want %v", got, want)
			}
		}
	}
}

func TestBadConfigsFailClearly(t *testing.T) {
	for config, wantInMessage := range map[string]string{
		"tpu-magic":                "unknown backend",
		"xla":                      "needs a PJRT plugin",
		"xla:relative/plugin.so":   "must be absolute",
		"xla:/nonexistent/cuda.so": "/nonexistent/cuda.so",
	} {
		_, err := NewWithConfig(config)
		if err == nil || !strings.Contains(err.Error(), wantInMessage) {
			t.Errorf("NewWithConfig(%q) error = %v, want one mentioning %q", config, err, wantInMessage)
		}
	}
}

func TestFindPJRTPluginsHonoursPluginPath(t *testing.T) {
	dir := t.TempDir()
	plugin := filepath.Join(dir, "xla_cuda_plugin.so")
	if err := os.WriteFile(plugin, []byte("not really a plugin"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PJRT_PLUGIN_LIBRARY_PATH", dir)
	for _, p := range FindPJRTPlugins() {
		if p == plugin {
			return
		}
	}
	t.Fatalf("FindPJRTPlugins() did not list %s", plugin)
}
