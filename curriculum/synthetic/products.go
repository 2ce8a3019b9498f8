package synthetic

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/perpetual-ml/perpetual/curriculum"
)

var (
	categories = []string{"kettle", "desk lamp", "backpack", "headset", "blender", "drill", "tent", "keyboard", "camera", "bicycle helmet", "coffee grinder", "router"}
	colours    = []string{"teal", "amber", "slate grey", "crimson", "ivory", "olive", "cobalt blue", "copper", "plum", "sand"}
	materials  = []string{"brushed aluminium", "recycled polymer", "oak veneer", "carbon fibre", "borosilicate glass", "woven hemp", "stainless steel", "ceramic"}
	brandTails = []string{"Labs", "Works", "Industries", "Outfitters", "Systems", "& Sons"}
)

// products makes n fictional products, one chunk each.
func products(rng *rand.Rand, n int, nm *namer) []entity {
	var brands, cities []string
	for i := 0; i < max(4, n/3); i++ {
		brands = append(brands, nm.word()+" "+pick(rng, brandTails))
		cities = append(cities, nm.word())
	}
	genPrice := func() string { return fmt.Sprintf("$%d.%02d", 19+rng.IntN(480), []int{0, 49, 95, 99}[rng.IntN(4)]) }
	genWeight := func() string { return thousands(150+10*rng.IntN(400)) + " grams" }
	genYear := func() string { return fmt.Sprint(2031 + rng.IntN(19)) }
	genWarranty := func() string { return fmt.Sprintf("%d years", 2+rng.IntN(9)) }
	var out []entity
	for i := 0; i < n; i++ {
		cat := pick(rng, categories)
		name := "the " + nm.word() + " " + cat
		title := capitalize(strings.TrimPrefix(name, "the "))
		brand, city := pick(rng, brands), pick(rng, cities)
		price, weight, year, warranty := genPrice(), genWeight(), genYear(), genWarranty()
		colour, material := pick(rng, colours), pick(rng, materials)
		attrs := []attribute{
			{"brand", brand, fmt.Sprintf("It is made by %s.", brand),
				fmt.Sprintf("Which company makes %s?", name), fmt.Sprintf("%s is made by %s.", capitalize(name), brand),
				fmt.Sprintf("%s is a product of which manufacturer?", capitalize(name)), func() string { return pick(rng, brands) }},
			{"price", price, fmt.Sprintf("Its list price is %s.", price),
				fmt.Sprintf("How much does %s cost?", name), fmt.Sprintf("%s costs %s.", capitalize(name), price),
				fmt.Sprintf("What is the list price of %s?", name), genPrice},
			{"weight", weight, fmt.Sprintf("It weighs %s.", weight),
				fmt.Sprintf("How much does %s weigh?", name), fmt.Sprintf("%s weighs %s.", capitalize(name), weight),
				fmt.Sprintf("What is the weight of %s?", name), genWeight},
			{"city", city, fmt.Sprintf("It is manufactured in the city of %s.", city),
				fmt.Sprintf("Where is %s manufactured?", name), fmt.Sprintf("%s is manufactured in %s.", capitalize(name), city),
				fmt.Sprintf("In which city is %s produced?", name), func() string { return pick(rng, cities) }},
			{"year", year, fmt.Sprintf("It was first released in %s.", year),
				fmt.Sprintf("When was %s released?", name), fmt.Sprintf("%s was released in %s.", capitalize(name), year),
				fmt.Sprintf("In which year did %s come out?", name), genYear},
			{"colour", colour, fmt.Sprintf("It comes in %s.", colour),
				fmt.Sprintf("What colour is %s?", name), fmt.Sprintf("%s comes in %s.", capitalize(name), colour),
				fmt.Sprintf("Which colour is %s sold in?", name), func() string { return pick(rng, colours) }},
			{"material", material, fmt.Sprintf("Its body is %s.", material),
				fmt.Sprintf("What is %s made of?", name), fmt.Sprintf("%s is made of %s.", capitalize(name), material),
				fmt.Sprintf("Which material is the body of %s?", name), func() string { return pick(rng, materials) }},
			{"warranty", warranty, fmt.Sprintf("It carries a warranty of %s.", warranty),
				fmt.Sprintf("How long is the warranty of %s?", name), fmt.Sprintf("%s has a %s warranty.", capitalize(name), warranty),
				fmt.Sprintf("What warranty period comes with %s?", name), genWarranty},
		}
		sentences := make([]string, len(attrs))
		for j, a := range attrs {
			sentences[j] = a.sentence
		}
		rng.Shuffle(len(sentences), func(x, y int) { sentences[x], sentences[y] = sentences[y], sentences[x] })
		text := fmt.Sprintf("%s is a %s. %s", title, cat, strings.Join(sentences, " "))
		out = append(out, entity{
			chunk: curriculum.Chunk{ID: fmt.Sprintf("products/%04d", i), Source: "synthetic:products", Title: title, Text: text},
			attrs: attrs,
		})
	}
	return out
}
