package evaluation

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/perpetual-ml/perpetual/curriculum"
	"github.com/perpetual-ml/perpetual/curriculum/perpetualfmt"
)

// LoadTest reads test questions from any of the shapes the project uses, returning them with
// the curriculum's chunks (for RAG) when the source has them:
//   - a curriculum folder (manifest.json): its test.jsonl and chunks;
//   - a Perpetual folder (train.json + test.json): converted by curriculum/perpetualfmt;
//   - a Perpetual test.json file (array of {question, choices, answer}): prefixes stripped;
//   - a .jsonl file of curriculum.Question records.
func LoadTest(path string) ([]curriculum.Question, []curriculum.Chunk, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading test: %w", err)
	}
	if st.IsDir() {
		if _, err := os.Stat(filepath.Join(path, curriculum.ManifestFile)); err == nil {
			c, err := curriculum.Read(path)
			if err != nil {
				return nil, nil, err
			}
			return c.Test, c.Chunks, nil
		}
		if _, err := os.Stat(filepath.Join(path, "test.json")); err == nil {
			c, err := perpetualfmt.ReadDir(path, filepath.Base(path))
			if err != nil {
				return nil, nil, err
			}
			return c.Test, c.Chunks, nil
		}
		return nil, nil, fmt.Errorf("%s: neither a curriculum (no %s) nor a Perpetual folder (no test.json)", path, curriculum.ManifestFile)
	}
	if strings.HasSuffix(path, ".jsonl") {
		qs, err := readQuestionsJSONL(path)
		return qs, nil, err
	}
	recs, err := perpetualfmt.ReadTest(path)
	if err != nil {
		return nil, nil, err
	}
	name := filepath.Base(filepath.Dir(path))
	c, err := perpetualfmt.ToCurriculum(name, nil, recs)
	if err != nil {
		return nil, nil, err
	}
	if len(c.Manifest.Skipped) > 0 {
		return nil, nil, fmt.Errorf("%s: %s: %s", path, c.Manifest.Skipped[0].Path, c.Manifest.Skipped[0].Reason)
	}
	return c.Test, nil, nil
}

func readQuestionsJSONL(path string) ([]curriculum.Question, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading test: %w", err)
	}
	var out []curriculum.Question
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<16), 1<<26)
	for line := 1; sc.Scan(); line++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var q curriculum.Question
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&q); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		if err := q.Validate(); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		out = append(out, q)
	}
	return out, sc.Err()
}
