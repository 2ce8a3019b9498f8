package checkpoint

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/dtypes/bfloat16"
	"github.com/gomlx/compute/dtypes/float16"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/models/safetensors"
)

// DTypeOf maps a safetensors dtype to the GoMLX dtype.
func DTypeOf(d safetensors.DType) (dtypes.DType, error) {
	switch d {
	case safetensors.F64:
		return dtypes.Float64, nil
	case safetensors.F32:
		return dtypes.Float32, nil
	case safetensors.F16:
		return dtypes.Float16, nil
	case safetensors.BF16:
		return dtypes.BFloat16, nil
	case safetensors.I64:
		return dtypes.Int64, nil
	case safetensors.I32:
		return dtypes.Int32, nil
	case safetensors.I16:
		return dtypes.Int16, nil
	case safetensors.I8:
		return dtypes.Int8, nil
	case safetensors.U8:
		return dtypes.Uint8, nil
	case safetensors.BOOL:
		return dtypes.Bool, nil
	}
	return dtypes.InvalidDType, fmt.Errorf("unsupported safetensors dtype %q", d)
}

// SafetensorsDType maps a GoMLX dtype to the safetensors dtype.
func SafetensorsDType(d dtypes.DType) (safetensors.DType, error) {
	switch d {
	case dtypes.Float64:
		return safetensors.F64, nil
	case dtypes.Float32:
		return safetensors.F32, nil
	case dtypes.Float16:
		return safetensors.F16, nil
	case dtypes.BFloat16:
		return safetensors.BF16, nil
	case dtypes.Int64:
		return safetensors.I64, nil
	case dtypes.Int32:
		return safetensors.I32, nil
	case dtypes.Int16:
		return safetensors.I16, nil
	case dtypes.Int8:
		return safetensors.I8, nil
	case dtypes.Uint8:
		return safetensors.U8, nil
	case dtypes.Bool:
		return safetensors.BOOL, nil
	}
	return "", fmt.Errorf("dtype %s cannot be stored in safetensors", d)
}

// IsFloat reports whether a safetensors dtype is a floating-point type.
func IsFloat(d safetensors.DType) bool {
	return d == safetensors.F64 || d == safetensors.F32 || d == safetensors.F16 || d == safetensors.BF16
}

// Convertible reports whether tensors of dtype from can be loaded as dtype to: floating-point
// types convert into each other; other types only load as themselves.
func Convertible(from safetensors.DType, to dtypes.DType) bool {
	d, err := DTypeOf(from)
	if err != nil {
		return false
	}
	if d == to {
		return true
	}
	return IsFloat(from) && to.IsFloat()
}

// ToTensor builds a GoMLX tensor of dtype `to` (InvalidDType: keep the stored dtype) from raw
// little-endian bytes. Conversions between floating-point types go through float32 (float64
// source: directly): widening (BF16/F16 to F32) is exact, narrowing rounds to nearest even.
func ToTensor(raw []byte, from safetensors.DType, shape []int, to dtypes.DType) (*tensors.Tensor, error) {
	src, err := DTypeOf(from)
	if err != nil {
		return nil, err
	}
	if to == dtypes.InvalidDType {
		to = src
	}
	if !Convertible(from, to) {
		return nil, fmt.Errorf("cannot convert %s to %s", from, to)
	}
	n := 1
	for _, d := range shape {
		n *= d
	}
	if len(raw) != n*from.Size() {
		return nil, fmt.Errorf("shape %v of %s needs %d bytes, got %d", shape, from, n*from.Size(), len(raw))
	}
	t := tensors.FromShape(shapes.Make(to, shape...))
	err = t.MutableBytes(func(dst []byte) {
		if src == to {
			copy(dst, raw)
			return
		}
		switch {
		case from == safetensors.BF16 && to == dtypes.Float32:
			// The common case (bf16 checkpoints computed in float32): a shift per element.
			for i := range n {
				binary.LittleEndian.PutUint32(dst[4*i:], uint32(binary.LittleEndian.Uint16(raw[2*i:]))<<16)
			}
			return
		case from == safetensors.F32 && to == dtypes.BFloat16:
			for i := range n {
				binary.LittleEndian.PutUint16(dst[2*i:], BFloat16Bits(math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))))
			}
			return
		}
		if from == safetensors.F64 {
			for i := range n {
				putFloat(dst, to, i, math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:])))
			}
			return
		}
		for i := range n {
			putFloat(dst, to, i, float64(getFloat32(raw, from, i)))
		}
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// getFloat32 reads element i of a float buffer of dtype d (not F64) as float32.
func getFloat32(raw []byte, d safetensors.DType, i int) float32 {
	switch d {
	case safetensors.F32:
		return math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	case safetensors.BF16:
		return bfloat16.BFloat16(binary.LittleEndian.Uint16(raw[2*i:])).Float32()
	case safetensors.F16:
		return float16.Float16(binary.LittleEndian.Uint16(raw[2*i:])).Float32()
	}
	panic("getFloat32: " + string(d))
}

// putFloat writes v as element i of a buffer of dtype d. v arrives as float64 so a float64
// source is not double-rounded; every other source holds an exact float32.
func putFloat(dst []byte, d dtypes.DType, i int, v float64) {
	switch d {
	case dtypes.Float64:
		binary.LittleEndian.PutUint64(dst[8*i:], math.Float64bits(v))
	case dtypes.Float32:
		binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(float32(v)))
	case dtypes.BFloat16:
		binary.LittleEndian.PutUint16(dst[2*i:], BFloat16Bits(float32(v)))
	case dtypes.Float16:
		binary.LittleEndian.PutUint16(dst[2*i:], uint16(float16.FromFloat32(float32(v))))
	default:
		panic("putFloat: " + d.String())
	}
}

// BFloat16Bits rounds a float32 to bfloat16 (nearest even), keeping NaNs NaN.
func BFloat16Bits(x float32) uint16 {
	if x != x {
		return uint16(math.Float32bits(x)>>16) | 0x0040
	}
	return uint16(bfloat16.FromFloat32(x))
}

// FromTensor returns the safetensors dtype and a copy of the raw little-endian bytes of t.
func FromTensor(t *tensors.Tensor) (safetensors.DType, []byte, error) {
	d, err := SafetensorsDType(t.DType())
	if err != nil {
		return "", nil, err
	}
	var out []byte
	err = t.ConstBytes(func(data []byte) { out = append([]byte(nil), data...) })
	if err != nil {
		return "", nil, err
	}
	return d, out, nil
}

// Cast converts a float tensor to another float dtype (a copy; same dtype returns t itself).
func Cast(t *tensors.Tensor, to dtypes.DType) (*tensors.Tensor, error) {
	if t.DType() == to {
		return t, nil
	}
	d, raw, err := FromTensor(t)
	if err != nil {
		return nil, err
	}
	return ToTensor(raw, d, t.Shape().Dimensions, to)
}
