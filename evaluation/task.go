package evaluation

import (
	"embed"
	"fmt"
	"os"
	"path"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/perpetual-ml/perpetual/curriculum"
)

// Formulations of a multiple-choice question.
const (
	// Letters scores the letters "A".."D" after a prompt that lists the lettered options (the paper).
	Letters = "letters"
	// Cloze scores each choice's own text after a prompt with the question only.
	Cloze = "cloze"
	// Recall generates an answer greedily after a prompt with the question only (no options) and
	// scores it against the gold choice's text (normalised exact match and containment).
	Recall = "recall"
)

// Formulations lists every formulation, in report order.
var Formulations = []string{Letters, Cloze, Recall}

// Output types of a task (lm-evaluation-harness's output_type).
const (
	// MultipleChoice scores each choice's log-likelihood (letters and cloze).
	MultipleChoice = "multiple_choice"
	// GenerateUntil generates a continuation until a stop string or token (recall).
	GenerateUntil = "generate_until"
)

// MaxGenToks bounds generation_kwargs.max_gen_toks: recall answers are a few words, and generation
// is the slow part of an evaluation.
const MaxGenToks = 256

//go:embed tasks/*.yaml
var taskFiles embed.FS

// Task is a task definition in the shape of an lm-evaluation-harness task YAML (field names as
// there): multiple_choice (letters, cloze) or generate_until (recall), plus Perpetual's extras for
// retrieved context and inline few-shot examples. Templates use {question}, {c0}..{c9} or the harness's Jinja spellings {{question}},
// {{choices[0]}}, optionally with .strip() ({{question.strip()}}); the context template uses
// {context}.
type Task struct {
	// Name is the task name ("task" in lm-eval YAML).
	Name string `yaml:"task" json:"task"`
	// OutputType is MultipleChoice (the default) or GenerateUntil.
	OutputType string `yaml:"output_type" json:"output_type"`
	// Formulation is Letters or Cloze (multiple_choice; derived from DocToChoice when empty) or
	// Recall (generate_until).
	Formulation string `yaml:"formulation" json:"formulation"`
	// DocToText is the prompt template.
	DocToText string `yaml:"doc_to_text" json:"doc_to_text"`
	// DocToChoice is either a fixed list of choice strings (letters) or the field name "choices"
	// (the question's own choice texts, cloze). Held as a YAML node because lm-eval allows both.
	// A generate_until task has none.
	DocToChoice ChoiceSpec `yaml:"doc_to_choice" json:"doc_to_choice"`
	// DocToTarget names the gold field; only "answer" (an index) is supported. A generate_until
	// task's target is the text of the gold choice.
	DocToTarget string `yaml:"doc_to_target" json:"doc_to_target"`
	// GenerationKwargs configure a generate_until task's decoding (lm-eval's generation_kwargs):
	// greedy, at most max_gen_toks tokens, cut at the first until string.
	GenerationKwargs *GenerationKwargs `yaml:"generation_kwargs" json:"generation_kwargs,omitempty"`
	// TargetDelimiter goes between the context and each choice (" " in the harness). Under a
	// ChatTemplate the scored choices take ChatTargetDelimiter instead (few-shot answers keep it).
	TargetDelimiter string `yaml:"target_delimiter" json:"target_delimiter"`
	// FewshotDelimiter separates few-shot examples from each other and from the question.
	FewshotDelimiter string `yaml:"fewshot_delimiter" json:"fewshot_delimiter"`
	// NumFewshot is how many of FewshotExamples to prepend (in order).
	NumFewshot int `yaml:"num_fewshot" json:"num_fewshot"`
	// FewshotExamples are solved questions used as few-shot examples.
	FewshotExamples []curriculum.Question `yaml:"fewshot_examples" json:"fewshot_examples,omitempty"`
	// Description is prepended to the whole prompt (after retrieved context).
	Description string `yaml:"description" json:"description"`
	// StripQuestion strips the question's leading and trailing whitespace (Python's str.strip)
	// before it is rendered, few-shot examples' included: the paper's doc_to_text was
	// "{{question.strip()}}", which a template may also spell.
	StripQuestion bool `yaml:"strip_question" json:"strip_question,omitempty"`
	// ContextTemplate wraps retrieved passages, {context} being the passages joined by
	// PassageDelimiter; it is prepended to the prompt.
	ContextTemplate string `yaml:"context_template" json:"context_template"`
	// PassageDelimiter joins retrieved passages ("\n\n"; the paper joined them with "\n").
	PassageDelimiter string `yaml:"passage_delimiter" json:"passage_delimiter"`
	// StripPassages strips each retrieved passage (Python's str.strip) before they are joined,
	// as the paper did.
	StripPassages bool `yaml:"strip_passages" json:"strip_passages,omitempty"`
	// ChatTemplate wraps the whole prompt (retrieved context, few-shot, question) for an
	// instruct model, {prompt} marking where it goes, e.g. Gemma's
	// "<start_of_turn>user\n{prompt}<end_of_turn>\n<start_of_turn>model\n". Empty = plain prompt.
	ChatTemplate string `yaml:"chat_template" json:"chat_template,omitempty"`
	// ChatTargetDelimiter goes before each scored choice when ChatTemplate is set. Unset, it is
	// lm-evaluation-harness's rule under apply_chat_template: "" (the bare choice, "A" rather
	// than " A", right after the model turn's opening). The embedded tasks set " ": the zoo's
	// instruct models answer " A" after the model turn (see docs/evaluation.md).
	ChatTargetDelimiter *string `yaml:"chat_target_delimiter" json:"chat_target_delimiter,omitempty"`
	// Metadata keeps lm-eval fields we do not interpret (metric_list, dataset_path, ...; the
	// keys of lmEvalKeys). Other unknown keys are refused by ParseTask.
	Metadata map[string]any `yaml:",inline" json:"-"`
}

// TaskOptions are rendering switches applied over a task (the embedded ones, in a suite): each
// set field replaces the task's own. The zero value changes nothing.
type TaskOptions struct {
	// StripQuestion sets Task.StripQuestion when true.
	StripQuestion bool `yaml:"strip_question,omitempty" json:"strip_question,omitempty"`
	// StripPassages sets Task.StripPassages when true.
	StripPassages bool `yaml:"strip_passages,omitempty" json:"strip_passages,omitempty"`
	// PassageDelimiter replaces Task.PassageDelimiter when set.
	PassageDelimiter *string `yaml:"passage_delimiter,omitempty" json:"passage_delimiter,omitempty"`
	// ChatTargetDelimiter replaces Task.ChatTargetDelimiter when set ("" = lm-evaluation-harness's
	// apply_chat_template behaviour).
	ChatTargetDelimiter *string `yaml:"chat_target_delimiter,omitempty" json:"chat_target_delimiter,omitempty"`
}

// IsZero reports whether the options change nothing.
func (o TaskOptions) IsZero() bool {
	return !o.StripQuestion && !o.StripPassages && o.PassageDelimiter == nil && o.ChatTargetDelimiter == nil
}

// Apply sets t's fields from the options that are set.
func (o TaskOptions) Apply(t *Task) {
	if o.StripQuestion {
		t.StripQuestion = true
	}
	if o.StripPassages {
		t.StripPassages = true
	}
	if o.PassageDelimiter != nil {
		t.PassageDelimiter = *o.PassageDelimiter
	}
	if o.ChatTargetDelimiter != nil {
		d := *o.ChatTargetDelimiter
		t.ChatTargetDelimiter = &d
	}
}

// ChoiceSpec is doc_to_choice: a fixed list, or a field of the question ("choices").
type ChoiceSpec struct {
	// Fixed is the list form (letters).
	Fixed []string
	// Field is the field form; "choices" is the only field a question has.
	Field string
}

// UnmarshalYAML accepts a sequence of strings or a field name (optionally as "{{choices}}").
func (c *ChoiceSpec) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.SequenceNode:
		return n.Decode(&c.Fixed)
	case yaml.ScalarNode:
		c.Field = strings.TrimSpace(strings.Trim(strings.TrimSpace(n.Value), "{}"))
		return nil
	}
	return fmt.Errorf("line %d: doc_to_choice must be a list of strings or a field name", n.Line)
}

// MarshalJSON writes the list or the field name, as in the YAML.
func (c ChoiceSpec) MarshalJSON() ([]byte, error) {
	if c.Fixed != nil {
		return marshalJSON(c.Fixed)
	}
	return marshalJSON(c.Field)
}

// GenerationKwargs is the part of lm-evaluation-harness's generation_kwargs that Perpetual
// implements: greedy decoding (do_sample false, temperature 0), max_gen_toks and until. Any other
// key is refused, since it would change the answers without saying so.
type GenerationKwargs struct {
	// Until are stop strings: generation ends when the answer contains one, and the answer is cut
	// before the first (lm-eval's until; a string or a list in YAML). The model's stop tokens
	// (its tokenizer's EOS) end it too.
	Until []string `yaml:"until" json:"until"`
	// MaxGenToks is the most tokens generated per question, 1 to MaxGenToks.
	MaxGenToks int `yaml:"max_gen_toks" json:"max_gen_toks"`
	// DoSample must be false: recall is greedy.
	DoSample bool `yaml:"do_sample" json:"do_sample"`
	// Temperature must be 0 when given: recall is greedy.
	Temperature float64 `yaml:"temperature" json:"temperature,omitempty"`
}

// UnmarshalYAML refuses keys other than until, max_gen_toks, do_sample and temperature, and
// accepts until as one string or a list.
func (g *GenerationKwargs) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: generation_kwargs must be a mapping (until, max_gen_toks, do_sample)", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "until":
			if v.Kind == yaml.ScalarNode {
				g.Until = []string{v.Value}
				continue
			}
			if err := v.Decode(&g.Until); err != nil {
				return fmt.Errorf("line %d: generation_kwargs.until must be a string or a list of strings: %w", v.Line, err)
			}
		case "max_gen_toks":
			if err := v.Decode(&g.MaxGenToks); err != nil {
				return fmt.Errorf("line %d: generation_kwargs.max_gen_toks must be an integer: %w", v.Line, err)
			}
		case "do_sample":
			if err := v.Decode(&g.DoSample); err != nil {
				return fmt.Errorf("line %d: generation_kwargs.do_sample must be true or false: %w", v.Line, err)
			}
		case "temperature":
			if err := v.Decode(&g.Temperature); err != nil {
				return fmt.Errorf("line %d: generation_kwargs.temperature must be a number: %w", v.Line, err)
			}
		default:
			return fmt.Errorf("line %d: generation_kwargs key %q not supported (Perpetual generates greedily: until, max_gen_toks, do_sample: false, temperature: 0)", k.Line, k.Value)
		}
	}
	return nil
}

// validate checks the settings of a generate_until task.
func (g *GenerationKwargs) validate() error {
	switch {
	case g.MaxGenToks < 1 || g.MaxGenToks > MaxGenToks:
		return fmt.Errorf("generation_kwargs.max_gen_toks %d: give the most tokens of an answer, 1 to %d (recall answers are short; 24 is plenty for a name or a number)", g.MaxGenToks, MaxGenToks)
	case g.DoSample:
		return fmt.Errorf("generation_kwargs.do_sample: true is not supported: recall answers are greedy (set do_sample: false or leave it out)")
	case g.Temperature != 0:
		return fmt.Errorf("generation_kwargs.temperature %v is not supported: recall answers are greedy (set 0 or leave it out)", g.Temperature)
	}
	for i, u := range g.Until {
		if u == "" {
			return fmt.Errorf("generation_kwargs.until[%d] is empty: a stop string must have at least one character", i)
		}
	}
	return nil
}

// DefaultTasks lists the embedded task names.
func DefaultTasks() []string {
	entries, _ := taskFiles.ReadDir("tasks")
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	sort.Strings(names)
	return names
}

// DefaultTask returns the embedded task for a formulation: "perpetual_letters", "perpetual_cloze"
// or "perpetual_recall".
func DefaultTask(formulation string) (*Task, error) {
	name := "perpetual_" + formulation
	raw, err := taskFiles.ReadFile(path.Join("tasks", name+".yaml"))
	if err != nil {
		return nil, fmt.Errorf("no default task for formulation %q (have %v)", formulation, DefaultTasks())
	}
	return ParseTask(raw, "embedded "+name+".yaml")
}

// LoadTask reads a task YAML (or JSON, which is YAML) file.
func LoadTask(file string) (*Task, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading task: %w", err)
	}
	return ParseTask(raw, file)
}

// lmEvalKeys are the lm-evaluation-harness task keys Perpetual reads but does not interpret: they
// go to Task.Metadata. Any other key that is not a Task field is refused (a misspelt
// "doc_to_txt" or "num_few_shot" must not be ignored).
var lmEvalKeys = map[string]bool{
	"task_alias": true, "tag": true, "group": true, "group_alias": true, "dataset_path": true,
	"dataset_name": true, "dataset_kwargs": true, "custom_dataset": true, "training_split": true,
	"validation_split": true, "test_split": true, "fewshot_split": true, "fewshot_config": true,
	"process_docs": true, "process_results": true, "doc_to_image": true, "doc_to_audio": true,
	"use_prompt": true, "metric_list": true, "repeats": true,
	"filter_list": true, "should_decontaminate": true, "doc_to_decontamination_query": true,
	"gen_prefix": true, "unsafe_code": true, "metadata": true,
}

// taskKeys are the YAML keys of Task's own fields.
func taskKeys() map[string]bool {
	keys := map[string]bool{}
	rt := reflect.TypeFor[Task]()
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("yaml"), ",")
		if name != "" {
			keys[name] = true
		}
	}
	return keys
}

// checkTaskKeys refuses top-level keys that are neither Task fields nor known lm-eval keys.
func checkTaskKeys(raw []byte) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return err
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil // empty or not a mapping: Unmarshal into Task reports it
	}
	known := taskKeys()
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		if !known[k.Value] && !lmEvalKeys[k.Value] {
			return fmt.Errorf("line %d: unknown key %q (not a task field nor an lm-evaluation-harness task key; check its spelling)", k.Line, k.Value)
		}
	}
	return nil
}

// ParseTask decodes and validates a task definition; errors name source. Unknown keys are
// refused; lm-evaluation-harness keys that Perpetual does not interpret (dataset_path,
// metric_list, ...) are kept in Metadata.
func ParseTask(raw []byte, source string) (*Task, error) {
	t := &Task{TargetDelimiter: " ", FewshotDelimiter: "\n\n", ContextTemplate: "{context}\n\n", PassageDelimiter: "\n\n"}
	if err := checkTaskKeys(raw); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	if err := yaml.Unmarshal(raw, t); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	return t, nil
}

// Validate checks the fields and fills OutputType and Formulation (from DocToChoice for
// multiple_choice) when they are empty.
func (t *Task) Validate() error {
	if t.Name == "" {
		return fmt.Errorf("task has no name (field \"task\")")
	}
	if t.OutputType == "" {
		t.OutputType = MultipleChoice
	}
	if t.DocToText == "" {
		return fmt.Errorf("task %s: doc_to_text is empty", t.Name)
	}
	if t.DocToTarget == "" {
		t.DocToTarget = "answer"
	}
	if strings.Trim(t.DocToTarget, "{} ") != "answer" {
		return fmt.Errorf("task %s: doc_to_target %q not supported (only \"answer\", the gold index)", t.Name, t.DocToTarget)
	}
	switch t.OutputType {
	case MultipleChoice:
		if err := t.validateChoices(); err != nil {
			return err
		}
	case GenerateUntil:
		if err := t.validateGeneration(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("task %s: output_type %q not supported (%s for letters and cloze, %s for recall)", t.Name, t.OutputType, MultipleChoice, GenerateUntil)
	}
	if t.NumFewshot < 0 || t.NumFewshot > len(t.FewshotExamples) {
		return fmt.Errorf("task %s: num_fewshot %d but %d fewshot_examples", t.Name, t.NumFewshot, len(t.FewshotExamples))
	}
	if !strings.Contains(t.ContextTemplate, "{context}") && !strings.Contains(t.ContextTemplate, "{{context}}") {
		return fmt.Errorf("task %s: context_template %q lacks {context}", t.Name, t.ContextTemplate)
	}
	if t.ChatTemplate != "" && strings.Count(t.ChatTemplate, "{prompt}") != 1 {
		return fmt.Errorf("task %s: chat_template must contain {prompt} exactly once", t.Name)
	}
	// Check the templates parse against a dummy question.
	dummy := curriculum.Question{Question: "q", Choices: make([]string, 10)}
	if _, err := render(t.DocToText, &dummy, ""); err != nil {
		return fmt.Errorf("task %s: doc_to_text: %w", t.Name, err)
	}
	return nil
}

// validateChoices checks a multiple_choice task's choices and formulation.
func (t *Task) validateChoices() error {
	switch {
	case len(t.DocToChoice.Fixed) > 0:
		if t.Formulation == "" {
			t.Formulation = Letters
		}
	case t.DocToChoice.Field == "choices":
		if t.Formulation == "" {
			t.Formulation = Cloze
		}
	default:
		return fmt.Errorf("task %s: doc_to_choice must be a list (e.g. [A, B, C, D]) or \"choices\", got %q", t.Name, t.DocToChoice.Field)
	}
	if t.Formulation == Recall {
		return fmt.Errorf("task %s: formulation %q generates its answer: give it output_type %s and generation_kwargs, without doc_to_choice", t.Name, Recall, GenerateUntil)
	}
	if t.Formulation != Letters && t.Formulation != Cloze {
		return fmt.Errorf("task %s: formulation %q is not one of %v", t.Name, t.Formulation, Formulations)
	}
	if t.GenerationKwargs != nil {
		return fmt.Errorf("task %s: generation_kwargs belong to output_type %s; a %s task scores its choices without generating", t.Name, GenerateUntil, MultipleChoice)
	}
	return nil
}

// validateGeneration checks a generate_until task: the recall formulation, no choices to score,
// greedy generation settings.
func (t *Task) validateGeneration() error {
	if t.Formulation == "" {
		t.Formulation = Recall
	}
	if t.Formulation != Recall {
		return fmt.Errorf("task %s: output_type %s is the %q formulation, not %q", t.Name, GenerateUntil, Recall, t.Formulation)
	}
	if len(t.DocToChoice.Fixed) > 0 || t.DocToChoice.Field != "" {
		return fmt.Errorf("task %s: doc_to_choice is for %s tasks; a %s task is scored against the gold choice's text (remove doc_to_choice)", t.Name, MultipleChoice, GenerateUntil)
	}
	if t.GenerationKwargs == nil {
		return fmt.Errorf("task %s: output_type %s needs generation_kwargs with max_gen_toks (and until, the stop strings, e.g. [\"\\n\"])", t.Name, GenerateUntil)
	}
	if err := t.GenerationKwargs.validate(); err != nil {
		return fmt.Errorf("task %s: %w", t.Name, err)
	}
	return nil
}

// Generates reports whether the task generates its answer (generate_until, the recall
// formulation) rather than scoring choices.
func (t *Task) Generates() bool { return t.OutputType == GenerateUntil }

// Choices returns the strings scored as continuations for q (for a generate_until task, q's own
// choices: its few-shot answers and its target are the gold choice's text).
func (t *Task) Choices(q *curriculum.Question) []string {
	if f := t.DocToChoice.Fixed; len(f) > 0 {
		// A question with fewer options than letters is scored on its own letters only.
		return f[:min(len(f), len(q.Choices))]
	}
	return q.Choices
}

// Prompt renders the text that precedes the target delimiter for q: description, few-shot
// examples, then the question. Retrieved context is prepended by the caller (see Instances).
func (t *Task) Prompt(q *curriculum.Question) (string, error) {
	var b strings.Builder
	b.WriteString(t.Description)
	for i := 0; i < t.NumFewshot; i++ {
		ex := &t.FewshotExamples[i]
		text, err := render(t.DocToText, t.question(ex), "")
		if err != nil {
			return "", fmt.Errorf("few-shot example %d: %w", i, err)
		}
		ch := t.Choices(ex)
		if ex.Answer < 0 || ex.Answer >= len(ch) {
			return "", fmt.Errorf("few-shot example %d: answer %d out of range", i, ex.Answer)
		}
		b.WriteString(text + t.TargetDelimiter + ch[ex.Answer] + t.FewshotDelimiter)
	}
	text, err := render(t.DocToText, t.question(q), "")
	if err != nil {
		return "", err
	}
	b.WriteString(text)
	return b.String(), nil
}

// question is q as the template sees it: stripped when StripQuestion says so.
func (t *Task) question(q *curriculum.Question) *curriculum.Question {
	if !t.StripQuestion {
		return q
	}
	c := *q
	c.Question = pyStrip(c.Question)
	return &c
}

// ContinuationDelimiter is what goes between the context and each scored choice: TargetDelimiter,
// or under a ChatTemplate, ChatTargetDelimiter ("" when unset, as lm-evaluation-harness's
// apply_chat_template without a gen_prefix).
func (t *Task) ContinuationDelimiter() string {
	if t.ChatTemplate == "" {
		return t.TargetDelimiter
	}
	if t.ChatTargetDelimiter != nil {
		return *t.ChatTargetDelimiter
	}
	return ""
}

// ContextPrefix renders retrieved passages with the context template ("" for none).
func (t *Task) ContextPrefix(passages []string) (string, error) {
	if len(passages) == 0 {
		return "", nil
	}
	if t.StripPassages {
		stripped := make([]string, len(passages))
		for i, p := range passages {
			stripped[i] = pyStrip(p)
		}
		passages = stripped
	}
	return render(t.ContextTemplate, nil, strings.Join(passages, t.PassageDelimiter))
}

// WrapChat applies ChatTemplate to a full prompt.
func (t *Task) WrapChat(prompt string) string {
	if t.ChatTemplate == "" {
		return prompt
	}
	return strings.Replace(t.ChatTemplate, "{prompt}", prompt, 1)
}

// placeholderRE matches {name}, {{ name }}, {{choices[N]}} and {{name.strip()}} in templates.
var placeholderRE = regexp.MustCompile(`\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\[[0-9]+\])?)(\.strip\(\))?\s*\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// jinjaRE matches any {{ ... }} expression, to reject the Jinja we do not implement.
var jinjaRE = regexp.MustCompile(`\{\{[^{}]*\}\}`)

// render substitutes placeholders; q may be nil when only {context} is allowed.
func render(tmpl string, q *curriculum.Question, context string) (string, error) {
	for _, m := range jinjaRE.FindAllString(tmpl, -1) {
		if placeholderRE.FindString(m) != m {
			return "", fmt.Errorf("template expression %s not supported (use {{question}}, {{choices[N]}}, {{context}}, each optionally with .strip())", m)
		}
	}
	var err error
	out := placeholderRE.ReplaceAllStringFunc(tmpl, func(m string) string {
		sub := placeholderRE.FindStringSubmatch(m)
		name := sub[1] + sub[3]
		val, e := field(name, q, context)
		if e != nil && err == nil {
			err = e
		}
		if sub[2] != "" {
			val = pyStrip(val)
		}
		return val
	})
	return out, err
}

// pyStrip is Python's str.strip(): it trims what str.isspace calls whitespace, which is Go's
// unicode.IsSpace plus the separators U+001C..U+001F.
func pyStrip(s string) string {
	return strings.TrimFunc(s, func(r rune) bool { return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f) })
}

func field(name string, q *curriculum.Question, context string) (string, error) {
	if name == "context" {
		return context, nil
	}
	if q == nil {
		return "", fmt.Errorf("unknown placeholder {%s} (only {context} here)", name)
	}
	idx := -1
	switch {
	case name == "question":
		return q.Question, nil
	case strings.HasPrefix(name, "choices[") && strings.HasSuffix(name, "]"):
		idx, _ = strconv.Atoi(name[len("choices[") : len(name)-1])
	case len(name) >= 2 && name[0] == 'c' && name[1] >= '0' && name[1] <= '9':
		n, e := strconv.Atoi(name[1:])
		if e != nil {
			return "", fmt.Errorf("unknown placeholder {%s}", name)
		}
		idx = n
	default:
		return "", fmt.Errorf("unknown placeholder {%s} (known: question, c0..c9, choices[N], context)", name)
	}
	if idx >= len(q.Choices) {
		return "", fmt.Errorf("question %q has %d choices but the template uses choice %d", q.ID, len(q.Choices), idx)
	}
	return q.Choices[idx], nil
}
