package rag

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"os"
)

// VectorHit is one vector-store search result.
type VectorHit struct {
	// ID is the chunk id stored with the vector.
	ID string
	// Score is the inner product with the query (cosine similarity for L2-normalised vectors).
	Score float64
}

// VectorStore holds chunk embeddings and finds the nearest to a query by inner product. FlatStore
// is the embedded implementation; a server store (PostgreSQL + pgvector with the <#> operator)
// would implement the same methods for knowledge bases that outgrow one machine.
type VectorStore interface {
	// Add stores vectors under ids; ids must be new and vectors must have length Dim.
	Add(ids []string, vecs [][]float32) error
	// Search returns the k stored vectors with the largest inner product with query, best first.
	Search(query []float32, k int) ([]VectorHit, error)
	// Len is the number of stored vectors.
	Len() int
	// Dim is the vector length.
	Dim() int
}

// FlatStore is an exact in-memory vector store persisted to one binary file. Search is one pass
// of dot products (a few thousand 1024-d vectors take about a millisecond); ties are broken by
// insertion order, so results are reproducible.
type FlatStore struct {
	dim  int
	ids  []string
	idx  map[string]bool
	data []float32 // row-major len(ids) x dim
}

// NewFlatStore returns an empty store for vectors of length dim.
func NewFlatStore(dim int) (*FlatStore, error) {
	if dim <= 0 {
		return nil, fmt.Errorf("rag: vector dimension must be positive, got %d", dim)
	}
	return &FlatStore{dim: dim, idx: map[string]bool{}}, nil
}

// Len is the number of vectors.
func (s *FlatStore) Len() int { return len(s.ids) }

// Dim is the vector length.
func (s *FlatStore) Dim() int { return s.dim }

// Add stores vectors.
func (s *FlatStore) Add(ids []string, vecs [][]float32) error {
	if len(ids) != len(vecs) {
		return fmt.Errorf("rag: %d ids for %d vectors", len(ids), len(vecs))
	}
	for i, v := range vecs {
		if len(v) != s.dim {
			return fmt.Errorf("rag: vector %q has length %d, store dimension is %d", ids[i], len(v), s.dim)
		}
		if s.idx[ids[i]] {
			return fmt.Errorf("rag: vector id %q already stored", ids[i])
		}
		for _, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return fmt.Errorf("rag: vector %q has a non-finite value", ids[i])
			}
		}
	}
	for i, v := range vecs {
		s.idx[ids[i]] = true
		s.ids = append(s.ids, ids[i])
		s.data = append(s.data, v...)
	}
	return nil
}

// Search returns the k best vectors by inner product.
func (s *FlatStore) Search(query []float32, k int) ([]VectorHit, error) {
	if err := checkK(k); err != nil {
		return nil, err
	}
	if len(query) != s.dim {
		return nil, fmt.Errorf("rag: query vector has length %d, store dimension is %d", len(query), s.dim)
	}
	all := make([]scored, len(s.ids))
	for i := range s.ids {
		row := s.data[i*s.dim : (i+1)*s.dim]
		var dot float64
		for j, x := range row {
			dot += float64(x) * float64(query[j])
		}
		all[i] = scored{doc: i, score: dot}
	}
	top := topK(all, k)
	out := make([]VectorHit, len(top))
	for i, t := range top {
		out[i] = VectorHit{ID: s.ids[t.doc], Score: t.score}
	}
	return out, nil
}

// flatMagic starts a FlatStore file; the layout is magic, uint32 dim, uint32 count, then per
// vector a uint16 id length, the id bytes and dim little-endian float32s, and finally the
// CRC-32 (IEEE) of everything before it.
const flatMagic = "PRAGVEC1"

// WriteFile writes the store to path (fsynced). Callers make it atomic by writing into a
// temporary index directory (Save does).
func (s *FlatStore) WriteFile(path string) error {
	var b bytes.Buffer
	b.WriteString(flatMagic)
	_ = binary.Write(&b, binary.LittleEndian, uint32(s.dim))
	_ = binary.Write(&b, binary.LittleEndian, uint32(len(s.ids)))
	for i, id := range s.ids {
		if len(id) > math.MaxUint16 {
			return fmt.Errorf("rag: chunk id too long (%d bytes)", len(id))
		}
		_ = binary.Write(&b, binary.LittleEndian, uint16(len(id)))
		b.WriteString(id)
		_ = binary.Write(&b, binary.LittleEndian, s.data[i*s.dim:(i+1)*s.dim])
	}
	_ = binary.Write(&b, binary.LittleEndian, crc32.ChecksumIEEE(b.Bytes()))
	return writeFileSync(path, b.Bytes())
}

// ReadFlatStore reads a file written by WriteFile, naming the file and the problem on damage.
func ReadFlatStore(path string) (*FlatStore, error) {
	buf, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rag: %w", err)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("rag: %s: %s", path, fmt.Sprintf(format, args...))
	}
	if len(buf) < len(flatMagic)+12 || string(buf[:len(flatMagic)]) != flatMagic {
		return nil, bad("not a vector file (bad magic or too short)")
	}
	body, sum := buf[:len(buf)-4], binary.LittleEndian.Uint32(buf[len(buf)-4:])
	if crc32.ChecksumIEEE(body) != sum {
		return nil, bad("checksum mismatch (file truncated or modified)")
	}
	p := len(flatMagic)
	dim := int(binary.LittleEndian.Uint32(body[p:]))
	n := int(binary.LittleEndian.Uint32(body[p+4:]))
	p += 8
	s, err := NewFlatStore(dim)
	if err != nil {
		return nil, bad("%v", err)
	}
	s.ids = make([]string, 0, n)
	s.data = make([]float32, 0, n*dim)
	for i := 0; i < n; i++ {
		if p+2 > len(body) {
			return nil, bad("vector %d: unexpected end of file", i)
		}
		l := int(binary.LittleEndian.Uint16(body[p:]))
		p += 2
		if p+l+4*dim > len(body) {
			return nil, bad("vector %d: unexpected end of file", i)
		}
		id := string(body[p : p+l])
		p += l
		if s.idx[id] {
			return nil, bad("duplicate id %q", id)
		}
		s.idx[id] = true
		s.ids = append(s.ids, id)
		for j := 0; j < dim; j++ {
			s.data = append(s.data, math.Float32frombits(binary.LittleEndian.Uint32(body[p:])))
			p += 4
		}
	}
	if p != len(body) {
		return nil, bad("%d trailing bytes", len(body)-p)
	}
	return s, nil
}
