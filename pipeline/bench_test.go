package pipeline

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// deepMLPSpec is an MLP with n hidden layers of width 64, for measuring how
// compile time grows with model size.
func deepMLPSpec(n int) string {
	widths := strings.TrimSuffix(strings.Repeat("64, ", n), ", ")
	return fmt.Sprintf("name: \"deep-%d\"\ndataset: {name: \"blobs\", batch: 64, dim: 32}\nmodel: {kind: \"mlp\", hidden: [%s]}\n", n, widths)
}

// BenchmarkBuildDeepMLP measures `expc build` (load, compile, all passes
// with verification, hash, encode) for 50..400 layers:
//
//	go test -run XXX -bench BuildDeepMLP ./pipeline
func BenchmarkBuildDeepMLP(b *testing.B) {
	for _, n := range []int{50, 100, 200, 400} {
		p := filepath.Join(b.TempDir(), "deep.cue")
		if err := os.WriteFile(p, []byte(deepMLPSpec(n)), 0o644); err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("layers=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, diags := Build(p, Options{OptLevel: 1}); diags.HasErrors() {
					b.Fatal(diags)
				}
			}
		})
	}
}
