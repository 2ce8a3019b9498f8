//go:build !unix

package bench

// cpuSeconds is unknown off Unix.
func cpuSeconds() (float64, bool) { return 0, false }
