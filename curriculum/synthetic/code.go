package synthetic

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/perpetual-ml/perpetual/curriculum"
)

var (
	codeVerbs  = []string{"Merge", "Split", "Rank", "Index", "Prune", "Encode", "Resolve", "Route", "Fold", "Balance"}
	paramTypes = []string{"int", "string", "bool", "float64", "time.Duration"}
	retKinds   = []string{"(*%s, error)", "([]%s, error)", "int", "(string, bool)", "error", "map[string]%s", "float64"}
	errPhrases = []string{"input exhausted", "quota exceeded", "ring buffer full", "stale checkpoint", "handshake refused",
		"cycle detected", "budget exhausted", "unknown codec", "lease expired", "shard offline"}
)

// ModulePath is the import path of the fictional code module.
const ModulePath = "example.org/quillib"

// codeFiles makes n Go source files of a fictional module, one chunk each. The sources are valid
// Go, so the offline code teacher can also read them.
func codeFiles(rng *rand.Rand, n int, nm *namer) []entity {
	var pkgs []string
	for i := 0; i < max(4, n/4); i++ {
		pkgs = append(pkgs, strings.ToLower(nm.word()))
	}
	genCount := func() string { return fmt.Sprint(1 + rng.IntN(5)) }
	genDepth := func() string { return fmt.Sprint(8 + rng.IntN(120)) }
	genTimeout := func() string { return fmt.Sprintf("%d seconds", 5+5*rng.IntN(24)) }
	var out []entity
	for i := 0; i < n; i++ {
		pkg := pick(rng, pkgs)
		noun := nm.word()
		verb := pick(rng, codeVerbs)
		fn := verb + noun + "s"
		// The file name and error text are independent of the function's name, so that no choice
		// can be eliminated by matching words of the question.
		file := strings.ToLower(nm.word()) + ".go"
		constName := "Max" + noun + "Depth"
		depth := genDepth()
		timeoutSecs := 5 + 5*rng.IntN(24)
		timeout := fmt.Sprintf("%d seconds", timeoutSecs)
		ret := strings.ReplaceAll(pick(rng, retKinds), "%s", noun)
		nParams := 1 + rng.IntN(5)
		params := []string{fmt.Sprintf("items []%s", noun)}
		for j := 1; j < nParams; j++ {
			params = append(params, fmt.Sprintf("%s%d %s", pick(rng, []string{"limit", "label", "opt", "scale", "wait"}), j, pick(rng, paramTypes)))
		}
		lowerNoun := strings.ToLower(noun)
		genErr := func() string { return fmt.Sprintf("%s (code %d)", pick(rng, errPhrases), 10+rng.IntN(90)) }
		errMsg := genErr()
		errVar := "err" + noun
		var zero string
		switch {
		case strings.HasSuffix(ret, "error)"):
			zero = "nil, " + errVar
		case ret == "error":
			zero = errVar
		case ret == "int":
			zero = constName
		case ret == "(string, bool)":
			zero = `"", false`
		case ret == "float64":
			zero = "0"
		default:
			zero = "nil"
		}
		src := fmt.Sprintf(`package %[1]s

import (
	"errors"
	"time"
)

// %[2]s bounds how deeply %[3]s values may nest.
const %[2]s = %[4]s

// %[5]sTimeout is how long %[6]s waits before giving up: %[7]s.
const %[5]sTimeout = %[8]d * time.Second

// %[9]s is the error %[6]s reports: %[10]q.
var %[9]s = errors.New(%[10]q)

// %[3]s is one unit of work handled by package %[1]s.
type %[3]s struct {
	ID    int
	Label string
	Depth int
}

// %[6]s is defined in package %[1]s (file %[11]s). It takes %[12]d parameter(s) and returns %[13]s.
func %[6]s(%[14]s) %[13]s {
	deadline := time.Now().Add(%[5]sTimeout)
	_ = deadline
	return %[15]s
}
`, pkg, constName, noun, depth, lowerNoun, fn, timeout, timeoutSecs, errVar, errMsg, file, nParams, ret, strings.Join(params, ", "), zero)
		attrs := []attribute{
			{"package", pkg, "", fmt.Sprintf("Which package defines the function %s?", fn),
				fmt.Sprintf("%s is defined in package %s.", fn, pkg), fmt.Sprintf("In which package of %s is %s declared?", ModulePath, fn),
				func() string { return pick(rng, pkgs) }},
			// Return types mention the function's own type, so their distractors are the other
			// shapes of that same type (an empty field means: generator only, no pool).
			{"", ret, "", fmt.Sprintf("What does %s return?", fn), fmt.Sprintf("%s returns %s.", fn, ret),
				fmt.Sprintf("What is the result type of %s?", fn), func() string { return strings.ReplaceAll(pick(rng, retKinds), "%s", noun) }},
			{"params", fmt.Sprint(nParams), "", fmt.Sprintf("How many parameters does %s take?", fn),
				fmt.Sprintf("%s takes %d parameter(s).", fn, nParams), fmt.Sprintf("What is the number of arguments of %s?", fn), genCount},
			{"depth", depth, "", fmt.Sprintf("What is the value of the constant %s?", constName),
				fmt.Sprintf("%s is %s.", constName, depth), fmt.Sprintf("Which value is %s set to?", constName), genDepth},
			{"timeout", timeout, "", fmt.Sprintf("How long does %s wait before giving up?", fn),
				fmt.Sprintf("%s gives up after %s.", fn, timeout), fmt.Sprintf("What timeout does %s use?", fn), genTimeout},
			{"error", errMsg, "", fmt.Sprintf("What error message does %s report?", fn),
				fmt.Sprintf("%s reports the error %q.", fn, errMsg), fmt.Sprintf("Which error text comes from %s?", fn), genErr},
			{"file", file, "", fmt.Sprintf("In which file is %s defined?", fn), fmt.Sprintf("%s is defined in %s.", fn, file),
				fmt.Sprintf("Which source file contains %s?", fn), func() string { return strings.ToLower(nm.word()) + ".go" }},
		}
		out = append(out, entity{
			chunk: curriculum.Chunk{ID: fmt.Sprintf("code/%04d", i), Source: fmt.Sprintf("%s/%s/%s", ModulePath, pkg, file), Title: pkg + "/" + file, Text: src},
			attrs: attrs,
		})
	}
	return out
}
