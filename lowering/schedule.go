package lowering

import (
	"fmt"
	"slices"

	"github.com/expc-dev/expc/ir"
)

// schedule reorders each program's kernels to lower its peak temporary
// memory, then names them k0, k1, ... in launch order.
//
// Dependencies come from the current order, which is valid: a kernel reads
// the last write of each buffer before it (read after write), a kernel that
// writes a buffer runs after the kernels that read its previous contents
// (write after read: the anti-dependency of in-place updates) and after its
// previous writer (write after write). Within them, greedy list scheduling:
// among ready kernels take the one that frees the most temporary bytes net
// of what it allocates, ties to the earliest in the current order. The
// result is kept only if its peak is lower than the current order's.
func schedule(u *Unit) (bool, error) {
	changed := false
	for pi := range u.Plan.Programs {
		pr := &u.Plan.Programs[pi]
		order := greedyOrder(u.Plan, pr)
		if peakTemp(u.Plan, pr, order) < peakTemp(u.Plan, pr, identityOrder(len(pr.Kernels))) {
			kernels := make([]ir.Kernel, len(order))
			for i, k := range order {
				kernels[i] = pr.Kernels[k]
			}
			pr.Kernels = kernels
			changed = true
		}
		for i := range pr.Kernels {
			if name := fmt.Sprintf("k%d", i); pr.Kernels[i].Name != name {
				pr.Kernels[i].Name = name
				changed = true
			}
		}
	}
	return changed, nil
}

func identityOrder(n int) []int {
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	return order
}

// kernelDeps returns each kernel's successors and number of predecessors
// under the hazards of the current order.
func kernelDeps(pr *ir.Program) (succ [][]int, indeg []int) {
	n := len(pr.Kernels)
	succ, indeg = make([][]int, n), make([]int, n)
	edges := map[[2]int]bool{}
	edge := func(from, to int) {
		if from != to && !edges[[2]int{from, to}] {
			edges[[2]int{from, to}] = true
			succ[from] = append(succ[from], to)
			indeg[to]++
		}
	}
	writer := map[int]int{}    // buffer → its last writer
	readers := map[int][]int{} // buffer → kernels that read it since that write
	for i, k := range pr.Kernels {
		for _, b := range k.Ins {
			if w, ok := writer[b]; ok {
				edge(w, i)
			}
			readers[b] = append(readers[b], i)
		}
		for _, b := range k.Outs {
			for _, r := range readers[b] {
				edge(r, i)
			}
			if w, ok := writer[b]; ok {
				edge(w, i)
			}
			writer[b], readers[b] = i, nil
		}
	}
	return succ, indeg
}

// greedyOrder is list scheduling by net freed temporary bytes.
func greedyOrder(p *ir.Plan, pr *ir.Program) []int {
	succ, indeg := kernelDeps(pr)
	outputs := map[int]bool{}
	for _, b := range pr.Outputs {
		outputs[b.Buffer] = true
	}
	isTemp := func(b int) bool { return p.Buffers[b].Kind == ir.BufTemp }
	pending := map[int]int{} // temp buffer → kernels yet to read it
	for _, k := range pr.Kernels {
		for _, b := range uniq(k.Ins) {
			if isTemp(b) {
				pending[b]++
			}
		}
	}
	gain := func(k ir.Kernel) int64 {
		var g int64
		for _, b := range uniq(k.Ins) {
			if isTemp(b) && pending[b] == 1 && !outputs[b] {
				g += align(p.Buffers[b].Bytes)
			}
		}
		for _, b := range uniq(k.Outs) {
			if isTemp(b) {
				g -= align(p.Buffers[b].Bytes)
			}
		}
		return g
	}
	var ready, order []int
	for i, d := range indeg {
		if d == 0 {
			ready = append(ready, i)
		}
	}
	for len(ready) > 0 {
		best := 0
		for j := 1; j < len(ready); j++ { // ready stays sorted: ties go to the earliest
			if gain(pr.Kernels[ready[j]]) > gain(pr.Kernels[ready[best]]) {
				best = j
			}
		}
		k := ready[best]
		ready = slices.Delete(ready, best, best+1)
		order = append(order, k)
		for _, b := range uniq(pr.Kernels[k].Ins) {
			if isTemp(b) {
				pending[b]--
			}
		}
		for _, s := range succ[k] {
			if indeg[s]--; indeg[s] == 0 {
				i, _ := slices.BinarySearch(ready, s)
				ready = slices.Insert(ready, i, s)
			}
		}
	}
	return order
}

func uniq(ids []int) []int {
	out := make([]int, 0, len(ids))
	for _, id := range ids {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// interval is the kernels (by launch position, inclusive) during which a
// temporary holds a value.
type interval struct{ start, end int }

func (a interval) overlaps(b interval) bool { return a.start <= b.end && b.start <= a.end }

// tempLiveness gives each temporary a program touches its live interval
// when the kernels run in the given order (indices into pr.Kernels): from
// its first write (or first touch) to its last read, or to the end for a
// program output.
func tempLiveness(p *ir.Plan, pr *ir.Program, order []int) map[int]interval {
	live := map[int]interval{}
	touch := func(b, i int) {
		if p.Buffers[b].Kind != ir.BufTemp {
			return
		}
		iv, ok := live[b]
		if !ok {
			iv = interval{i, i}
		}
		iv.end = max(iv.end, i)
		live[b] = iv
	}
	for i, k := range order {
		for _, b := range pr.Kernels[k].Outs {
			touch(b, i)
		}
		for _, b := range pr.Kernels[k].Ins {
			touch(b, i)
		}
	}
	for _, o := range pr.Outputs {
		if iv, ok := live[o.Buffer]; ok {
			iv.end = max(iv.end, len(order)-1)
			live[o.Buffer] = iv
		}
	}
	return live
}

// peakTemp is the most aligned temporary bytes live at once.
func peakTemp(p *ir.Plan, pr *ir.Program, order []int) int64 {
	delta := make([]int64, len(order)+1)
	for b, iv := range tempLiveness(p, pr, order) {
		delta[iv.start] += align(p.Buffers[b].Bytes)
		delta[iv.end+1] -= align(p.Buffers[b].Bytes)
	}
	var cur, peak int64
	for _, d := range delta {
		cur += d
		peak = max(peak, cur)
	}
	return peak
}
