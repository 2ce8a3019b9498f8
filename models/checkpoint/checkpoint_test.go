package checkpoint

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/dtypes/bfloat16"
	"github.com/gomlx/compute/dtypes/float16"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/models/safetensors"
)

var testConfig = json.RawMessage(`{"model_type":"x","hidden_size":4}`)

func testWeights() map[string]*tensors.Tensor {
	return map[string]*tensors.Tensor{
		"a.weight": tensors.FromValue([][]float32{{1, -2.5, 3e-8, float32(math.Inf(1))}, {0.1, 0.2, 0.3, 65504}}),
		"b.weight": tensors.FromValue(bfloat16.FromFloat32s(1, 2, 3.5, -0.001)),
		"c.bias":   tensors.FromValue([]float16.Float16{float16.FromFloat32(0.5), float16.FromFloat32(-7)}),
		"d.ids":    tensors.FromValue([]int32{1, 2, 3}),
	}
}

func bitEqual(a, b *tensors.Tensor) bool {
	if a.DType() != b.DType() || !slices.Equal(a.Shape().Dimensions, b.Shape().Dimensions) {
		return false
	}
	var x, y []byte
	a.ConstBytes(func(d []byte) { x = slices.Clone(d) })
	b.ConstBytes(func(d []byte) { y = slices.Clone(d) })
	return slices.Equal(x, y)
}

func TestSaveOpenRoundTrip(t *testing.T) {
	for _, shard := range []int64{0, 20, 1} {
		dir := filepath.Join(t.TempDir(), "m")
		w := testWeights()
		if err := Save(dir, testConfig, w, SaveOptions{MaxShardSize: shard}); err != nil {
			t.Fatal(err)
		}
		c, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		if string(c.Config) != string(testConfig) {
			t.Fatalf("config %s", c.Config)
		}
		wantFiles := 1
		if shard == 1 {
			wantFiles = 4 // every tensor exceeds the limit: one shard each
		}
		if shard == 0 && len(c.Files()) != 1 || shard == 1 && len(c.Files()) != wantFiles {
			t.Fatalf("shard limit %d: files %v", shard, c.Files())
		}
		if shard > 0 {
			var idx Index
			raw, err := os.ReadFile(filepath.Join(dir, IndexFile))
			if err != nil || json.Unmarshal(raw, &idx) != nil {
				t.Fatalf("index: %v", err)
			}
			if idx.Metadata["total_size"] != float64(32+8+4+12) || len(idx.WeightMap) != 4 {
				t.Fatalf("index %+v", idx)
			}
		}
		for name, want := range w {
			got, err := c.Tensor(name, dtypes.InvalidDType)
			if err != nil {
				t.Fatal(err)
			}
			if !bitEqual(got, want) {
				t.Fatalf("shard %d: %s changed", shard, name)
			}
		}
		c.Close()
	}
}

func TestConversions(t *testing.T) {
	// bf16 -> f32 -> bf16 is exact for every bit pattern but NaN payloads.
	raw := make([]byte, 2*65536)
	for i := range 65536 {
		raw[2*i], raw[2*i+1] = byte(i), byte(i>>8)
	}
	f32, err := ToTensor(raw, safetensors.BF16, []int{65536}, dtypes.Float32)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Cast(f32, dtypes.BFloat16)
	if err != nil {
		t.Fatal(err)
	}
	vals := tensors.MustCopyFlatData[float32](f32)
	bits := tensors.MustCopyFlatData[bfloat16.BFloat16](back)
	for i := range 65536 {
		if vals[i] != vals[i] {
			if bits[i].Float32() == bits[i].Float32() {
				t.Fatalf("NaN %#x became %v", i, bits[i])
			}
			continue
		}
		if uint16(bits[i]) != uint16(i) || math.Float32bits(vals[i]) != uint32(i)<<16 {
			t.Fatalf("bf16 %#x -> %v -> %#x", i, vals[i], uint16(bits[i]))
		}
	}
	// f16 -> f32 exact; f32 -> f16 rounds to nearest.
	h, _ := ToTensor([]byte{0x00, 0x3c, 0x01, 0x00}, safetensors.F16, []int{2}, dtypes.Float32) // 1.0, smallest subnormal
	hv := tensors.MustCopyFlatData[float32](h)
	if hv[0] != 1 || hv[1] != float32(math.Ldexp(1, -24)) {
		t.Fatalf("f16 -> f32: %v", hv)
	}
	// f32 -> bf16 rounds to nearest even.
	one := math.Float32frombits(0x3f808000) // exactly halfway between two bf16 values
	r, _ := Cast(tensors.FromValue([]float32{one}), dtypes.BFloat16)
	if got := tensors.MustCopyFlatData[bfloat16.BFloat16](r)[0]; uint16(got) != 0x3f80 {
		t.Fatalf("halfway rounds to %#x, want even 0x3f80", uint16(got))
	}
	if _, err := ToTensor([]byte{1, 2, 3, 4}, safetensors.I32, []int{1}, dtypes.Float32); err == nil {
		t.Fatal("int32 -> float32 accepted")
	}
	if _, err := ToTensor([]byte{1, 2}, safetensors.F32, []int{1}, dtypes.Float32); err == nil {
		t.Fatal("short buffer accepted")
	}
}

func TestResolveHFCache(t *testing.T) {
	root := filepath.Join(t.TempDir(), "models--org--name")
	snapA := filepath.Join(root, "snapshots", "aaaa")
	snapB := filepath.Join(root, "snapshots", "bbbb")
	for _, d := range []string{snapA, snapB} {
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, ConfigFile), []byte(`{}`), 0o644)
	}
	if _, err := Resolve(root); err == nil || !strings.Contains(err.Error(), "2 snapshots") {
		t.Fatalf("two snapshots without refs/main: %v", err)
	}
	os.MkdirAll(filepath.Join(root, "refs"), 0o755)
	os.WriteFile(filepath.Join(root, "refs", "main"), []byte("bbbb\n"), 0o644)
	if got, err := Resolve(root); err != nil || got != snapB {
		t.Fatalf("refs/main: %s %v", got, err)
	}
	if got, err := Resolve(snapA); err != nil || got != snapA {
		t.Fatalf("snapshot itself: %s %v", got, err)
	}
	os.WriteFile(filepath.Join(root, "refs", "main"), []byte("../x"), 0o644)
	if _, err := Resolve(root); err == nil {
		t.Fatal("escaping revision accepted")
	}
	os.Remove(filepath.Join(root, "refs", "main"))
	os.RemoveAll(snapB)
	if got, err := Resolve(root); err != nil || got != snapA {
		t.Fatalf("only snapshot: %s %v", got, err)
	}
	if _, err := Resolve(t.TempDir()); err == nil || !strings.Contains(err.Error(), ConfigFile) {
		t.Fatalf("empty folder: %v", err)
	}
}

func TestOpenErrorsNameTheFile(t *testing.T) {
	mk := func(t *testing.T) string {
		dir := filepath.Join(t.TempDir(), "m")
		if err := Save(dir, testConfig, testWeights(), SaveOptions{MaxShardSize: 20}); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	shardPath := func(dir string) string {
		m, _ := filepath.Glob(filepath.Join(dir, "model-00001-of-*.safetensors"))
		return m[0]
	}
	t.Run("missing shard", func(t *testing.T) {
		dir := mk(t)
		p := shardPath(dir)
		os.Remove(p)
		if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), filepath.Base(p)) {
			t.Fatalf("%v", err)
		}
	})
	t.Run("truncated shard", func(t *testing.T) {
		dir := mk(t)
		p := shardPath(dir)
		raw, _ := os.ReadFile(p)
		os.WriteFile(p, raw[:len(raw)-1], 0o644)
		if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), p) {
			t.Fatalf("%v", err)
		}
	})
	t.Run("listed but absent", func(t *testing.T) {
		dir := mk(t)
		var idx Index
		raw, _ := os.ReadFile(filepath.Join(dir, IndexFile))
		json.Unmarshal(raw, &idx)
		idx.WeightMap["ghost.weight"] = filepath.Base(shardPath(dir))
		raw, _ = json.Marshal(idx)
		os.WriteFile(filepath.Join(dir, IndexFile), raw, 0o644)
		if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "ghost.weight") {
			t.Fatalf("%v", err)
		}
	})
	t.Run("no weights", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, ConfigFile), testConfig, 0o644)
		if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), SingleFile) {
			t.Fatalf("%v", err)
		}
	})
	t.Run("bad config", func(t *testing.T) {
		dir := mk(t)
		os.WriteFile(filepath.Join(dir, ConfigFile), []byte(`{`), 0o644)
		if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), ConfigFile) {
			t.Fatalf("%v", err)
		}
	})
}

func TestSaveIsAtomicAndCopiesTokenizer(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "m")
	tok := t.TempDir()
	os.WriteFile(filepath.Join(tok, "tokenizer.model"), []byte("spm"), 0o644)
	os.WriteFile(filepath.Join(tok, "special_tokens_map.json"), []byte("{}"), 0o644)
	if err := Save(dir, testConfig, testWeights(), SaveOptions{TokenizerFrom: tok}); err != nil {
		t.Fatal(err)
	}
	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.PresentTokenizerFiles(); !slices.Equal(got, []string{"tokenizer.model", "special_tokens_map.json"}) {
		t.Fatalf("tokenizer files %v", got)
	}
	c.Close()
	// A failing save (nil tensor) leaves the previous checkpoint intact and no temporaries.
	bad := testWeights()
	bad["z"] = nil
	if err := Save(dir, testConfig, bad, SaveOptions{}); err == nil {
		t.Fatal("nil tensor accepted")
	}
	entries, _ := os.ReadDir(parent)
	if len(entries) != 1 || entries[0].Name() != "m" {
		t.Fatalf("left behind: %v", entries)
	}
	// Overwriting replaces the old content (a sharded save removes the single file).
	if err := Save(dir, testConfig, testWeights(), SaveOptions{MaxShardSize: 20}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, SingleFile)); err == nil {
		t.Fatal("stale model.safetensors left beside the shards")
	}
	if c, err := Open(dir); err != nil {
		t.Fatal(err)
	} else {
		c.Close()
	}
	// Saving in bf16 converts float tensors and keeps integer ones.
	if err := Save(dir, testConfig, testWeights(), SaveOptions{DType: dtypes.BFloat16}); err != nil {
		t.Fatal(err)
	}
	c, _ = Open(dir)
	defer c.Close()
	for name, want := range map[string]safetensors.DType{"a.weight": safetensors.BF16, "c.bias": safetensors.BF16, "d.ids": safetensors.I32} {
		if info, _, _ := c.Info(name); info.DType != want {
			t.Fatalf("%s saved as %s, want %s", name, info.DType, want)
		}
	}
}

// BenchmarkBF16ToF32 measures the load-time conversion of a 16M-element bf16 tensor.
func BenchmarkBF16ToF32(b *testing.B) {
	raw := make([]byte, 2<<24)
	for i := range raw {
		raw[i] = byte(i * 7)
	}
	b.SetBytes(int64(len(raw)))
	for range b.N {
		if _, err := ToTensor(raw, safetensors.BF16, []int{1 << 24}, dtypes.Float32); err != nil {
			b.Fatal(err)
		}
	}
}
