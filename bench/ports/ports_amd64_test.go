package ports

import (
	"math/rand/v2"
	"testing"
	"unsafe"

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
	{"FMA+PSHUFB", fmaWithPSHUFB}, {"OnlyPSHUFB", onlyPSHUFB},
	{"FMA+PERMI2PS", fmaWithPERMI2PS}, {"OnlyPERMI2PS", onlyPERMI2PS},
	{"FMA+PERMQImm", fmaWithPERMQImm}, {"OnlyPERMQImm", onlyPERMQImm},
	{"FMA+SHUFF32X4", fmaWithSHUFF32X4}, {"OnlySHUFF32X4", onlySHUFF32X4},
	{"FMA+ALIGND", fmaWithALIGND}, {"OnlyALIGND", onlyALIGND},
	{"FMAMem", fmaMem},
	{"FMAMem+Bcast", fmaMemBcast},
	{"FMAMem+Bcast+Index", fmaMemBcastIndex},
	{"ClassEntry", classEntry},
	{"ClassEntryEmbeddedBcast", classEntryEmbedded},
	{"PairRows", pairRows},
	{"DotBlock", dotBlock},
	{"PairEntry", pairEntry},
	{"AccEntry", accEntry},
	{"RowOffsets", rowOffsets},
	{"PermAndMem", permAndMem},
	{"FwdPerm", fwdPerm},
	{"FwdPermBlend", fwdPermBlend},
	{"FMA+BcastMem", fmaBcastMem},
	{"FMA+PermHalf", fmaPermHalf},
	{"FMA+Blend2", fmaBlend2},
	{"Fwd3Slot", fwd3Slot},
	{"FwdMix", fwdMix},
}

// operands returns the loops' memory (256 KiB: PairEntry's accumulators
// are in L2; the other loops stay in the first 32 KiB, in L1) and w: the
// weights, then accEntry's column bytes (128 columns of 256 bytes) at
// byte 2048 and rowOffsets' pairs of row offsets (a group's two kept rows
// of four, rows of 1 KiB in eight groups) at byte 4096 (gen.go's
// tableBytes and offsetBytes).
func operands() (mem, w []float32) {
	mem = make([]float32, 1<<16)
	w = make([]float32, 2048)
	r := rand.New(rand.NewPCG(1, 2))
	cols := unsafe.Slice((*byte)(unsafe.Pointer(&w[512])), 1024)
	for i := range cols {
		cols[i] = byte(r.IntN(128))
	}
	offs := unsafe.Slice((*uint32)(unsafe.Pointer(&w[1024])), 256)
	for i := range offs {
		g, i0 := i%8, r.IntN(3)
		i1 := i0 + 1 + r.IntN(3-i0)
		offs[i] = uint32((4*g+i0)*1024) | uint32((4*g+i1)*1024)<<16
	}
	return mem, w
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
	mem, w := operands()
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
	mem, w := operands()
	for _, l := range loops {
		l.fn(1, &mem[0], &w[0])
	}
}
