package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// expcBin is the expc binary built once for the CLI tests.
var expcBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "expc-cli")
	if err != nil {
		panic(err)
	}
	expcBin = filepath.Join(dir, "expc")
	if out, err := exec.Command("go", "build", "-o", expcBin, ".").CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// expc runs the binary in dir and returns stdout, stderr and the exit code.
func expc(t *testing.T, dir string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(expcBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "EXPC_RUNS_DIR=")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

const goodSpec = `name: "blobs-mlp"
dataset: {name: "blobs", batch: 32, samples: 400}
model: {kind: "mlp", hidden: [16]}
train: {steps: 20}
`

// TestBadInputIsADiagnostic: vet and build on bad input exit non-zero with
// a positioned diagnostic, never a stack trace, and write nothing.
func TestBadInputIsADiagnostic(t *testing.T) {
	cases := []struct {
		name, file string
		content    []byte
		where      string // regexp the first diagnostic line must match
		phrase     string
	}{
		{"misspelled key", "s.cue", []byte(strings.Replace(goodSpec, "train:", "trian:", 1)), `s\.cue:4:1: error:`, "did you mean"},
		{"wrong type", "s.cue", []byte(goodSpec + `optimizer: {lr: "fast"}` + "\n"), `s\.cue:5:\d+: error:`, "lr"},
		{"negative lr", "s.cue", []byte(goodSpec + "optimizer: {lr: -0.1}\n"), `s\.cue:5:\d+: error:`, "lr"},
		{"zero batch", "s.cue", []byte(strings.Replace(goodSpec, "batch: 32", "batch: 0", 1)), `s\.cue:2:\d+: error:`, "batch"},
		{"syntax error", "s.cue", []byte("name: \"x\"\ndataset: {name: \n"), `s\.cue:\d+:\d+: error:`, ""},
		{"empty file", "s.cue", []byte(""), `s\.cue(:\d+:\d+)?: error:`, "empty"},
		{"binary file", "s.cue", []byte{0x7f, 'E', 'L', 'F', 0, 1, 2, 0xff, 0xfe}, `s\.cue(:\d+:\d+)?: error:`, "text"},
		{"missing file", "", nil, `nope\.cue(:\d+:\d+)?: error:`, ""},
		{"model too large", "s.cue", []byte(strings.Replace(goodSpec, "hidden: [16]", "hidden: [1000000, 1000000]", 1)), `s\.cue:3:\d+: error:`, "memory"},
	}
	for _, tc := range cases {
		for _, verb := range []string{"vet", "build"} {
			t.Run(tc.name+"/"+verb, func(t *testing.T) {
				dir := t.TempDir()
				spec := "nope.cue"
				if tc.file != "" {
					spec = tc.file
					if err := os.WriteFile(filepath.Join(dir, spec), tc.content, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				_, stderr, code := expc(t, dir, verb, spec)
				if code == 0 {
					t.Fatalf("exit 0 on bad input; stderr:\n%s", stderr)
				}
				if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic") {
					t.Fatalf("stack trace shown to the user:\n%s", stderr)
				}
				first := strings.SplitN(stderr, "\n", 2)[0]
				if !regexp.MustCompile("^" + tc.where).MatchString(first) {
					t.Fatalf("first line %q does not match %q; stderr:\n%s", first, tc.where, stderr)
				}
				if tc.phrase != "" && !strings.Contains(strings.ToLower(stderr), tc.phrase) {
					t.Fatalf("diagnostic does not mention %q:\n%s", tc.phrase, stderr)
				}
				entries, _ := os.ReadDir(dir)
				for _, e := range entries {
					if e.Name() != tc.file {
						t.Fatalf("%s wrote %s on bad input", verb, e.Name())
					}
				}
			})
		}
	}
}
