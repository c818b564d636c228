// Package ports measures which AVX-512 operations share the FMA's
// execution pipes on the machine it runs on: the throughput of fused
// multiply-adds alone, next to a shuffle, blend or broadcast, and with
// their operands loaded from memory. These figures bound the sparse
// kernels in backends/cpu/sparse (a VPERMPS per kept weight in the 2:4
// forward; a load per multiply-add in the index-list SpMM). The other
// loops time designs without a permute: the weight gradient's dot
// products over the batch (DotBlock, the 2:4 kernel now) and four for the
// forward that were not adopted (PairRows, PairEntry, AccEntry,
// RowOffsets), one that mixes permutes with memory operands
// (PermAndMem), and the forward's own pattern next to three that pick
// inputs with blends instead of permutes (FwdPerm, FwdPermBlend,
// Fwd3Slot, FwdMix); bench/README.md says why. Run on amd64 with AVX-512:
//
//	go test -bench . ./bench/ports
//
// Each benchmark reports ns per vector FMA (per operation for Only*).
package ports

//go:generate go run gen.go
