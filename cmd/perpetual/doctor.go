package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/perpetual-ml/perpetual/models/backend"
)

// newDoctorCmd builds the `doctor` command (fresh flags on every call).
func newDoctorCmd() *cobra.Command {
	var checkModel func(*cobra.Command) error
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Print the compute backend, versions and installed PJRT plugins",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "go:       %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
			fmt.Fprintf(out, "gomlx:    %s\n", moduleVersion("github.com/gomlx/gomlx"))
			fmt.Fprintf(out, "compute:  %s\n", moduleVersion("github.com/gomlx/compute"))
			fmt.Fprintf(out, "go-xla:   %s\n", moduleVersion("github.com/gomlx/go-xla"))
			for _, p := range backend.FindPJRTPlugins() {
				fmt.Fprintf(out, "plugin:   %s\n", p)
			}
			fmt.Fprintf(out, "config:   %s=%q\n", backend.EnvVar, backend.Config())
			b, err := backend.New()
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "backend:  %s (%s)\n", b.Name(), b.Description())
			return checkModel(cmd)
		},
	}
	checkModel = doctorModelCheck(cmd)
	return cmd
}

func moduleVersion(path string) string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, dep := range info.Deps {
		if dep.Path == path {
			return dep.Version
		}
	}
	return "not linked"
}
