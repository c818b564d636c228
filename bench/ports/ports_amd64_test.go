package ports

import (
	"testing"

	"golang.org/x/sys/cpu"
)

var loops = []struct {
	name string
	fn   func(int, *float32, *float32)
}{
	{"FMA", fmaOnly},
	{"FMA+PERMPS", fmaWithPERMPS}, {"OnlyPERMPS", onlyPERMPS},
	{"FMA+PERMILPSVar", fmaWithPERMILPSVar}, {"OnlyPERMILPSVar", onlyPERMILPSVar},
	{"FMA+PERMILPSImm", fmaWithPERMILPSImm}, {"OnlyPERMILPSImm", onlyPERMILPSImm},
	{"FMA+SHUFPS", fmaWithSHUFPS}, {"OnlySHUFPS", onlySHUFPS},
	{"FMA+BLENDMPS", fmaWithBLENDMPS}, {"OnlyBLENDMPS", onlyBLENDMPS},
	{"FMA+PANDD", fmaWithPANDD}, {"OnlyPANDD", onlyPANDD},
	{"FMA+PSRLD", fmaWithPSRLD}, {"OnlyPSRLD", onlyPSRLD},
	{"FMA+BROADCASTSS", fmaWithBROADCASTSS}, {"OnlyBROADCASTSS", onlyBROADCASTSS},
	{"FMAMem", fmaMem},
	{"FMAMem+Bcast", fmaMemBcast},
	{"FMAMem+Bcast+Index", fmaMemBcastIndex},
	{"ClassEntry", classEntry},
	{"ClassEntryEmbeddedBcast", classEntryEmbedded},
	{"PairRows", pairRows},
	{"DotBlock", dotBlock},
	{"PairEntry", pairEntry},
}

// fmasPerPass is 32 except for dotBlock's and pairEntry's 128.
func fmasPerPass(name string) float64 {
	if name == "DotBlock" || name == "PairEntry" {
		return 128
	}
	return 32
}

func BenchmarkPorts(b *testing.B) {
	if !cpu.X86.HasAVX512F {
		b.Skip("no AVX-512 on this CPU")
	}
	mem := make([]float32, 1<<16) // 256 KiB: PairEntry's accumulators (L2); the other loops stay in the first 16 KiB (L1)
	w := make([]float32, 64)
	const passes = 1000
	for _, l := range loops {
		b.Run(l.name, func(b *testing.B) {
			for b.Loop() {
				l.fn(passes, &mem[0], &w[0])
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(passes*fmasPerPass(l.name)), "ns/op32")
		})
	}
}

// TestLoopsRun runs every loop once, so that a broken generator fails the
// suite and not only a benchmark run: the FMA loops leave their registers
// alone, so this checks only that each returns.
func TestLoopsRun(t *testing.T) {
	if !cpu.X86.HasAVX512F {
		t.Skip("no AVX-512 on this CPU")
	}
	mem := make([]float32, 1<<16) // as the benchmarks: PairEntry writes across 256 KiB
	w := make([]float32, 64)
	for _, l := range loops {
		l.fn(1, &mem[0], &w[0])
	}
}
