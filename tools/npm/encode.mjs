// Reference encoder for the conformance tests of models/tokenizer: the JS implementation of the
// Hugging Face tokenizers (@lenml/tokenizers, a fork of transformers.js).
//
// usage: node encode.mjs TOKENIZER_JSON < lines
// Each input line is a JSON string; each output line is {"ids": [...], "decoded": "..."}: the ids
// without special tokens added, and the text decoded back from them (special tokens kept, no
// clean-up of spaces).
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { TokenizerLoader } from "@lenml/tokenizers";

const path = process.argv[2];
if (!path) {
  console.error("usage: node encode.mjs TOKENIZER_JSON < lines");
  process.exit(2);
}
const tokenizerJSON = JSON.parse(readFileSync(path, "utf8"));
// The base class runs exactly the tokenizer.json pipeline (no model-specific legacy rewrites).
const tokenizer = TokenizerLoader.fromPreTrained({
  tokenizerJSON,
  tokenizerConfig: { tokenizer_class: "PreTrainedTokenizer" },
});

const out = [];
const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of rl) {
  if (line === "") continue;
  const text = JSON.parse(line);
  const ids = tokenizer.encode(text, { add_special_tokens: false });
  const decoded = tokenizer.decode(ids, {
    skip_special_tokens: false,
    clean_up_tokenization_spaces: false,
  });
  out.push(JSON.stringify({ ids, decoded }));
}
process.stdout.write(out.join("\n") + (out.length ? "\n" : ""));
