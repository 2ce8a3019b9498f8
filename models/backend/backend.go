// Package backend chooses the GoMLX compute backend Perpetual runs on.
//
// The pure-Go backend is the default: it needs nothing installed and is what CI and CPU machines
// use. XLA/PJRT is used only when GOMLX_BACKEND asks for it ("xla:/abs/path/xla_cuda_plugin.so"
// or "xla:cuda"); the plugin is never downloaded, so an offline GPU box fails with a message that
// says how to point at an installed plugin instead of hanging on the network.
package backend

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend"  // Registers the "go" backend.
	_ "github.com/gomlx/go-xla/compute/xla" // Registers the "xla" backend, without its auto-installer.
)

// EnvVar is the environment variable GoMLX reads the backend configuration from.
const EnvVar = compute.ConfigEnvVar

// DefaultConfig is used when EnvVar is unset: the Go backend on all cores.
const DefaultConfig = "go"

var (
	mu      sync.Mutex
	current compute.Backend
)

// Config returns the backend configuration that New will use: $GOMLX_BACKEND, or DefaultConfig.
func Config() string {
	if c := strings.TrimSpace(os.Getenv(EnvVar)); c != "" {
		return c
	}
	return DefaultConfig
}

// New creates the backend named by Config. It is safe to call many times; use Shared to reuse one.
func New() (compute.Backend, error) {
	return NewWithConfig(Config())
}

// Shared returns a process-wide backend created on first use with New.
func Shared() (compute.Backend, error) {
	mu.Lock()
	defer mu.Unlock()
	if current != nil {
		return current, nil
	}
	b, err := New()
	if err != nil {
		return nil, err
	}
	current = b
	return b, nil
}

// NewWithConfig creates a backend from a "name:options" configuration string.
func NewWithConfig(config string) (b compute.Backend, err error) {
	name, options, _ := strings.Cut(config, ":")
	switch name {
	case "go":
	case "xla", "stablehlo", "hlo", "shlo":
		// Never let go-xla try to download a plugin: machines running Perpetual are often offline.
		if err := os.Setenv("GOMLX_NO_AUTO_INSTALL", "1"); err != nil {
			return nil, err
		}
		if err := checkPlugin(options); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%s=%q: unknown backend %q; use \"go\" (CPU) or \"xla:/abs/path/xla_cuda_plugin.so\" (GPU)", EnvVar, config, name)
	}
	// Backend constructors panic on some misconfigurations; turn that into an error for the CLI.
	defer func() {
		if r := recover(); r != nil {
			b, err = nil, fmt.Errorf("creating backend %q: %v", config, r)
		}
	}()
	b, err = compute.NewWithConfig(config)
	if err != nil {
		return nil, fmt.Errorf("creating backend %q: %w%s", config, err, pluginHint(name))
	}
	return b, nil
}

// checkPlugin validates an explicit plugin path before PJRT tries to dlopen it.
func checkPlugin(options string) error {
	plugin, _, _ := strings.Cut(options, ",")
	if plugin == "" {
		return fmt.Errorf("%s=xla needs a PJRT plugin: set %s=xla:/abs/path/xla_cuda_plugin.so (see `perpetual doctor`)", EnvVar, EnvVar)
	}
	if !strings.ContainsRune(plugin, '/') {
		return nil // A plugin name ("cuda", "cpu") that PJRT looks up in its search path.
	}
	if !filepath.IsAbs(plugin) {
		return fmt.Errorf("%s: PJRT plugin path %q must be absolute", EnvVar, plugin)
	}
	if _, err := os.Stat(plugin); err != nil {
		return fmt.Errorf("%s: PJRT plugin %q: %w", EnvVar, plugin, err)
	}
	return nil
}

func pluginHint(name string) string {
	if name == "go" {
		return ""
	}
	return "\n(offline machines: point at an installed plugin, e.g. " + EnvVar +
		"=xla:<site-packages>/jax_plugins/xla_cuda13/xla_cuda_plugin.so; `perpetual doctor` searches for one)"
}
