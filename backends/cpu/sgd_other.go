//go:build !amd64

package cpu

// sgdSIMD has no vector version off amd64: the Go loop does everything.
func sgdSIMD(w, g, v, wo, vo []float32, m, wd, lr float32, nesterov bool) int { return 0 }
