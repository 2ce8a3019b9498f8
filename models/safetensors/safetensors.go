// Package safetensors reads and writes the safetensors file format of Hugging Face checkpoints:
// an 8-byte little-endian header length, a JSON header mapping tensor names to
// {dtype, shape, data_offsets} (plus an optional "__metadata__" string map), then the raw
// little-endian tensor bytes.
//
// Perpetual has its own implementation rather than go-huggingface's because that one only
// reads, and because checkpoints come from the network and from our own trainer: the parser
// validates everything (header bounds, offsets that exactly tile the data, byte sizes that match
// shapes, known dtypes) before trusting any number, so a damaged file gives an error naming the
// file and the tensor instead of a panic or a huge allocation. Tensors are read lazily with
// ReadAt, one at a time, so opening a multi-gigabyte shard costs only its header.
package safetensors

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"sort"

	"github.com/perpetual-ml/perpetual/internal/atomicfile"
)

// DType is a safetensors dtype string.
type DType string

// The dtypes Perpetual understands.
const (
	F64  DType = "F64"
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	I64  DType = "I64"
	I32  DType = "I32"
	I16  DType = "I16"
	I8   DType = "I8"
	U8   DType = "U8"
	BOOL DType = "BOOL"
)

// Size is the number of bytes of one element, or 0 for an unknown dtype.
func (d DType) Size() int {
	switch d {
	case F64, I64:
		return 8
	case F32, I32:
		return 4
	case F16, BF16, I16:
		return 2
	case I8, U8, BOOL:
		return 1
	}
	return 0
}

// MaxHeaderSize bounds the JSON header (the format's own reference implementation uses 100 MB).
const MaxHeaderSize = 100 << 20

// MetadataKey is the reserved header entry holding the string-to-string metadata.
const MetadataKey = "__metadata__"

// TensorInfo describes one tensor of a file. Begin and End are byte offsets relative to the
// start of the data section (the "data_offsets" of the header).
type TensorInfo struct {
	Name       string
	DType      DType
	Shape      []int
	Begin, End int64
}

// NumElements is the product of the shape (1 for a scalar).
func (t TensorInfo) NumElements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= int64(d)
	}
	return n
}

// Header is the parsed, validated header of a file.
type Header struct {
	// Tensors in data order (by Begin).
	Tensors []TensorInfo
	// Metadata is the "__metadata__" map (nil if absent).
	Metadata map[string]string
	// DataStart is the file offset of the data section (8 + header length).
	DataStart int64
}

type headerEntry struct {
	DType       DType    `json:"dtype"`
	Shape       []int64  `json:"shape"`
	DataOffsets []uint64 `json:"data_offsets"`
}

// ParseHeader reads and validates the header of a safetensors stream of the given total size.
// name is used in error messages (usually the file path).
func ParseHeader(name string, r io.ReaderAt, size int64) (*Header, error) {
	if size < 8 {
		return nil, fmt.Errorf("%s: not a safetensors file: %d bytes, need at least 8", name, size)
	}
	var lenBuf [8]byte
	if _, err := r.ReadAt(lenBuf[:], 0); err != nil {
		return nil, fmt.Errorf("%s: reading header length: %w", name, err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > MaxHeaderSize {
		return nil, fmt.Errorf("%s: header length %d exceeds the %d-byte limit", name, n, MaxHeaderSize)
	}
	if n > uint64(size-8) {
		return nil, fmt.Errorf("%s: header length %d exceeds the file (%d bytes): truncated or not safetensors", name, n, size)
	}
	if n < 2 {
		return nil, fmt.Errorf("%s: header length %d is too short for a JSON object", name, n)
	}
	raw := make([]byte, n)
	if _, err := r.ReadAt(raw, 8); err != nil {
		return nil, fmt.Errorf("%s: reading header: %w", name, err)
	}
	h, err := parseHeaderJSON(name, raw, size-8-int64(n))
	if err != nil {
		return nil, err
	}
	h.DataStart = 8 + int64(n)
	return h, nil
}

// parseHeaderJSON validates the header JSON against a data section of dataSize bytes.
func parseHeaderJSON(name string, raw []byte, dataSize int64) (*Header, error) {
	trimmed := bytes.TrimRight(raw, " ")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, fmt.Errorf("%s: header is not a JSON object", name)
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("%s: header is not a JSON object", name)
	}
	h := &Header{}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%s: header JSON: %w", name, err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("%s: header JSON: unexpected %v", name, tok)
		}
		if seen[key] {
			return nil, fmt.Errorf("%s: header lists %q twice", name, key)
		}
		seen[key] = true
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, fmt.Errorf("%s: header JSON at %q: %w", name, key, err)
		}
		if key == MetadataKey {
			if err := strictUnmarshal(value, &h.Metadata); err != nil {
				return nil, fmt.Errorf("%s: %s must map strings to strings: %w", name, MetadataKey, err)
			}
			continue
		}
		info, err := parseEntry(key, value)
		if err != nil {
			return nil, fmt.Errorf("%s: tensor %q: %w", name, key, err)
		}
		h.Tensors = append(h.Tensors, info)
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("%s: header JSON: %w", name, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s: trailing data after the header JSON object", name)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%s: trailing data after the header JSON object", name)
	}
	// The tensors must tile the data section exactly: sorted by offset, each starting where the
	// previous one ends, the last ending at the end of the file.
	sort.SliceStable(h.Tensors, func(i, j int) bool {
		a, b := h.Tensors[i], h.Tensors[j]
		if a.Begin != b.Begin {
			return a.Begin < b.Begin
		}
		return a.End < b.End
	})
	var pos int64
	for _, t := range h.Tensors {
		if t.End > dataSize {
			return nil, fmt.Errorf("%s: tensor %q: data_offsets [%d, %d] beyond the %d data bytes (truncated file?)",
				name, t.Name, t.Begin, t.End, dataSize)
		}
		if t.Begin < pos {
			return nil, fmt.Errorf("%s: tensor %q: data_offsets [%d, %d] overlap the previous tensor (ends at %d)",
				name, t.Name, t.Begin, t.End, pos)
		}
		if t.Begin > pos {
			return nil, fmt.Errorf("%s: tensor %q: gap of %d bytes before its data_offsets [%d, %d]",
				name, t.Name, t.Begin-pos, t.Begin, t.End)
		}
		pos = t.End
	}
	if pos != dataSize {
		return nil, fmt.Errorf("%s: tensors cover %d of the %d data bytes: %d trailing bytes",
			name, pos, dataSize, dataSize-pos)
	}
	return h, nil
}

func strictUnmarshal(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func parseEntry(name string, raw json.RawMessage) (TensorInfo, error) {
	var e headerEntry
	if err := strictUnmarshal(raw, &e); err != nil {
		return TensorInfo{}, fmt.Errorf("bad header entry: %w", err)
	}
	if e.DType.Size() == 0 {
		return TensorInfo{}, fmt.Errorf("unknown dtype %q", e.DType)
	}
	if e.Shape == nil {
		return TensorInfo{}, errors.New("missing shape")
	}
	if len(e.DataOffsets) != 2 {
		return TensorInfo{}, fmt.Errorf("data_offsets must have 2 entries, got %d", len(e.DataOffsets))
	}
	begin, end := e.DataOffsets[0], e.DataOffsets[1]
	if begin > end {
		return TensorInfo{}, fmt.Errorf("data_offsets [%d, %d] end before they begin", begin, end)
	}
	if end > math.MaxInt64 {
		return TensorInfo{}, fmt.Errorf("data_offsets end %d out of range", end)
	}
	// Byte size = product(shape) * element size, checked for overflow at every step.
	elems := uint64(1)
	shape := make([]int, len(e.Shape))
	for i, d := range e.Shape {
		if d < 0 || d > math.MaxInt32*int64(1<<16) {
			return TensorInfo{}, fmt.Errorf("shape %v has invalid dimension %d", e.Shape, d)
		}
		hi, lo := bits.Mul64(elems, uint64(d))
		if hi != 0 || lo > math.MaxInt64 {
			return TensorInfo{}, fmt.Errorf("shape %v overflows", e.Shape)
		}
		elems = lo
		shape[i] = int(d)
	}
	hi, byteSize := bits.Mul64(elems, uint64(e.DType.Size()))
	if hi != 0 || byteSize > math.MaxInt64 {
		return TensorInfo{}, fmt.Errorf("shape %v of %s overflows", e.Shape, e.DType)
	}
	if byteSize != end-begin {
		return TensorInfo{}, fmt.Errorf("shape %v of %s needs %d bytes but data_offsets [%d, %d] hold %d",
			e.Shape, e.DType, byteSize, begin, end, end-begin)
	}
	return TensorInfo{Name: name, DType: e.DType, Shape: shape, Begin: int64(begin), End: int64(end)}, nil
}

// File is an open safetensors file whose tensors are read on demand.
type File struct {
	path   string
	f      *os.File
	header *Header
	byName map[string]int
}

// Open opens and validates a safetensors file. Only the header is read.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	h, err := ParseHeader(path, f, st.Size())
	if err != nil {
		f.Close()
		return nil, err
	}
	byName := make(map[string]int, len(h.Tensors))
	for i, t := range h.Tensors {
		byName[t.Name] = i
	}
	return &File{path: path, f: f, header: h, byName: byName}, nil
}

// Path is the file's path.
func (f *File) Path() string { return f.path }

// Header is the validated header.
func (f *File) Header() *Header { return f.header }

// Names lists the tensor names, sorted.
func (f *File) Names() []string {
	names := make([]string, 0, len(f.header.Tensors))
	for _, t := range f.header.Tensors {
		names = append(names, t.Name)
	}
	sort.Strings(names)
	return names
}

// Info describes a tensor by name.
func (f *File) Info(name string) (TensorInfo, bool) {
	i, ok := f.byName[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.header.Tensors[i], true
}

// ReadBytes reads the raw little-endian bytes of a tensor.
func (f *File) ReadBytes(name string) ([]byte, error) {
	info, ok := f.Info(name)
	if !ok {
		return nil, fmt.Errorf("%s: no tensor %q", f.path, name)
	}
	buf := make([]byte, info.End-info.Begin)
	if len(buf) == 0 {
		return buf, nil
	}
	if _, err := f.f.ReadAt(buf, f.header.DataStart+info.Begin); err != nil {
		return nil, fmt.Errorf("%s: reading tensor %q: %w", f.path, name, err)
	}
	return buf, nil
}

// Close releases the file.
func (f *File) Close() error { return f.f.Close() }

// Tensor is a tensor to write: dtype, shape and raw little-endian bytes.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
}

// Encode writes tensors and metadata in safetensors format to w. Output is deterministic:
// tensors sorted by name, header padded with spaces to a multiple of 8 bytes (as Hugging Face
// does, so the data section is aligned).
func Encode(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	sorted := make([]Tensor, len(tensors))
	copy(sorted, tensors)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	var hdr bytes.Buffer
	hdr.WriteByte('{')
	first := true
	writeKey := func(k string) {
		if !first {
			hdr.WriteByte(',')
		}
		first = false
		kb, _ := json.Marshal(k)
		hdr.Write(kb)
		hdr.WriteByte(':')
	}
	if len(metadata) > 0 {
		writeKey(MetadataKey)
		mb, err := json.Marshal(metadata) // encoding/json sorts map keys
		if err != nil {
			return err
		}
		hdr.Write(mb)
	}
	var offset int64
	for i, t := range sorted {
		if t.Name == MetadataKey || t.Name == "" {
			return fmt.Errorf("safetensors: invalid tensor name %q", t.Name)
		}
		if i > 0 && sorted[i-1].Name == t.Name {
			return fmt.Errorf("safetensors: tensor %q given twice", t.Name)
		}
		if t.DType.Size() == 0 {
			return fmt.Errorf("safetensors: tensor %q: unknown dtype %q", t.Name, t.DType)
		}
		elems := int64(1)
		for _, d := range t.Shape {
			if d < 0 {
				return fmt.Errorf("safetensors: tensor %q: negative dimension in %v", t.Name, t.Shape)
			}
			elems *= int64(d)
		}
		if want := elems * int64(t.DType.Size()); want != int64(len(t.Data)) {
			return fmt.Errorf("safetensors: tensor %q: shape %v of %s needs %d bytes, got %d",
				t.Name, t.Shape, t.DType, want, len(t.Data))
		}
		writeKey(t.Name)
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		sb, _ := json.Marshal(shape)
		fmt.Fprintf(&hdr, `{"dtype":%q,"shape":%s,"data_offsets":[%d,%d]}`, t.DType, sb, offset, offset+int64(len(t.Data)))
		offset += int64(len(t.Data))
	}
	hdr.WriteByte('}')
	for hdr.Len()%8 != 0 {
		hdr.WriteByte(' ')
	}
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(hdr.Len()))
	if _, err := w.Write(lenBuf[:]); err != nil {
		return err
	}
	if _, err := w.Write(hdr.Bytes()); err != nil {
		return err
	}
	for _, t := range sorted {
		if _, err := w.Write(t.Data); err != nil {
			return err
		}
	}
	return nil
}

// Write writes a safetensors file atomically: to a temporary file in the same folder, synced,
// then renamed over path, so readers never see a half-written file.
func Write(path string, tensors []Tensor, metadata map[string]string) error {
	return WriteAtomic(path, func(w io.Writer) error { return Encode(w, tensors, metadata) })
}

// WriteAtomic creates path with the content fill writes, through package atomicfile (a synced
// temporary file in the same folder, the project's permissions, a rename). On error nothing is
// left behind.
func WriteAtomic(path string, fill func(w io.Writer) error) error {
	return atomicfile.Write(path, func(w io.Writer) error {
		bw := newBufferedWriter(w)
		if err := fill(bw); err != nil {
			return err
		}
		return bw.Flush()
	})
}

// newBufferedWriter batches the many small writes of Encode (1 MiB buffer).
func newBufferedWriter(w io.Writer) *bufio.Writer { return bufio.NewWriterSize(w, 1<<20) }
