package data

import (
	"fmt"

	"github.com/expc-dev/expc/schema"
)

// Meta reports the shape of dataset ds reading as little as it can:
// fashion-mnist and idx read the IDX headers (idx without Classes also reads
// the small label files), csv scans the file(s) without parsing the feature
// values, blobs and moons need only their parameters. It agrees with what
// Load returns in Set.Meta.
func Meta(ds schema.Dataset, specDir string) (Info, error) {
	var (
		m   Info
		err error
	)
	switch ds.Name {
	case "fashion-mnist", "idx":
		m, err = idxMeta(ds, specDir)
	case "csv":
		m, err = csvMeta(ds, specDir)
	case "blobs", "moons":
		m, err = synthMeta(ds)
	case "tokens":
		m, err = tokenMeta(ds)
	case "mixture_regression":
		m, err = mixtureMeta(ds)
	default:
		err = fmt.Errorf("data: unknown dataset %q (want fashion-mnist, idx, csv, blobs, moons, tokens or mixture_regression)", ds.Name)
	}
	m.Name = ds.Name
	return m, err
}
