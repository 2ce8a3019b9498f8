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

// Cache is a resumable on-disk store of scored requests: an append-only JSON Lines file, one
// {"key","logprob","greedy","n"} per line, keyed by CacheKey (model hash + tokens). Each batch is
// appended with one write and fsynced, so an interrupted run loses at most the batch in flight;
// a torn last line (no newline) is cut off when the cache is reopened.
type Cache struct {
	mu   sync.Mutex
	path string
	f    *os.File
	m    map[string]Result
}

type cacheLine struct {
	Key     string  `json:"key"`
	LogProb float64 `json:"logprob"`
	Greedy  bool    `json:"greedy"`
	N       int     `json:"n"`
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
	c := &Cache{path: path, f: f, m: map[string]Result{}}
	good := bytes.LastIndexByte(data, '\n') + 1
	sc := bufio.NewScanner(bytes.NewReader(data[:good]))
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for line := 1; sc.Scan(); line++ {
		var l cacheLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil || len(l.Key) != 64 {
			f.Close()
			return nil, fmt.Errorf("evaluation cache %s:%d: corrupt line (delete the file to start over): %v", path, line, err)
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

// Len is the number of cached results.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
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
	var buf bytes.Buffer
	for i, k := range keys {
		line, err := json.Marshal(cacheLine{Key: k, LogProb: results[i].LogProb, Greedy: results[i].IsGreedy, N: results[i].NumTokens})
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
	for i, k := range keys {
		c.m[k] = results[i]
	}
	return nil
}

// Close closes the file.
func (c *Cache) Close() error { return c.f.Close() }
