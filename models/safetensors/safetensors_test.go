package safetensors

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// build assembles a file from a raw header string and data, padding nothing.
func build(header string, data []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, uint64(len(header)))
	b.WriteString(header)
	b.Write(data)
	return b.Bytes()
}

func parse(t *testing.T, file []byte) (*Header, error) {
	t.Helper()
	return ParseHeader("test.safetensors", bytes.NewReader(file), int64(len(file)))
}

func TestParseValid(t *testing.T) {
	file := build(`{"__metadata__":{"format":"pt"},"b":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]},`+
		`"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"s":{"dtype":"I64","shape":[],"data_offsets":[12,20]},`+
		`"e":{"dtype":"U8","shape":[0,3],"data_offsets":[20,20]}}  `, make([]byte, 20))
	h, err := parse(t, file)
	if err != nil {
		t.Fatal(err)
	}
	if h.Metadata["format"] != "pt" || len(h.Tensors) != 4 || h.Tensors[0].Name != "a" || h.Tensors[2].Name != "s" {
		t.Fatalf("parsed %+v", h)
	}
	if h.Tensors[2].NumElements() != 1 || len(h.Tensors[2].Shape) != 0 {
		t.Fatalf("scalar: %+v", h.Tensors[2])
	}
}

func TestParseRejectsMalformed(t *testing.T) {
	f32 := func(off string, shape string) string {
		return `{"dtype":"F32","shape":` + shape + `,"data_offsets":` + off + `}`
	}
	cases := []struct {
		name, header string
		data         int
		want         string
	}{
		{"not an object", `[1,2]`, 0, "not a JSON object"},
		{"bad json", `{"a":`, 0, "header JSON"},
		{"trailing", `{} {}`, 0, "trailing"},
		{"unknown dtype", `{"a":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}}`, 1, `"a": unknown dtype`},
		{"missing shape", `{"a":{"dtype":"F32","data_offsets":[0,4]}}`, 4, "missing shape"},
		{"unknown field", `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}`, 4, "unknown field"},
		{"three offsets", `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,4]}}`, 4, "2 entries"},
		{"reversed offsets", `{"a":` + f32("[4,0]", "[1]") + `}`, 4, "end before"},
		{"negative dim", `{"a":` + f32("[0,4]", "[-1]") + `}`, 4, "invalid dimension"},
		{"size mismatch", `{"a":` + f32("[0,8]", "[3]") + `}`, 8, "needs 12 bytes"},
		{"overflow", `{"a":` + f32("[0,8]", "[4294967296,4294967296,4294967296]") + `}`, 8, "overflow"},
		{"beyond data", `{"a":` + f32("[0,8]", "[2]") + `}`, 4, "beyond"},
		{"overlap", `{"a":` + f32("[0,8]", "[2]") + `,"b":` + f32("[4,8]", "[1]") + `}`, 8, "overlap"},
		{"gap", `{"a":` + f32("[4,8]", "[1]") + `}`, 8, "gap"},
		{"trailing bytes", `{"a":` + f32("[0,4]", "[1]") + `}`, 8, "trailing bytes"},
		{"duplicate", `{"a":` + f32("[0,4]", "[1]") + `,"a":` + f32("[4,8]", "[1]") + `}`, 8, "twice"},
		{"bad metadata", `{"__metadata__":{"a":1}}`, 0, "__metadata__"},
		{"offsets not numbers", `{"a":{"dtype":"F32","shape":[1],"data_offsets":["0","4"]}}`, 4, "bad header entry"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parse(t, build(c.header, make([]byte, c.data)))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "test.safetensors") {
				t.Fatalf("error %q should name the file and contain %q", err, c.want)
			}
		})
	}
}

func TestParseRejectsBadLengths(t *testing.T) {
	for name, file := range map[string][]byte{
		"short file":         {1, 2, 3},
		"header beyond file": append(binary.LittleEndian.AppendUint64(nil, 1000), "{}"...),
		"huge header":        append(binary.LittleEndian.AppendUint64(nil, 1<<62), "{}"...),
		"empty header":       binary.LittleEndian.AppendUint64(nil, 0),
	} {
		if _, err := parse(t, file); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestWriteReadRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.safetensors")
	in := []Tensor{
		{Name: "z", DType: F32, Shape: []int{2, 2}, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}},
		{Name: "a", DType: BF16, Shape: []int{3}, Data: []byte{1, 2, 3, 4, 5, 6}},
		{Name: "scalar", DType: I32, Shape: nil, Data: []byte{9, 9, 9, 9}},
		{Name: "empty", DType: F16, Shape: []int{0}, Data: nil},
	}
	if err := Write(path, in, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	n := binary.LittleEndian.Uint64(raw)
	if (8+n)%8 != 0 {
		t.Fatalf("header of %d bytes leaves data unaligned", n)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !slices.Equal(f.Names(), []string{"a", "empty", "scalar", "z"}) || f.Header().Metadata["format"] != "pt" {
		t.Fatalf("names %v metadata %v", f.Names(), f.Header().Metadata)
	}
	for _, tt := range in {
		info, ok := f.Info(tt.Name)
		if !ok || info.DType != tt.DType || len(info.Shape) != len(tt.Shape) {
			t.Fatalf("%s: %+v", tt.Name, info)
		}
		got, err := f.ReadBytes(tt.Name)
		if err != nil || !bytes.Equal(got, tt.Data) {
			t.Fatalf("%s: %v %v", tt.Name, got, err)
		}
	}
	// Deterministic: order of input does not matter.
	slices.Reverse(in)
	var a, b bytes.Buffer
	Encode(&a, in, map[string]string{"format": "pt"})
	slices.Reverse(in)
	Encode(&b, in, map[string]string{"format": "pt"})
	if !bytes.Equal(a.Bytes(), b.Bytes()) || !bytes.Equal(a.Bytes(), raw) {
		t.Fatal("encoding is not deterministic")
	}
	if _, err := f.ReadBytes("missing"); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("missing tensor: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
}

func TestWriteRejectsBadTensors(t *testing.T) {
	dir := t.TempDir()
	for name, ts := range map[string][]Tensor{
		"size":      {{Name: "a", DType: F32, Shape: []int{2}, Data: []byte{1}}},
		"dtype":     {{Name: "a", DType: "Q4", Shape: []int{1}, Data: []byte{1}}},
		"duplicate": {{Name: "a", DType: U8, Shape: []int{1}, Data: []byte{1}}, {Name: "a", DType: U8, Shape: []int{1}, Data: []byte{1}}},
		"reserved":  {{Name: MetadataKey, DType: U8, Shape: []int{1}, Data: []byte{1}}},
	} {
		p := filepath.Join(dir, name+".safetensors")
		if err := Write(p, ts, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s: file written despite the error", name)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}
}

func TestOpenTruncatedFileNamesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.safetensors")
	if err := Write(path, []Tensor{{Name: "w", DType: F32, Shape: []int{4}, Data: make([]byte, 16)}}, nil); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	os.WriteFile(path, raw[:len(raw)-3], 0o644)
	_, err := Open(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), `"w"`) {
		t.Fatalf("truncated file: %v", err)
	}
}

// FuzzParseHeader checks the parser never panics and that whatever it accepts is consistent:
// tensors tile the data exactly with sizes matching shapes, and re-encoding reproduces them.
func FuzzParseHeader(f *testing.F) {
	var buf bytes.Buffer
	Encode(&buf, []Tensor{
		{Name: "a", DType: F32, Shape: []int{2}, Data: make([]byte, 8)},
		{Name: "b", DType: BF16, Shape: []int{1, 3}, Data: make([]byte, 6)},
	}, map[string]string{"format": "pt"})
	f.Add(buf.Bytes())
	f.Add(build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)))
	f.Add(build(`{}`, nil))
	f.Fuzz(func(t *testing.T, file []byte) {
		h, err := ParseHeader("fuzz", bytes.NewReader(file), int64(len(file)))
		if err != nil {
			return
		}
		var pos int64
		for _, ti := range h.Tensors {
			if ti.Begin != pos || ti.End-ti.Begin != ti.NumElements()*int64(ti.DType.Size()) {
				t.Fatalf("accepted inconsistent tensor %+v at %d", ti, pos)
			}
			pos = ti.End
		}
		if h.DataStart+pos != int64(len(file)) {
			t.Fatalf("tensors end at %d, file is %d bytes", h.DataStart+pos, len(file))
		}
	})
}
