// Package procfs reads the Linux /proc figures the trainer and `perpetual bench` report and check
// memory against (MemAvailable, VmHWM).
package procfs

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// Bytes is field (e.g. "MemAvailable:" in /proc/meminfo, "VmHWM:" in /proc/self/status) of the
// /proc file at path, given there in kB, in bytes; 0 where the file or the field is missing.
func Bytes(path, field string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == field {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}
