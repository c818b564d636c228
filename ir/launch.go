package ir

// NormalizeLaunch returns a target's launch choices (Kernel.Launch) with
// numbers as they were recorded: a plan read back from JSON has every number
// as a float64 and every list as []any. Launch values are ints, strings,
// bools and lists of ints.
func NormalizeLaunch(a Attrs) Attrs {
	if len(a) == 0 {
		return nil
	}
	out := make(Attrs, len(a))
	for k, v := range a {
		switch x := v.(type) {
		case float64:
			if x == float64(int(x)) {
				v = int(x)
			}
		case []any:
			v = a.Ints(k)
		}
		out[k] = v
	}
	return out
}
