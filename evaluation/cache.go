package evaluation

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
)

// Cache is a resumable on-disk store of scored requests and generated answers: an append-only
// JSON Lines file, one {"key","logprob","greedy","n"} per line keyed by CacheKey (model hash +
// tokens), or one {"key","generated"} keyed by GenerationKey. Each batch is
// appended with one write and fsynced, so an interrupted run loses at most the batch in flight;
// a torn last line (no newline) is cut off when the cache is reopened.
type Cache struct {
	mu   sync.Mutex
	path string
	f    *os.File
	m    map[string]Result
	gen  map[string][]int32
}

type cacheLine struct {
	Key     string  `json:"key"`
	LogProb float64 `json:"logprob"`
	Greedy  bool    `json:"greedy"`
	N       int     `json:"n"`
	// Generated marks a generation's line (written as a genLine): its token ids, never empty
	// (a generation has at least one token).
	Generated []int32 `json:"generated,omitempty"`
}

// genLine is a generation's line.
type genLine struct {
	Key       string  `json:"key"`
	Generated []int32 `json:"generated"`
}

// CacheKey identifies a request scored by a given model (its hash, e.g. lm.Model.Hash()).
func CacheKey(model string, r Request) string {
	h := sha256.New()
	var buf [4]byte
	binary.LittleEndian.PutUint32(buf[:], uint32(len(model)))
	h.Write(buf[:])
	h.Write([]byte(model))
	for _, part := range [][]int32{r.Context, r.Continuation} {
		binary.LittleEndian.PutUint32(buf[:], uint32(len(part)))
		h.Write(buf[:])
		for _, t := range part {
			binary.LittleEndian.PutUint32(buf[:], uint32(t))
			h.Write(buf[:])
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// OpenCache opens (creating if needed) the cache file at path and loads its entries. A corrupt
// line other than a torn last one is an error naming the file and line.
func OpenCache(path string) (*Cache, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening evaluation cache: %w", err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("reading evaluation cache %s: %w", path, err)
	}
	c := &Cache{path: path, f: f, m: map[string]Result{}, gen: map[string][]int32{}}
	good := bytes.LastIndexByte(data, '\n') + 1
	sc := bufio.NewScanner(bytes.NewReader(data[:good]))
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for line := 1; sc.Scan(); line++ {
		var l cacheLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil || len(l.Key) != 64 {
			f.Close()
			return nil, fmt.Errorf("evaluation cache %s:%d: corrupt line (delete the file to start over): %v", path, line, err)
		}
		if len(l.Generated) > 0 {
			c.gen[l.Key] = l.Generated
			continue
		}
		c.m[l.Key] = Result{LogProb: l.LogProb, IsGreedy: l.Greedy, NumTokens: l.N}
	}
	if good < len(data) { // torn write from an interrupted run
		if err := f.Truncate(int64(good)); err != nil {
			f.Close()
			return nil, fmt.Errorf("evaluation cache %s: cutting a torn last line: %w", path, err)
		}
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		f.Close()
		return nil, fmt.Errorf("evaluation cache %s: %w", path, err)
	}
	return c, nil
}

// Len is the number of cached results and generations.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m) + len(c.gen)
}

// Get returns a cached result.
func (c *Cache) Get(key string) (Result, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.m[key]
	return r, ok
}

// Put appends results (keys[i] -> results[i]) in one write and syncs the file.
func (c *Cache) Put(keys []string, results []Result) error {
	lines := make([]any, len(keys))
	for i, k := range keys {
		lines[i] = cacheLine{Key: k, LogProb: results[i].LogProb, Greedy: results[i].IsGreedy, N: results[i].NumTokens}
	}
	if err := c.append(lines); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, k := range keys {
		c.m[k] = results[i]
	}
	return nil
}

// GetGeneration returns a cached generation's token ids.
func (c *Cache) GetGeneration(key string) ([]int32, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids, ok := c.gen[key]
	return ids, ok
}

// PutGenerations appends generations (keys[i] -> ids[i], each non-empty) in one write and syncs
// the file.
func (c *Cache) PutGenerations(keys []string, ids [][]int32) error {
	lines := make([]any, len(keys))
	for i, k := range keys {
		if len(ids[i]) == 0 {
			return fmt.Errorf("evaluation cache %s: an empty generation for key %s", c.path, k)
		}
		lines[i] = genLine{Key: k, Generated: ids[i]}
	}
	if err := c.append(lines); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, k := range keys {
		c.gen[k] = ids[i]
	}
	return nil
}

// append writes lines in one write and syncs the file.
func (c *Cache) append(lines []any) error {
	var buf bytes.Buffer
	for _, l := range lines {
		line, err := json.Marshal(l)
		if err != nil {
			return fmt.Errorf("evaluation cache %s: %w", c.path, err)
		}
		buf.Write(line)
		buf.WriteByte('\n')
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.f.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("writing evaluation cache %s: %w", c.path, err)
	}
	if err := c.f.Sync(); err != nil {
		return fmt.Errorf("syncing evaluation cache %s: %w", c.path, err)
	}
	return nil
}

// Close closes the file.
func (c *Cache) Close() error { return c.f.Close() }
