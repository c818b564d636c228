package schema

import "path/filepath"

// Resolve returns the file path p, written at the spec field path field
// (e.g. "dataset.train"), relative to the directory of the spec file that
// wrote it; absolute and empty paths are returned as they are.
func (e *Experiment) Resolve(field, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	file := e.Source.Pos(field).File
	if file == "" {
		return p
	}
	return filepath.Join(filepath.Dir(file), p)
}
