package gemm

import "sync"

// workspace holds the packing buffers and task state of one Sgemm call. They
// are recycled through a free list (not sync.Pool, which drops its contents at
// every GC) so steady-state calls do not allocate.
type workspace struct {
	g  call
	kr *kernel

	// blocking of the current call and position of the current block
	kc, mb, npan, nnb, msplit int
	i0, mc, p0, kcc           int

	apack []float32   // shared packed A block (all of k)
	bpack [][]float32 // per-worker packed B block
	tile  [][]float32 // per-worker scratch for edge tiles

	packA   packATask
	compute computeTask
}

var (
	wsMu   sync.Mutex
	wsFree []*workspace
)

func getWorkspace() *workspace {
	wsMu.Lock()
	defer wsMu.Unlock()
	if n := len(wsFree); n > 0 {
		ws := wsFree[n-1]
		wsFree = wsFree[:n-1]
		return ws
	}
	ws := &workspace{}
	ws.packA.ws = ws
	ws.compute.ws = ws
	return ws
}

func putWorkspace(ws *workspace) {
	ws.g = call{} // drop references to the caller's matrices
	wsMu.Lock()
	wsFree = append(wsFree, ws)
	wsMu.Unlock()
}

// grow makes sure there are buffers for nw workers of the given sizes.
func (ws *workspace) grow(nw, asize, bsize, tsize int) {
	if len(ws.apack) < asize {
		ws.apack = make([]float32, asize)
	}
	for len(ws.bpack) < nw {
		ws.bpack = append(ws.bpack, nil)
		ws.tile = append(ws.tile, nil)
	}
	for w := 0; w < nw; w++ {
		if len(ws.bpack[w]) < bsize {
			ws.bpack[w] = make([]float32, bsize)
		}
		if len(ws.tile[w]) < tsize {
			ws.tile[w] = make([]float32, tsize)
		}
	}
}
