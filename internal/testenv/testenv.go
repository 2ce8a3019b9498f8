// Package testenv decides what a test does when something outside the repository that it needs
// (the Perpetual reference data in ../shared, a module in the module cache, a browser, a
// system package) is missing: on a developer's machine it skips, loudly; under CI=true it fails,
// because .ci/run installs every such dependency and a missing one there is a broken setup, not
// a reason to pass. Every test with an external dependency goes through Require, so there is one
// policy.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// InCI reports whether the tests run under CI (the CI environment variable is set, as .ci/run
// sets it).
func InCI() bool { return os.Getenv("CI") != "" }

// Require skips t (fails it under CI) when err, the outcome of looking for dependency what, is
// not nil.
func Require(t testing.TB, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if InCI() {
		t.Fatalf("CI is set but %s is missing: %v (.ci/run must install it)", what, err)
		return
	}
	t.Skipf("\n*** SKIPPING: %s is missing: %v ***\n*** (under CI=true this fails instead) ***", what, err)
}

// ModuleDir is the module cache folder of module path at the version go.mod requires (as
// `go list -m` reports it), for tests that read a real Go code base; Require decides when it is
// missing.
func ModuleDir(t testing.TB, path string) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", path).Output()
	dir := strings.TrimSpace(string(out))
	if err == nil && dir == "" {
		err = fmt.Errorf("go list -m %s: not downloaded (run go mod download)", path)
	}
	if err == nil {
		_, err = os.Stat(dir)
	}
	Require(t, "module "+path+" in the module cache", err)
	return dir
}

// File returns path after Require-ing that it exists (reference data beside the repository,
// a file a system package installs).
func File(t testing.TB, what, path string) string {
	t.Helper()
	_, err := os.Stat(path)
	Require(t, what, err)
	return path
}
