package cpu

import "golang.org/x/sys/cpu"

var hasAVX512 = cpu.X86.HasAVX512F

//go:noescape
func rowExpSumAVX512(s *float32, n int, a, shift float32, acc *float32)

//go:noescape
func rowExpWAVX512(w, s *float32, n int, a, shift, c float32, acc *float32)

//go:noescape
func colExpSumAVX512(s, a, shift, acc *float32, n int)

//go:noescape
func colExpWAVX512(w, dt, s, a, shift, c *float32, n int)
