package offline

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"github.com/perpetual-ml/perpetual/curriculum"
)

// ClozeOptions control the prose teacher.
type ClozeOptions struct {
	// Seed drives choice of sentences and distractors.
	Seed int64
	// PerChunk is the maximum number of cloze items per chunk (default 4).
	PerChunk int
	// Fragments also cuts text at ";" and double quotes and accepts pieces that are not full
	// sentences (product descriptions are mostly spec fragments).
	Fragments bool
}

// A span of a sentence that can be blanked: a number (with its unit word) or a named entity.
type span struct {
	text, kind string // kind: "year", "percent", "decimal", "integer", "entity"
	start, end int
}

var (
	numberRE = regexp.MustCompile(`\b\d[\d,]*(\.\d+)?(%| percent|[A-Za-z]{1,4}\b)?`)
	unitRE   = regexp.MustCompile(`^([\d,]*\d)(\.\d+)?([A-Za-z]{1,4})$`)
	entityRE = regexp.MustCompile(`\b[A-Z][a-z]+(?:[ -][A-Z][a-z]+)+\b`)
)

// numberKind classes a number so distractors share its shape: years with years, percentages with
// percentages, numbers with an attached unit ("16GB") with the same unit, decimals with the same
// count of decimals, integers with the same count of digits.
func numberKind(s string) string {
	if m := unitRE.FindStringSubmatch(s); m != nil {
		// "16GB", "5mm": same unit, same shape.
		return fmt.Sprintf("unit:%s:%d", strings.ToLower(m[3]), len(m[2]))
	}
	switch {
	case strings.HasSuffix(s, "%") || strings.HasSuffix(s, " percent"):
		return "percent"
	case strings.Contains(s, "."):
		return fmt.Sprintf("decimal%d", len(s)-strings.IndexByte(s, '.')-1)
	case len(s) == 4 && (strings.HasPrefix(s, "19") || strings.HasPrefix(s, "20")):
		return "year"
	}
	return fmt.Sprintf("integer%d", len(strings.ReplaceAll(s, ",", "")))
}

// isolated reports whether sent[start:end] stands alone: not a citation "[12]", not part of a
// URL, identifier or hyphenated token, not a section or figure number.
func isolated(sent string, start, end int) bool {
	if start > 0 {
		switch c := sent[start-1]; {
		case c == '[' || c == '/' || c == '-' || c == '_' || c == '.' || c == '#' || c == '@':
			return false
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			return false
		}
	}
	if end < len(sent) {
		switch c := sent[end]; {
		case c == ']' || c == '/' || c == '-' || c == '_' || c == '@':
			return false
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			return false
		}
	}
	before := strings.ToLower(sent[max(0, start-8):start])
	for _, w := range []string{"section ", "fig. ", "figure ", "table ", "eq. ", "sec. "} {
		if strings.HasSuffix(before, w) {
			return false
		}
	}
	return true
}

// spans finds blankable spans of a sentence. An entity at the very start of the sentence is kept
// only when it has two or more capitalised words (a single capitalised first word is just the
// sentence start).
func spans(sent string) []span {
	var out []span
	for _, m := range numberRE.FindAllStringIndex(sent, -1) {
		t := sent[m[0]:m[1]]
		if len(strings.Trim(t, ",")) == 0 {
			continue
		}
		t = strings.TrimRight(t, ",")
		// Single digits are mostly enumerations ("three roles", "Section 2"): not facts.
		if len(t) < 2 || !isolated(sent, m[0], m[0]+len(t)) {
			continue
		}
		out = append(out, span{t, numberKind(t), m[0], m[0] + len(t)})
	}
	for _, m := range entityRE.FindAllStringIndex(sent, -1) {
		if !isolated(sent, m[0], m[1]) {
			continue
		}
		out = append(out, span{sent[m[0]:m[1]], "entity", m[0], m[1]})
	}
	return out
}

// perturb makes a same-shape alternative to a number (another year, percentage, decimal with the
// same number of decimals, integer of similar size) when the corpus has too few of that kind.
func perturb(rng *rand.Rand, s, kind string) string {
	if m := unitRE.FindStringSubmatch(s); m != nil {
		num := m[1] + m[2]
		k := "integer"
		if m[2] != "" {
			k = "decimal"
		}
		return perturb(rng, num, k) + m[3]
	}
	switch {
	case kind == "year":
		y, _ := strconv.Atoi(s)
		return strconv.Itoa(y + []int{-3, -2, -1, 1, 2, 3, 5, -5}[rng.IntN(8)])
	case kind == "percent" || strings.HasPrefix(kind, "decimal"):
		suffix := ""
		num := s
		for _, suf := range []string{"%", " percent"} {
			if strings.HasSuffix(s, suf) {
				suffix, num = suf, strings.TrimSuffix(s, suf)
			}
		}
		f, err := strconv.ParseFloat(strings.ReplaceAll(num, ",", ""), 64)
		if err != nil {
			return s
		}
		dec := 0
		if i := strings.IndexByte(num, '.'); i >= 0 {
			dec = len(num) - i - 1
		}
		f *= []float64{0.5, 0.7, 0.8, 1.2, 1.3, 1.5, 2}[rng.IntN(7)]
		return strconv.FormatFloat(f, 'f', dec, 64) + suffix
	default:
		n, err := strconv.Atoi(strings.ReplaceAll(s, ",", ""))
		if err != nil {
			return s
		}
		// Another integer with the same number of digits.
		digits := len(strconv.Itoa(n))
		lo, hi := 1, 10
		for i := 1; i < digits; i++ {
			lo, hi = lo*10, hi*10
		}
		if digits == 1 {
			lo = 0
		}
		return strconv.Itoa(lo + rng.IntN(hi-lo))
	}
}

// Cloze writes fill-in-the-blank facts from prose chunks. The flashcard asks to complete the
// sentence; the test question is the same blanked sentence with choices. Distractors are spans of
// the same kind elsewhere in the corpus (years with years, entities with entities), topped up by
// same-shape numbers.
func Cloze(chunks []curriculum.Chunk, opt ClozeOptions) []curriculum.Fact {
	if opt.PerChunk <= 0 {
		opt.PerChunk = 4
	}
	rng := rand.New(rand.NewPCG(uint64(opt.Seed), 0xc102e))
	type cand struct {
		chunk string
		sent  string
		sp    span
	}
	pools := map[string][]string{}
	var perChunk [][]cand
	for _, c := range chunks {
		var cs []cand
		text := c.Text
		minLen := 40
		if opt.Fragments {
			text = strings.NewReplacer(";", ".\n\n", `"`, "\n\n").Replace(text)
			minLen = 25
		}
		for _, sent := range sentences(text) {
			sent = strings.TrimSpace(strings.TrimLeft(sent, "•*-–, "))
			if len(sent) < minLen || len(sent) > 300 || (!opt.Fragments && !unicode.IsUpper(rune(sent[0]))) {
				continue
			}
			for _, sp := range spans(sent) {
				pools[sp.kind] = append(pools[sp.kind], sp.text)
				cs = append(cs, cand{c.ID, sent, sp})
			}
		}
		perChunk = append(perChunk, cs)
	}
	var facts []curriculum.Fact
	// Overlapping chunks repeat sentences: each sentence gives at most one item overall.
	usedSent := map[string]bool{}
	for _, cs := range perChunk {
		rng.Shuffle(len(cs), func(i, j int) { cs[i], cs[j] = cs[j], cs[i] })
		n := 0
		for _, c := range cs {
			if n == opt.PerChunk {
				break
			}
			if usedSent[c.sent] {
				continue
			}
			d := pickDistractors(rng, pools[c.sp.kind], c.sp.text, 3)
			for tries := 0; len(d) < 3 && c.sp.kind != "entity" && tries < 20; tries++ {
				p := perturb(rng, c.sp.text, c.sp.kind)
				if key(p) != key(c.sp.text) && !contains(d, p) {
					d = append(d, p)
				}
			}
			if len(d) < 3 {
				continue
			}
			blank := c.sent[:c.sp.start] + "____" + c.sent[c.sp.end:]
			// The answer must not remain visible elsewhere in the blanked sentence.
			if strings.Contains(blank, c.sp.text) {
				continue
			}
			usedSent[c.sent] = true
			n++
			facts = append(facts, curriculum.Fact{
				ChunkID:      c.chunk,
				Question:     fmt.Sprintf("Fill in the blank: %s", blank),
				Answer:       c.sent,
				TestQuestion: fmt.Sprintf("Which completes the sentence? %s", blank),
				TestAnswer:   c.sp.text,
				Distractors:  d,
			})
		}
	}
	return facts
}

// sentences splits prose at ".", "!" or "?" followed by white space (so "4.2" stays whole) and at
// blank lines; line breaks inside a paragraph become spaces.
func sentences(text string) []string {
	var out []string
	for _, para := range strings.Split(text, "\n\n") {
		para = strings.Join(strings.Fields(para), " ")
		if para != "" && !strings.ContainsAny(para[len(para)-1:], ".!?") {
			para += "." // a paragraph without final punctuation is still a piece
		}
		start := 0
		for i := 0; i < len(para); i++ {
			if c := para[i]; (c == '.' || c == '!' || c == '?') && (i+1 == len(para) || para[i+1] == ' ') {
				out = append(out, strings.TrimSpace(para[start:i+1]))
				start = i + 1
			}
		}
	}
	return out
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if key(x) == key(s) {
			return true
		}
	}
	return false
}
