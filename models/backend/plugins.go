package backend

import (
	"os"
	"path/filepath"
	"sort"
)

// pluginGlobs are where pip wheels (jax-cuda12/13-pjrt) put CUDA PJRT plugins.
var pluginGlobs = []string{
	"/usr/lib/python3*/site-packages/jax_plugins/*/xla_cuda_plugin.so",
	"/usr/local/lib/python3*/site-packages/jax_plugins/*/xla_cuda_plugin.so",
	"/usr/local/lib/python3*/dist-packages/jax_plugins/*/xla_cuda_plugin.so",
	"/usr/lib/python3/dist-packages/jax_plugins/*/xla_cuda_plugin.so",
	"/opt/conda/lib/python3*/site-packages/jax_plugins/*/xla_cuda_plugin.so",
	"/root/.local/lib/python3*/site-packages/jax_plugins/*/xla_cuda_plugin.so",
	"/root/.pyenv/versions/*/lib/python3*/site-packages/jax_plugins/*/xla_cuda_plugin.so",
}

// FindPJRTPlugins lists CUDA PJRT plugins already installed on this machine, for `perpetual doctor`
// to suggest as GOMLX_BACKEND=xla:<path>. $PJRT_PLUGIN_LIBRARY_PATH and $VIRTUAL_ENV are searched too.
func FindPJRTPlugins() []string {
	globs := append([]string(nil), pluginGlobs...)
	if venv := os.Getenv("VIRTUAL_ENV"); venv != "" {
		globs = append(globs, filepath.Join(venv, "lib/python3*/site-packages/jax_plugins/*/xla_cuda_plugin.so"))
	}
	if dir := os.Getenv("PJRT_PLUGIN_LIBRARY_PATH"); dir != "" {
		globs = append(globs, filepath.Join(dir, "*.so"))
	}
	seen := map[string]bool{}
	var found []string
	for _, g := range globs {
		matches, _ := filepath.Glob(g)
		for _, m := range matches {
			if !seen[m] {
				seen[m] = true
				found = append(found, m)
			}
		}
	}
	sort.Strings(found)
	return found
}
