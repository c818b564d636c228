package lowering

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/expc-dev/expc/ir"
)

// planMemory lays out one arena:
//
//	[ persistent (params, state) | inputs | temporaries ]
//
// Persistent buffers and inputs get their own 64-byte-aligned places in
// buffer order. The temporary region is shared by all programs (they never
// run at the same time); within a program, temporaries whose live
// intervals (see tempLiveness) overlap get disjoint bytes. Placement is
// first-fit (see packTemps).
func planMemory(u *Unit) (bool, error) {
	p := u.Plan
	m := ir.Memory{}
	var off int64
	place := func(want func(ir.BufferKind) bool) {
		for i := range p.Buffers {
			if b := &p.Buffers[i]; want(b.Kind) {
				b.Offset = off
				off += align(b.Bytes)
			}
		}
	}
	place(ir.BufferKind.Persistent)
	m.PersistentBytes = off
	place(func(k ir.BufferKind) bool { return k == ir.BufInput })
	m.InputBytes = off - m.PersistentBytes
	base := off
	placed := map[int]bool{}
	for pi := range p.Programs {
		pr := &p.Programs[pi]
		live := tempLiveness(p, pr, identityOrder(len(pr.Kernels)))
		for id, rel := range packTemps(p, live) {
			if placed[id] {
				return false, fmt.Errorf("temporary %s is used by more than one program", p.Buffers[id].Name)
			}
			placed[id] = true
			p.Buffers[id].Offset = base + rel
			m.TempBytes = max(m.TempBytes, rel+align(p.Buffers[id].Bytes))
		}
	}
	for i := range p.Buffers {
		if b := &p.Buffers[i]; b.Kind == ir.BufTemp {
			m.NaiveTempBytes += align(b.Bytes)
			if !placed[i] { // written and read by no kernel: give it a harmless place
				b.Offset = base
				m.TempBytes = max(m.TempBytes, align(b.Bytes))
			}
		}
	}
	m.ArenaBytes = base + m.TempBytes
	p.Memory = m
	u.note = fmt.Sprintf("arena %s: persistent %s, inputs %s, temporaries %s (%s without reuse)",
		formatBytes(m.ArenaBytes), formatBytes(m.PersistentBytes), formatBytes(m.InputBytes),
		formatBytes(m.TempBytes), formatBytes(m.NaiveTempBytes))
	return true, nil
}

// packTemps assigns offsets (relative to the temporary region) to the
// temporaries of one program. It places them first-fit in two orders,
// largest first and earliest first (each with the other as tie-break, then
// the buffer ID), and keeps the smaller layout (largest first on a tie).
func packTemps(p *ir.Plan, live map[int]interval) map[int]int64 {
	ids := make([]int, 0, len(live))
	for id := range live {
		ids = append(ids, id)
	}
	bySize := func(a, b int) int { return cmp.Compare(p.Buffers[b].Bytes, p.Buffers[a].Bytes) }
	byStart := func(a, b int) int { return cmp.Compare(live[a].start, live[b].start) }
	slices.SortFunc(ids, func(a, b int) int { return cmp.Or(bySize(a, b), byStart(a, b), cmp.Compare(a, b)) })
	best, bestSize := firstFit(p, live, ids)
	slices.SortFunc(ids, func(a, b int) int { return cmp.Or(byStart(a, b), bySize(a, b), cmp.Compare(a, b)) })
	if offsets, size := firstFit(p, live, ids); size < bestSize {
		best = offsets
	}
	return best
}

// firstFit places temporaries in the given order, each at the lowest
// aligned offset that clears every placed temporary it is live with, and
// returns the offsets and the region's size.
func firstFit(p *ir.Plan, live map[int]interval, order []int) (map[int]int64, int64) {
	type span struct{ lo, hi int64 }
	// Dense copies of the lookups: this loop is quadratic in the number of
	// temporaries, so it must not touch maps (deep models have thousands).
	ivs := make([]interval, len(order))
	sizes := make([]int64, len(order))
	offs := make([]int64, len(order))
	for i, id := range order {
		ivs[i], sizes[i] = live[id], align(p.Buffers[id].Bytes)
	}
	var size int64
	var busy []span
	for i := range order {
		busy = busy[:0]
		for j := 0; j < i; j++ {
			if ivs[i].overlaps(ivs[j]) {
				busy = append(busy, span{offs[j], offs[j] + sizes[j]})
			}
		}
		slices.SortFunc(busy, func(a, b span) int { return cmp.Compare(a.lo, b.lo) })
		n, off := sizes[i], int64(0)
		for _, s := range busy {
			if off+n <= s.lo {
				break
			}
			off = max(off, s.hi)
		}
		offs[i] = off
		size = max(size, off+n)
	}
	offsets := make(map[int]int64, len(order))
	for i, id := range order {
		offsets[id] = offs[i]
	}
	return offsets, size
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
