package pipeline

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/expc-dev/expc/ir"
)

// PlanDir is where builds go, under the current directory.
const PlanDir = ".expc/plans"

// lastFile records the last build's plan path.
const lastFile = ".expc/last"

// PlanPath is the default file name of a plan: <name>-<hash12>.plan.json.
func PlanPath(p *ir.Plan) string {
	return filepath.Join(PlanDir, p.Name+"-"+p.ShortHash()+".plan.json")
}

// TimingsPath is where a plan's pass timings are kept, next to it.
func TimingsPath(planPath string) string {
	return strings.TrimSuffix(planPath, ".plan.json") + ".timings.json"
}

// Write stores the plan at path (the default path when empty) with its
// timings next to it, and records it as the last build. Each file is written
// to a temporary name and renamed, so a failure leaves no partial file.
func Write(res *Result, path string) (string, error) {
	if path == "" {
		path = PlanPath(res.Plan)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	if err := WriteFileAtomic(path, res.PlanJSON); err != nil {
		return "", err
	}
	if tj, err := json.MarshalIndent(res.Timings, "", "  "); err == nil {
		_ = WriteFileAtomic(TimingsPath(path), append(tj, '\n'))
	}
	if err := os.MkdirAll(filepath.Dir(lastFile), 0o755); err != nil {
		return "", err
	}
	return path, WriteFileAtomic(lastFile, []byte(path+"\n"))
}

// LastBuild returns the path of the last plan `expc build` wrote here.
func LastBuild() (string, error) {
	b, err := os.ReadFile(lastFile)
	if err != nil {
		if os.IsNotExist(err) {
			return "", fmt.Errorf("no plan has been built in this directory yet: run `expc build SPEC` first, or name a plan or spec")
		}
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// ReadPlan loads and verifies a plan file.
func ReadPlan(path string) (*ir.Plan, []byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	var p ir.Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, nil, fmt.Errorf("%s: not a plan file: %v", path, err)
	}
	if p.Format != ir.PlanFormat {
		return nil, nil, fmt.Errorf("%s: plan format %q, this expc reads %q", path, p.Format, ir.PlanFormat)
	}
	if err := ir.VerifyPlan(&p); err != nil {
		return nil, nil, fmt.Errorf("%s: invalid plan: %v", path, err)
	}
	return &p, b, nil
}

// ReadTimings loads the timings stored next to a plan, if any.
func ReadTimings(planPath string) *ir.Timings {
	b, err := os.ReadFile(TimingsPath(planPath))
	if err != nil {
		return nil
	}
	var t ir.Timings
	if json.Unmarshal(b, &t) != nil {
		return nil
	}
	return &t
}

// WriteFileAtomic writes data to a temporary file in path's directory and
// renames it into place.
func WriteFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// AvailableMemory reads MemAvailable from /proc/meminfo (0 when unknown,
// which disables the check).
func AvailableMemory() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemAvailable:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err == nil {
				return kb * 1024
			}
		}
	}
	return 0
}
