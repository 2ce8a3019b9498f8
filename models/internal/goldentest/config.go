package goldentest

import (
	"encoding/json"
	"testing"
)

// Edited returns the JSON object base (a config.json) with the fields of edit set: edit is a
// list of object members without the braces, such as `"vocab_size":0,"head_dim":null` (null
// sets null, it does not delete the field).
func Edited(t testing.TB, base, edit string) []byte {
	t.Helper()
	cfg := object(t, base)
	for k, v := range object(t, "{"+edit+"}") {
		cfg[k] = v
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// Without returns the JSON object base (a config.json) without the named fields.
func Without(t testing.TB, base string, fields ...string) []byte {
	t.Helper()
	cfg := object(t, base)
	for _, f := range fields {
		delete(cfg, f)
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func object(t testing.TB, raw string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatal(err)
	}
	return m
}
