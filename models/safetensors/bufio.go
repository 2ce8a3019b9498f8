package safetensors

import (
	"bufio"
	"io"
)

// newBufferedWriter batches the many small writes of Encode (1 MiB buffer).
func newBufferedWriter(w io.Writer) *bufio.Writer { return bufio.NewWriterSize(w, 1<<20) }
