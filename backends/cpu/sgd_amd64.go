package cpu

// sgdAVX512 updates n (a multiple of 16) weights and velocities; see sgd.Run.
//
//go:noescape
func sgdAVX512(w, grad, v, wo, vo *float32, n int, m, wd, lr float32, nesterov bool)

// sgdSIMD runs the vectorised update over the longest multiple of 16 and
// returns how many elements it did; the caller finishes the tail.
func sgdSIMD(w, g, v, wo, vo []float32, m, wd, lr float32, nesterov bool) int {
	n := len(w) &^ 15
	if !hasAVX512 || n == 0 {
		return 0
	}
	sgdAVX512(&w[0], &g[0], &v[0], &wo[0], &vo[0], n, m, wd, lr, nesterov)
	return n
}
