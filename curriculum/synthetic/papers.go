package synthetic

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/perpetual-ml/perpetual/curriculum"
)

var (
	paperTasks = []string{"tide forecasting", "glacier mapping", "protein folding", "speech separation", "crop yield estimation",
		"traffic routing", "bird song recognition", "code repair", "weather nowcasting", "seismic event detection"}
	paperAdjs  = []string{"Sparse", "Recurrent", "Layered", "Adaptive", "Hierarchical", "Contrastive", "Gated", "Modular"}
	paperNouns = []string{"Attention", "Mixtures", "Transformers", "Memories", "Graphs", "Kernels", "Encoders", "Routers"}
	venueKinds = []string{"Symposium on", "Conference on", "Workshop on", "Journal of"}
	venueTopic = []string{"Tessellated Learning", "Applied Cognition", "Machine Perception", "Statistical Inference", "Neural Computation", "Data Systems"}
	firstNames = []string{"Ilsa", "Marek", "Tovah", "Ravi", "Anouk", "Celia", "Joon", "Farid", "Leni", "Odile", "Pavel", "Sanna"}
)

// papers makes n fictional research papers, one chunk each.
func papers(rng *rand.Rand, n int, nm *namer) []entity {
	var insts, venues []string
	for i := 0; i < max(4, n/3); i++ {
		insts = append(insts, "the University of "+nm.word())
		venues = append(venues, fmt.Sprintf("the %s %s %s", pick(rng, venueKinds), nm.word(), pick(rng, venueTopic)))
	}
	genAuthor := func() string { return pick(rng, firstNames) + " " + nm.word() }
	genDataset := func() string { return strings.ToUpper(nm.word()[:4]) + fmt.Sprintf("-%dK", 2+rng.IntN(98)) }
	genScore := func() string { return fmt.Sprintf("%d.%d%%", 61+rng.IntN(38), rng.IntN(10)) }
	genYear := func() string { return fmt.Sprint(2031 + rng.IntN(19)) }
	genLayers := func() string { return fmt.Sprintf("%d layers", 4+2*rng.IntN(30)) }
	genGain := func() string { return fmt.Sprintf("%d.%d points", 1+rng.IntN(12), rng.IntN(10)) }
	var out []entity
	for i := 0; i < n; i++ {
		method := nm.word() + pick(rng, []string{"Net", "Former", "Flow", "Mix", "Graph"})
		task := pick(rng, paperTasks)
		title := fmt.Sprintf("%s: %s %s for %s", method, pick(rng, paperAdjs), pick(rng, paperNouns), capitalize(task))
		author, inst, venue := genAuthor(), pick(rng, insts), pick(rng, venues)
		dataset, score, year, layers, gain := genDataset(), genScore(), genYear(), genLayers(), genGain()
		attrs := []attribute{
			{"author", author, fmt.Sprintf("The first author of the paper is %s.", author),
				fmt.Sprintf("Who is the first author of the %s paper?", method), fmt.Sprintf("The first author of the %s paper is %s.", method, author),
				fmt.Sprintf("Which researcher is listed first on the paper introducing %s?", method), genAuthor},
			{"institution", inst, fmt.Sprintf("The work was carried out at %s.", inst),
				fmt.Sprintf("At which institution was %s developed?", method), fmt.Sprintf("%s was developed at %s.", method, inst),
				fmt.Sprintf("Which university did the %s research come from?", method), func() string { return pick(rng, insts) }},
			{"dataset", dataset, fmt.Sprintf("%s is evaluated on the %s dataset.", method, dataset),
				fmt.Sprintf("On which dataset is %s evaluated?", method), fmt.Sprintf("%s is evaluated on %s.", method, dataset),
				fmt.Sprintf("Which benchmark dataset was used to test %s?", method), genDataset},
			{"score", score, fmt.Sprintf("On %s it reaches an accuracy of %s.", dataset, score),
				fmt.Sprintf("What accuracy does %s reach on %s?", method, dataset), fmt.Sprintf("%s reaches %s accuracy on %s.", method, score, dataset),
				fmt.Sprintf("What accuracy did the %s model report on %s?", method, dataset), genScore},
			{"year", year, fmt.Sprintf("The paper was published in %s.", year),
				fmt.Sprintf("When was the %s paper published?", method), fmt.Sprintf("The %s paper was published in %s.", method, year),
				fmt.Sprintf("In which year did the paper on %s appear?", method), genYear},
			{"layers", layers, fmt.Sprintf("The %s model stacks %s.", method, layers),
				fmt.Sprintf("How many layers does %s have?", method), fmt.Sprintf("%s has %s.", method, layers),
				fmt.Sprintf("What is the depth of the %s model?", method), genLayers},
			{"venue", venue, fmt.Sprintf("It appeared at %s.", venue),
				fmt.Sprintf("Where was the %s paper presented?", method), fmt.Sprintf("The %s paper was presented at %s.", method, venue),
				fmt.Sprintf("At which venue was %s published?", method), func() string { return pick(rng, venues) }},
			{"gain", gain, fmt.Sprintf("It improves on the previous best result by %s.", gain),
				fmt.Sprintf("By how much does %s improve on the previous best result?", method), fmt.Sprintf("%s improves on the previous best by %s.", method, gain),
				fmt.Sprintf("What margin over the prior state of the art does %s report?", method), genGain},
		}
		sentences := make([]string, len(attrs))
		for j, a := range attrs {
			sentences[j] = a.sentence
		}
		rng.Shuffle(len(sentences), func(x, y int) { sentences[x], sentences[y] = sentences[y], sentences[x] })
		text := fmt.Sprintf("Abstract. We introduce %s, a model for %s. %s\n\n%s",
			method, task, strings.Join(sentences[:4], " "), strings.Join(sentences[4:], " "))
		out = append(out, entity{
			chunk: curriculum.Chunk{ID: fmt.Sprintf("research/%04d", i), Source: "synthetic:research", Title: title, Text: text},
			attrs: attrs,
		})
	}
	return out
}
