package testenv

import (
	"errors"
	"testing"
)

// fakeT records what Require did to a test.
type fakeT struct {
	testing.TB
	skipped, failed bool
}

func (f *fakeT) Helper()               {}
func (f *fakeT) Skipf(string, ...any)  { f.skipped = true }
func (f *fakeT) Fatalf(string, ...any) { f.failed = true }

func TestRequire(t *testing.T) {
	for _, c := range []struct {
		ci         string
		err        error
		skip, fail bool
	}{
		{"", nil, false, false},
		{"true", nil, false, false},
		{"", errors.New("gone"), true, false},
		{"true", errors.New("gone"), false, true},
	} {
		t.Setenv("CI", c.ci)
		f := &fakeT{}
		Require(f, "thing", c.err)
		if f.skipped != c.skip || f.failed != c.fail {
			t.Errorf("CI=%q err=%v: skipped %v failed %v, want %v %v", c.ci, c.err, f.skipped, f.failed, c.skip, c.fail)
		}
	}
}

// ModuleDir finds a module go.mod requires, and File a file that exists.
func TestModuleDirAndFile(t *testing.T) {
	dir := ModuleDir(t, "github.com/spf13/cobra")
	if File(t, "cobra's go.mod", dir+"/go.mod") == "" {
		t.Fatal("empty path")
	}
	t.Setenv("CI", "true")
	f := &fakeT{}
	File(f, "nothing", "/no/such/file")
	if !f.failed {
		t.Fatal("a missing file under CI did not fail")
	}
}
