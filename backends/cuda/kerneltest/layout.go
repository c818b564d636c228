package kerneltest

import "github.com/expc-dev/expc/ir"

func init() {
	base := extraCases
	extraCases = func() []Case {
		x := f32(96, 40)
		return append(base(),
			Case{Name: "row_scale per row", Op: "row_scale", Ins: []ir.Type{x, f32(96)}},
			Case{Name: "row_scale scalar", Op: "row_scale", Ins: []ir.Type{x, scalarF}},
			Case{Name: "gather", Op: "gather", Ins: []ir.Type{f32(500), i32(96)}, Fill: []Fill{{"normal", 1}, {"labels", 520}}},
			Case{Name: "scatter_add", Op: "scatter_add", Ins: []ir.Type{f32(96), i32(96)}, Fill: []Fill{{"normal", 1}, {"labels", 50}},
				Attrs: ir.Attrs{"size": 40}},
			Case{Name: "slice_cols", Op: "slice_cols", Ins: []ir.Type{x}, Attrs: ir.Attrs{"start": 7, "end": 30}},
			Case{Name: "pad_cols", Op: "pad_cols", Ins: []ir.Type{x}, Attrs: ir.Attrs{"start": 5, "width": 60}},
		)
	}
}
