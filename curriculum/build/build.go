// Package build runs the whole curriculum pipeline: a source (code, papers, products, synthetic,
// or the original Perpetual files) gives chunks, a teacher (offline or llm) gives facts,
// curriculum.Assemble splits them into a curriculum and a test, and curriculum.Write stores them.
//
// Long runs survive interruption: each paper or product file's chunks are checkpointed in the
// work folder once read, the LLM teacher caches every answered chunk there, and the output is
// written atomically at the end. Running the same command again skips finished work.
package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/perpetual-ml/perpetual/curriculum"
	"github.com/perpetual-ml/perpetual/curriculum/perpetualfmt"
	"github.com/perpetual-ml/perpetual/curriculum/sources/code"
	"github.com/perpetual-ml/perpetual/curriculum/sources/papers"
	"github.com/perpetual-ml/perpetual/curriculum/sources/products"
	"github.com/perpetual-ml/perpetual/curriculum/synthetic"
	"github.com/perpetual-ml/perpetual/curriculum/teacher/llm"
	"github.com/perpetual-ml/perpetual/curriculum/teacher/offline"
)

// Sources and teachers accepted by Build.
var (
	Sources  = []string{"code", "papers", "products", "synthetic", "perpetual"}
	Teachers = []string{"offline", "llm"}
)

// Options describe one build.
type Options struct {
	// Source is one of Sources.
	Source string
	// Inputs are paths (code: one folder; papers/products: files or folders; perpetual: the folder
	// with train.json and test.json). For synthetic, Task names the knowledge base instead.
	Inputs []string
	// Task is the synthetic knowledge base ("products", "research", "code").
	Task string
	// Teacher is one of Teachers (ignored for synthetic and perpetual, which bring their own).
	Teacher string
	// Out is the curriculum folder to write.
	Out string
	// WorkDir holds checkpoints and the LLM cache (default Out + ".work").
	WorkDir string
	// Seed drives every random choice.
	Seed int64
	// ChunkSize and Overlap in bytes (defaults 4096 and 512).
	ChunkSize, Overlap int
	// Synthetic sizes the synthetic knowledge base.
	Synthetic synthetic.Options
	// Assemble controls the split into seen / document-only / validation.
	Assemble curriculum.AssembleOptions
	// LLM configures the llm teacher (CacheDir defaults to WorkDir/llm-cache).
	LLM llm.Config
	// AllowPartial accepts a curriculum without the facts of chunks the llm teacher could not
	// answer (requests failing, replies invalid after re-asks); they are listed in the manifest's
	// MissingFacts. Without it such a build fails, naming the chunks.
	AllowPartial bool
	// ClozePerChunk is the number of prose cloze items per chunk for the offline teacher on papers.
	ClozePerChunk int
	// Progress, if set, is called at the start of each long stage with the number of steps and
	// returns the function to call after each step.
	Progress func(stage string, total int) (tick func())
}

func (o *Options) progress(stage string, total int) func() {
	if o.Progress == nil {
		return func() {}
	}
	return o.Progress(stage, total)
}

// Build runs the pipeline and writes the curriculum to opt.Out.
func Build(ctx context.Context, opt Options) (*curriculum.Curriculum, error) {
	if opt.Out == "" {
		return nil, fmt.Errorf("build: no output folder")
	}
	if opt.WorkDir == "" {
		opt.WorkDir = strings.TrimRight(opt.Out, "/") + ".work"
	}
	if opt.ChunkSize <= 0 {
		opt.ChunkSize = 4096
	}
	if opt.Overlap <= 0 {
		opt.Overlap = 512
	}
	opt.Assemble.Seed = opt.Seed
	var c *curriculum.Curriculum
	var err error
	switch opt.Source {
	case "synthetic":
		so := opt.Synthetic
		so.Seed, so.Assemble = opt.Seed, opt.Assemble
		task := opt.Task
		if task == "" {
			task = "products"
		}
		c, err = synthetic.Build(task, so)
	case "perpetual":
		if len(opt.Inputs) != 1 {
			return nil, fmt.Errorf("build: the perpetual source takes one folder (with train.json and test.json), got %d inputs", len(opt.Inputs))
		}
		c, err = perpetualfmt.ReadDir(opt.Inputs[0], filepath.Base(filepath.Clean(opt.Inputs[0])))
		if err == nil {
			c.Manifest.Seed = opt.Seed
		}
	case "code", "papers", "products":
		c, err = buildFromSource(ctx, &opt)
	default:
		return nil, fmt.Errorf("build: unknown source %q (want one of %s)", opt.Source, strings.Join(Sources, ", "))
	}
	if err != nil {
		return nil, err
	}
	c.Manifest.Source = opt.Source
	if len(opt.Inputs) > 0 {
		c.Manifest.Inputs = opt.Inputs
	}
	curriculum.SortSkipped(c.Manifest.Skipped)
	if err := curriculum.Write(opt.Out, c); err != nil {
		return nil, err
	}
	return c, nil
}

func buildFromSource(ctx context.Context, opt *Options) (*curriculum.Curriculum, error) {
	if len(opt.Inputs) == 0 {
		return nil, fmt.Errorf("build: source %s needs at least one input path", opt.Source)
	}
	if opt.Teacher != "offline" && opt.Teacher != "llm" {
		return nil, fmt.Errorf("build: unknown teacher %q (want one of %s)", opt.Teacher, strings.Join(Teachers, ", "))
	}
	var chunks []curriculum.Chunk
	var skipped []curriculum.Skipped
	var records []products.Record
	switch opt.Source {
	case "code":
		if len(opt.Inputs) != 1 {
			return nil, fmt.Errorf("build: the code source takes one repository folder, got %d", len(opt.Inputs))
		}
		tick := func() {}
		res, err := code.Walk(opt.Inputs[0], code.Options{ChunkSize: opt.ChunkSize, Overlap: opt.Overlap,
			OnStart: func(n int) { tick = opt.progress("reading source files", n) }, OnFile: func(string) { tick() }})
		if err != nil {
			return nil, err
		}
		chunks, skipped = res.Chunks, res.Skipped
	case "papers", "products":
		files, err := expand(opt.Inputs, opt.Source)
		if err != nil {
			return nil, err
		}
		tick := opt.progress("reading "+opt.Source, len(files))
		for _, f := range files {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			cp, err := loadCheckpointed(opt, f)
			if err != nil {
				return nil, err
			}
			chunks = append(chunks, cp.Chunks...)
			skipped = append(skipped, cp.Skipped...)
			records = append(records, cp.Records...)
			tick()
		}
	}
	if len(chunks) == 0 {
		return nil, fmt.Errorf("build: no usable text in %v (skipped: %v)", opt.Inputs, skipped)
	}
	if err := uniqueIDs(chunks); err != nil {
		return nil, err
	}
	var facts []curriculum.Fact
	teacherName := "offline"
	var usage *curriculum.Usage
	var missing []curriculum.ChunkFailure
	switch opt.Teacher {
	case "offline":
		switch opt.Source {
		case "code":
			var sk []curriculum.Skipped
			facts, sk = offline.Code(opt.Inputs[0], chunks, opt.Seed)
			skipped = append(skipped, sk...)
			teacherName = "offline:declarations"
		case "papers":
			facts = offline.Cloze(chunks, offline.ClozeOptions{Seed: opt.Seed, PerChunk: opt.ClozePerChunk})
			teacherName = "offline:cloze"
		case "products":
			facts = offline.Products(records, opt.Seed)
			teacherName = "offline:fields"
			// Records without structured fields (WDC offers are often title + description only)
			// still teach something: cloze items from their text.
			has := map[string]bool{}
			for _, f := range facts {
				has[f.ChunkID] = true
			}
			var bare []curriculum.Chunk
			for _, r := range records {
				if len(r.ChunkIDs) > 0 && !has[r.ChunkIDs[0]] {
					for _, c := range chunks {
						if c.ID == r.ChunkIDs[0] {
							bare = append(bare, c)
						}
					}
				}
			}
			if len(bare) > 0 {
				facts = append(facts, offline.Cloze(bare, offline.ClozeOptions{Seed: opt.Seed, PerChunk: opt.ClozePerChunk, Fragments: true})...)
				teacherName = "offline:fields+cloze"
			}
		}
	case "llm":
		cfg := opt.LLM
		if cfg.CacheDir == "" {
			cfg.CacheDir = filepath.Join(opt.WorkDir, "llm-cache")
		}
		t, err := llm.New(cfg)
		if err != nil {
			return nil, err
		}
		tick := opt.progress("asking "+t.Name(), len(chunks))
		facts, err = t.Facts(ctx, chunks, tick)
		u := t.Usage()
		usage = &u
		var partial *llm.PartialError
		if errors.As(err, &partial) {
			if !opt.AllowPartial {
				return nil, fmt.Errorf("build: %w; answered chunks are cached in %s: run again to retry the others, or accept a curriculum without them with --allow-partial", err, cfg.CacheDir)
			}
			missing, err = partial.Failed, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%w (finished chunks are cached in %s; run again to resume)", err, cfg.CacheDir)
		}
		teacherName = t.Name()
	}
	if len(facts) == 0 {
		return nil, fmt.Errorf("build: the %s teacher found no facts in %d chunks", teacherName, len(chunks))
	}
	c, err := curriculum.Assemble(chunks, facts, opt.Assemble)
	if err != nil {
		return nil, err
	}
	c.Manifest.Teacher = teacherName
	c.Manifest.Skipped = append(c.Manifest.Skipped, skipped...)
	c.Manifest.Usage = usage
	c.Manifest.MissingFacts = missing
	if len(missing) > 0 {
		c.Manifest.Notes = append(c.Manifest.Notes, fmt.Sprintf("partial curriculum (allow-partial): the teacher wrote no facts for %d of %d chunks, listed in missing_facts", len(missing), len(chunks)))
	}
	c.Manifest.Options["chunk_size"] = fmt.Sprint(opt.ChunkSize)
	c.Manifest.Options["overlap"] = fmt.Sprint(opt.Overlap)
	return c, nil
}

func uniqueIDs(chunks []curriculum.Chunk) error {
	seen := map[string]bool{}
	for _, c := range chunks {
		if seen[c.ID] {
			return fmt.Errorf("build: two inputs give chunk id %q; pass files with distinct names", c.ID)
		}
		seen[c.ID] = true
	}
	return nil
}

// expand lists the files of the inputs that the source reads, sorted.
func expand(inputs []string, source string) ([]string, error) {
	exts := papers.Exts
	if source == "products" {
		exts = map[string]bool{".json": true, ".jsonl": true, ".ndjson": true, ".csv": true, ".tsv": true}
	}
	var files []string
	for _, in := range inputs {
		st, err := os.Stat(in)
		if err != nil {
			return nil, fmt.Errorf("build: %w", err)
		}
		if !st.IsDir() {
			files = append(files, in)
			continue
		}
		err = filepath.WalkDir(in, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && exts[strings.ToLower(filepath.Ext(p))] {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sort.Strings(files)
	return files, nil
}

// checkpoint is one input file's loaded chunks, stored in the work folder.
type checkpoint struct {
	Chunks  []curriculum.Chunk   `json:"chunks"`
	Skipped []curriculum.Skipped `json:"skipped"`
	Records []products.Record    `json:"records,omitempty"`
}

// loadCheckpointed reads one file through its source, or its checkpoint when the file (path,
// size, modification time) and chunking options are unchanged since it was stored.
func loadCheckpointed(opt *Options, file string) (*checkpoint, error) {
	st, err := os.Stat(file)
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	abs, _ := filepath.Abs(file)
	h := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%s\x00%d\x00%d\x00%d\x00%d", opt.Source, abs, st.Size(), st.ModTime().UnixNano(), opt.ChunkSize, opt.Overlap)))
	path := filepath.Join(opt.WorkDir, "sources", hex.EncodeToString(h[:16])+".json")
	if b, err := os.ReadFile(path); err == nil {
		var cp checkpoint
		if json.Unmarshal(b, &cp) == nil {
			return &cp, nil
		}
	}
	cp := &checkpoint{}
	switch opt.Source {
	case "papers":
		res, err := papers.Load([]string{file}, papers.Options{ChunkSize: opt.ChunkSize, Overlap: opt.Overlap})
		if err != nil {
			return nil, err
		}
		cp.Chunks, cp.Skipped = res.Chunks, res.Skipped
	case "products":
		res, err := products.Load([]string{file}, products.Options{ChunkSize: opt.ChunkSize, Overlap: opt.Overlap})
		if err != nil {
			return nil, err
		}
		cp.Chunks, cp.Skipped, cp.Records = res.Chunks, res.Skipped, res.Records
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	b, _ := json.Marshal(cp)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return nil, err
	}
	return cp, os.Rename(tmp, path)
}
