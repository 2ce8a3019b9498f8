//go:build tools

// Package gonbdeps pins github.com/janpfeifer/gonb in go.mod: notebooks import gonbui through the
// project module (notebooks/run.sh replaces it with the working tree), and the module proxy
// refuses the version lookup GoNB would otherwise make. The build tag keeps it out of builds;
// `go mod tidy` still sees the import.
package gonbdeps

import _ "github.com/janpfeifer/gonb/gonbui"
