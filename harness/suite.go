package harness

import (
	"bytes"
	_ "embed"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/perpetual-ml/perpetual/curriculum/synthetic"
	"github.com/perpetual-ml/perpetual/evaluation"
	"github.com/perpetual-ml/perpetual/harness/results"
	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/models/prompt"
	"github.com/perpetual-ml/perpetual/rag"
)

//go:embed suites/default.yaml
var defaultSuite []byte

//go:embed suites/paper.yaml
var paperSuite []byte

//go:embed suites/generalise.yaml
var generaliseSuite []byte

//go:embed suites/finetune-dev.yaml
var finetuneDevSuite []byte

//go:embed suites/local.yaml
var localSuite []byte

// Embedded lists the suites built into the binary by name.
var Embedded = map[string][]byte{"default": defaultSuite, "paper": paperSuite, "generalise": generaliseSuite, "local": localSuite,
	"finetune-dev": finetuneDevSuite}

// EmbeddedNames lists the embedded suites, sorted.
func EmbeddedNames() []string {
	var names []string
	for n := range Embedded {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// AutoPromptFormat as a model's prompt_format picks the format from its checkpoint's
// chat_template.
const AutoPromptFormat = "auto"

// Suite is a suite file: what to evaluate and how.
type Suite struct {
	// Name names the suite (recorded in results).
	Name string `yaml:"name" json:"name"`
	// Tasks are the knowledge bases and their tests.
	Tasks []Task `yaml:"tasks" json:"tasks"`
	// Models are the instruct-tuned models to teach.
	Models []Model `yaml:"models" json:"models"`
	// Conditions are among results.Conditions (default all four).
	Conditions []string `yaml:"conditions" json:"conditions"`
	// Formulations are among evaluation.Formulations: letters, cloze, recall (default letters and
	// cloze).
	Formulations []string `yaml:"formulations" json:"formulations"`
	// Training is the fine-tuning recipe, passed to the FineTuner.
	Training Recipe `yaml:"training" json:"training"`
	// Seeds are the fine-tuning seeds (default [1]); with more than one, fine-tuned cells report
	// the mean and spread over seeds.
	Seeds []int64 `yaml:"seeds" json:"seeds"`
	// Eval configures scoring.
	Eval EvalSettings `yaml:"eval" json:"eval"`

	// dir resolves relative paths (the suite file's folder; the working directory when embedded).
	dir string
}

// Task is one knowledge base with its test. Exactly one of Synthetic, Curriculum and Perpetual is set.
type Task struct {
	Name string `yaml:"name" json:"name"`
	// Synthetic generates a curriculum with package curriculum/synthetic.
	Synthetic *SyntheticSource `yaml:"synthetic,omitempty" json:"synthetic,omitempty"`
	// Curriculum is a curriculum folder (manifest.json, chunks.jsonl, ...).
	Curriculum string `yaml:"curriculum,omitempty" json:"curriculum,omitempty"`
	// Perpetual is a folder of the original study's train.json + test.json.
	Perpetual string `yaml:"perpetual,omitempty" json:"perpetual,omitempty"`
	// RAG configures retrieval for the rag conditions.
	RAG RAGSettings `yaml:"rag" json:"rag"`
	// Template changes how the embedded evaluation tasks render this task's prompts
	// (strip_question, strip_passages, passage_delimiter, chat_target_delimiter; see
	// evaluation.TaskOptions). The paper suite sets the paper's rendering here.
	Template evaluation.TaskOptions `yaml:"template,omitempty" json:"template,omitzero"`
}

// SyntheticSource sizes a synthetic knowledge base (see synthetic.Options).
type SyntheticSource struct {
	Kind          string `yaml:"kind" json:"kind"`
	Seed          int64  `yaml:"seed" json:"seed"`
	Chunks        int    `yaml:"chunks" json:"chunks"`
	FactsPerChunk int    `yaml:"facts_per_chunk" json:"facts_per_chunk"`
	// DocVariants adds that many restatements of each chunk to the training set (other words and
	// order; the "varied forms" that make facts extractable closed-book, arXiv 2309.14316).
	DocVariants int `yaml:"doc_variants,omitempty" json:"doc_variants,omitempty"`
	// Paraphrases adds up to 2 extra flashcards per fact in other formats.
	Paraphrases int `yaml:"paraphrases,omitempty" json:"paraphrases,omitempty"`
}

// RAGSettings choose the retriever and how many passages go into the prompt.
type RAGSettings struct {
	// Retriever is rag.KindBM25 (default), rag.KindDense or rag.KindHybrid.
	Retriever string `yaml:"retriever" json:"retriever"`
	// K passages are prepended (default rag.DefaultK).
	K int `yaml:"k" json:"k"`
	// Embedder is the encoder folder for dense and hybrid retrieval.
	Embedder string `yaml:"embedder,omitempty" json:"embedder,omitempty"`
}

// Model is one model to evaluate and fine-tune.
type Model struct {
	Name string `yaml:"name" json:"name"`
	// Path is a model folder (Hugging Face layout) or "zoo:NAME" (see Zoo).
	Path string `yaml:"path" json:"path"`
	// PromptFormat names a format of package models/prompt ("gemma", "alpaca", "plain"): the
	// format the model is fine-tuned with and evaluated in (it sets ChatTemplate). "auto"
	// (AutoPromptFormat) picks it from the model folder's chat_template (prompt.Detect).
	PromptFormat string `yaml:"prompt_format,omitempty" json:"prompt_format,omitempty"`
	// ChatTemplate wraps every prompt, {prompt} marking where it goes (see evaluation.Task);
	// give it or PromptFormat, not both.
	ChatTemplate string `yaml:"chat_template,omitempty" json:"chat_template,omitempty"`
	// Training, when set, overrides the suite's training recipe for this model, key by key
	// (Recipe.With): architectures differ in the learning rate they take (measured in
	// docs/zoo.md, "Fine-tuning recipe").
	Training *Recipe `yaml:"training,omitempty" json:"training,omitempty"`
}

// Recipe is the model's fine-tuning recipe: the suite's, with the model's overrides.
func (s *Suite) Recipe(m Model) Recipe { return s.Training.With(m.Training) }

// Recipe is the fine-tuning recipe. Known fields are typed; Extra carries any other key of the
// suite's training section through to the FineTuner unchanged.
type Recipe struct {
	Epochs       int     `yaml:"epochs" json:"epochs"`
	LearningRate float64 `yaml:"lr" json:"lr"`
	BatchSize    int     `yaml:"batch_size" json:"batch_size"`
	SeqLen       int     `yaml:"seq_len" json:"seq_len"`
	// Extra holds the remaining keys (warmup, weight decay, ...).
	Extra map[string]any `yaml:",inline" json:"extra,omitempty"`
}

// With is r with the keys o sets replaced by o's (o nil: r unchanged). A typed field is set
// when it is not zero (zero is never a valid epoch count, rate, batch or length); every key of
// o's Extra is set, zero included (warmup: 0 means none).
func (r Recipe) With(o *Recipe) Recipe {
	if o == nil {
		return r
	}
	if o.Epochs != 0 {
		r.Epochs = o.Epochs
	}
	if o.LearningRate != 0 {
		r.LearningRate = o.LearningRate
	}
	if o.BatchSize != 0 {
		r.BatchSize = o.BatchSize
	}
	if o.SeqLen != 0 {
		r.SeqLen = o.SeqLen
	}
	if len(o.Extra) > 0 {
		extra := maps.Clone(r.Extra)
		if extra == nil {
			extra = map[string]any{}
		}
		maps.Copy(extra, o.Extra)
		r.Extra = extra
	}
	return r
}

// EvalSettings configure scoring.
type EvalSettings struct {
	// BatchSize is the scorer's batch size (default 8).
	BatchSize int `yaml:"batch_size" json:"batch_size"`
	// Limit evaluates the first Limit questions of every test (0 = all).
	Limit int `yaml:"limit" json:"limit"`
	// Bootstrap is the number of paired-bootstrap iterations (default 10000).
	Bootstrap int `yaml:"bootstrap" json:"bootstrap"`
	// DType is the compute dtype of the weights (float32, bfloat16, float16; default float32).
	DType string `yaml:"dtype,omitempty" json:"dtype,omitempty"`
	// EncodingOptions are lm-evaluation-harness's max_length and add_bos_token (true, false or
	// auto) for every model: max_length: 0 and add_bos_token: auto (the defaults) follow each model.
	evaluation.EncodingOptions `yaml:",inline"`
	// ChatTargetDelimiter, when set, goes before each scored choice under a model's chat template
	// (prompt_format or chat_template) in every task without its own template.chat_target_delimiter.
	// Unset, the embedded tasks' " " applies (what the zoo's models were trained to answer);
	// "" is lm-evaluation-harness's apply_chat_template behaviour.
	ChatTargetDelimiter *string `yaml:"chat_target_delimiter,omitempty" json:"chat_target_delimiter,omitempty"`
	// SharedContext scores the choices with lm.Model.LogLikelihoodSharedContext: a context
	// shared by several choices (cloze) runs once and each choice is scored from its decoding
	// cache. Its log-likelihoods equal the full path's up to float32 rounding (under 1e-4 on
	// every family's fixtures), so it is a speed option; its cells and their request caches
	// are keyed apart from the full path's (unset, keys are what they were).
	SharedContext bool `yaml:"shared_context,omitempty" json:"shared_context,omitempty"`
}

// Load reads a suite: an embedded name ("default", "paper") unless a file of that path exists,
// in which case the file wins. vars fill ${NAME} references in paths before the environment does.
func Load(nameOrPath string, vars map[string]string) (*Suite, error) {
	if st, err := os.Stat(nameOrPath); err == nil && !st.IsDir() {
		raw, err := os.ReadFile(nameOrPath)
		if err != nil {
			return nil, err
		}
		abs, _ := filepath.Abs(nameOrPath)
		return Parse(raw, nameOrPath, filepath.Dir(abs), vars)
	}
	raw, ok := Embedded[nameOrPath]
	if !ok {
		return nil, fmt.Errorf("suite %q: no such file and not an embedded suite (embedded: %s)", nameOrPath, strings.Join(EmbeddedNames(), ", "))
	}
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	return Parse(raw, "embedded suite "+nameOrPath, wd, vars)
}

// Parse decodes and validates a suite; source names it in errors and dir resolves relative paths.
func Parse(raw []byte, source, dir string, vars map[string]string) (*Suite, error) {
	var s Suite
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	s.dir = dir
	if err := s.normalize(source, vars); err != nil {
		return nil, err
	}
	return &s, nil
}

// normalize fills defaults, expands variables, resolves paths and validates.
func (s *Suite) normalize(source string, vars map[string]string) error {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("%s: %s", source, fmt.Sprintf(format, a...))
	}
	if s.Name == "" {
		return fail("name is required")
	}
	if len(s.Tasks) == 0 || len(s.Models) == 0 {
		return fail("a suite needs at least one task and one model")
	}
	if len(s.Conditions) == 0 {
		s.Conditions = append([]string(nil), results.Conditions...)
	}
	for _, c := range s.Conditions {
		if !contains(results.Conditions, c) {
			return fail("condition %q is not one of %v", c, results.Conditions)
		}
	}
	if len(s.Formulations) == 0 {
		s.Formulations = []string{evaluation.Letters, evaluation.Cloze}
	}
	seenForm := map[string]bool{}
	for _, f := range s.Formulations {
		if !contains(evaluation.Formulations, f) {
			return fail("formulation %q is not one of %v", f, evaluation.Formulations)
		}
		if seenForm[f] {
			return fail("formulation %q is listed twice", f)
		}
		seenForm[f] = true
	}
	if len(s.Seeds) == 0 {
		s.Seeds = []int64{1}
	}
	if s.Eval.BatchSize <= 0 {
		s.Eval.BatchSize = 8
	}
	if s.Eval.Bootstrap <= 0 {
		s.Eval.Bootstrap = 10000
	}
	if s.Eval.DType != "" {
		if _, err := lm.ParseDType(s.Eval.DType); err != nil {
			return fail("eval dtype: %v", err)
		}
	}
	if err := s.Eval.EncodingOptions.Validate(); err != nil {
		return fail("eval: %v", err)
	}
	expand := func(what, p string) (string, error) {
		var missing []string
		out := os.Expand(p, func(name string) string {
			if v, ok := vars[name]; ok {
				return v
			}
			if v, ok := os.LookupEnv(name); ok {
				return v
			}
			missing = append(missing, name)
			return ""
		})
		if len(missing) > 0 {
			return "", fail("%s %q needs ${%s}: set the environment variable or pass --var %s=PATH", what, p, missing[0], missing[0])
		}
		if out != "" && !filepath.IsAbs(out) && !strings.HasPrefix(out, ZooPrefix) {
			out = filepath.Join(s.dir, out)
		}
		return out, nil
	}
	seen := map[string]bool{}
	for i := range s.Tasks {
		t := &s.Tasks[i]
		if t.Name == "" || strings.ContainsAny(t.Name, `/\ `) || seen["t:"+t.Name] {
			return fail("task %d: name %q is empty, repeated or not a plain word", i+1, t.Name)
		}
		seen["t:"+t.Name] = true
		n := 0
		if t.Synthetic != nil {
			n++
			if !contains(synthetic.Tasks, t.Synthetic.Kind) {
				return fail("task %s: synthetic kind %q is not one of %v", t.Name, t.Synthetic.Kind, synthetic.Tasks)
			}
			if v := t.Synthetic.DocVariants; v < 0 {
				return fail("task %s: synthetic doc_variants must be >= 0, got %d", t.Name, v)
			}
			if v := t.Synthetic.Paraphrases; v < 0 || v > synthetic.MaxParaphrases {
				return fail("task %s: synthetic paraphrases must be 0 to %d, got %d", t.Name, synthetic.MaxParaphrases, v)
			}
		}
		var err error
		if t.Curriculum != "" {
			n++
			if t.Curriculum, err = expand("task "+t.Name+": curriculum", t.Curriculum); err != nil {
				return err
			}
		}
		if t.Perpetual != "" {
			n++
			if t.Perpetual, err = expand("task "+t.Name+": perpetual", t.Perpetual); err != nil {
				return err
			}
		}
		if n != 1 {
			return fail("task %s: give exactly one of synthetic, curriculum, perpetual", t.Name)
		}
		if t.RAG.Retriever == "" {
			t.RAG.Retriever = rag.KindBM25
		}
		switch t.RAG.Retriever {
		case rag.KindBM25:
		case rag.KindDense, rag.KindHybrid:
			if t.RAG.Embedder == "" {
				return fail("task %s: rag retriever %s needs rag.embedder, a BERT encoder folder (for example BAAI/bge-small-en-v1.5)", t.Name, t.RAG.Retriever)
			}
		default:
			return fail("task %s: rag retriever %q is not bm25, dense or hybrid", t.Name, t.RAG.Retriever)
		}
		if t.RAG.K <= 0 {
			t.RAG.K = rag.DefaultK
		}
		if t.RAG.Embedder != "" {
			if t.RAG.Embedder, err = expand("task "+t.Name+": rag embedder", t.RAG.Embedder); err != nil {
				return err
			}
		}
	}
	for i := range s.Models {
		m := &s.Models[i]
		if m.Name == "" || strings.ContainsAny(m.Name, `/\ `) || seen["m:"+m.Name] {
			return fail("model %d: name %q is empty, repeated or not a plain word", i+1, m.Name)
		}
		seen["m:"+m.Name] = true
		if m.Path == "" {
			return fail("model %s: path is required (a folder or zoo:NAME)", m.Name)
		}
		var err error
		if m.Path, err = expand("model "+m.Name+": path", m.Path); err != nil {
			return err
		}
		if m.PromptFormat == AutoPromptFormat {
			if strings.HasPrefix(m.Path, "zoo:") {
				return fail("model %s: prompt_format %s reads a model folder's chat_template; name the zoo model's format", m.Name, AutoPromptFormat)
			}
			name, err := prompt.Detect(m.Path)
			if err != nil {
				return fail("model %s: %v", m.Name, err)
			}
			m.PromptFormat = name
		}
		if m.PromptFormat != "" {
			if m.ChatTemplate != "" {
				return fail("model %s: give prompt_format or chat_template, not both", m.Name)
			}
			tpl, err := prompt.Format(m.PromptFormat)
			if err != nil {
				return fail("model %s: %v", m.Name, err)
			}
			// The evaluation's encoder adds BOS by the model's rule, so the template must not.
			m.ChatTemplate = tpl.ChatTemplate()
		}
		if m.ChatTemplate != "" && !strings.Contains(m.ChatTemplate, "{prompt}") {
			return fail("model %s: chat_template has no {prompt}", m.Name)
		}
	}
	return nil
}

// taskOptions are the evaluation.TaskOptions of a suite task: its template, with the suite's
// eval.chat_target_delimiter where the task sets none.
func (s *Suite) taskOptions(t Task) evaluation.TaskOptions {
	o := t.Template
	if o.ChatTargetDelimiter == nil && s.Eval.ChatTargetDelimiter != nil {
		d := *s.Eval.ChatTargetDelimiter
		o.ChatTargetDelimiter = &d
	}
	return o
}

// Needs reports whether the suite has a condition.
func (s *Suite) Needs(condition string) bool { return contains(s.Conditions, condition) }

// needsFineTuning reports whether the suite has a fine-tuned condition.
func (s *Suite) needsFineTuning() bool {
	return s.Needs(results.FineTuned) || s.Needs(results.FineTunedRAG)
}

// needsRAG reports whether the suite has a condition that retrieves.
func (s *Suite) needsRAG() bool { return s.Needs(results.RAG) || s.Needs(results.FineTunedRAG) }

func contains(list []string, x string) bool {
	for _, y := range list {
		if y == x {
			return true
		}
	}
	return false
}

// loadOptions are the lm.LoadOptions of the suite's evaluation settings (validated by Parse).
func (e EvalSettings) loadOptions() lm.LoadOptions {
	var opts lm.LoadOptions
	if e.DType != "" {
		opts.DType, _ = lm.ParseDType(e.DType)
	}
	return opts
}
