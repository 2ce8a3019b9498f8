package harness

import (
	"fmt"
	"os"
	"strings"
)

// ZooPrefix marks a model path that names a zoo model ("zoo:gemma-tiny") instead of a folder.
const ZooPrefix = "zoo:"

// Zoo resolves "zoo:NAME" model paths: Resolve writes (or finds) model NAME's Hugging Face
// folder under cacheDir and returns it. It is handed to the harness through Options.Zoo, so
// the same name means the same weights for every caller: package zoo's Resolver (the committed
// miniature instruct models) for the CLI and the notebooks, zootest.Random for tests.
type Zoo interface {
	Resolve(name, cacheDir string) (string, error)
}

// ResolveModel turns a suite model path into a folder: a folder is returned as is (it must
// exist); "zoo:NAME" is resolved by z under zooDir.
func ResolveModel(path, zooDir string, z Zoo) (string, error) {
	if !strings.HasPrefix(path, ZooPrefix) {
		st, err := os.Stat(path)
		if err != nil {
			return "", fmt.Errorf("model folder %s: %w", path, err)
		}
		if !st.IsDir() {
			return "", fmt.Errorf("model folder %s: not a directory", path)
		}
		return path, nil
	}
	if z == nil {
		return "", fmt.Errorf("model %s: no zoo to resolve it (set harness.Options.Zoo, e.g. &zoo.Resolver{})", path)
	}
	dir, err := z.Resolve(strings.TrimPrefix(path, ZooPrefix), zooDir)
	if err != nil {
		return "", fmt.Errorf("model %s: %w", path, err)
	}
	return dir, nil
}
