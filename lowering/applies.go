package lowering

// usesOp returns an Applies predicate that holds when any function of the
// module uses op, so a fusion pass stays out of the pass log of plans it
// has nothing to do for (and out of their golden files).
func usesOp(op string) func(u *Unit) bool {
	return func(u *Unit) bool {
		if u.Module == nil {
			return false
		}
		for _, f := range u.Module.Funcs {
			for _, in := range f.Body {
				if in.Op == op {
					return true
				}
			}
		}
		return false
	}
}
