//go:build !amd64

package cpu

const hasAVX512 = false

func rowExpSumAVX512(s *float32, n int, a, shift float32, acc *float32)     { panic("unreachable") }
func rowExpWAVX512(w, s *float32, n int, a, shift, c float32, acc *float32) { panic("unreachable") }
func colExpSumAVX512(s, a, shift, acc *float32, n int)                      { panic("unreachable") }
func colExpWAVX512(w, dt, s, a, shift, c *float32, n int)                   { panic("unreachable") }
