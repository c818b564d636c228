package ports

// The loops of ports_amd64.s (see gen.go): n passes of 32 operations.

func fmaOnly(n int, mem, w *float32)
func fmaWithPERMPS(n int, mem, w *float32)
func onlyPERMPS(n int, mem, w *float32)
func fmaWithPERMILPSVar(n int, mem, w *float32)
func onlyPERMILPSVar(n int, mem, w *float32)
func fmaWithPERMILPSImm(n int, mem, w *float32)
func onlyPERMILPSImm(n int, mem, w *float32)
func fmaWithSHUFPS(n int, mem, w *float32)
func onlySHUFPS(n int, mem, w *float32)
func fmaWithBLENDMPS(n int, mem, w *float32)
func onlyBLENDMPS(n int, mem, w *float32)
func fmaWithPANDD(n int, mem, w *float32)
func onlyPANDD(n int, mem, w *float32)
func fmaWithBROADCASTSS(n int, mem, w *float32)
func onlyBROADCASTSS(n int, mem, w *float32)
func fmaMem(n int, mem, w *float32)
func fmaMemBcast(n int, mem, w *float32)
func fmaMemBcastIndex(n int, mem, w *float32)
func classEntry(n int, mem, w *float32)
func classEntryEmbedded(n int, mem, w *float32)
