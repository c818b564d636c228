package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/expc-dev/expc/compiler"
	"github.com/expc-dev/expc/diag"
	"github.com/expc-dev/expc/ir"
	"github.com/expc-dev/expc/pipeline"
	"github.com/expc-dev/expc/schema"
)

// buildFlags are shared by every command that may compile a spec.
type buildFlags struct {
	backend   string
	optLevel  int
	disabled  []string
	dumpAfter []string
}

// check rejects flag values no pass pipeline knows.
func (f *buildFlags) check() error {
	if f.optLevel != 0 && f.optLevel != 1 {
		return fmt.Errorf("-O%d: the optimisation level is 0 (required passes only) or 1 (all passes)", f.optLevel)
	}
	return nil
}

func (f *buildFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.backend, "backend", "", "target backend: cpu or cuda (default: the spec's backend)")
	fl.IntVarP(&f.optLevel, "opt-level", "O", 1, "optimisation level: -O0 runs only the required passes (no fusion or cleanup), -O1 all")
	fl.StringArrayVar(&f.disabled, "disable-pass", nil, "skip a pass by name (repeatable)")
	fl.StringArrayVar(&f.dumpAfter, "dump-after", nil, "print the IR after a pass (repeatable; \"all\" for every pass)")
}

func (c *cli) options(f *buildFlags) pipeline.Options {
	opt := f.optLevel
	backend := f.backend
	if backend == "" {
		backend = c.v.GetString("backend")
	}
	return pipeline.Options{Backend: backend, OptLevel: opt, Disabled: f.disabled,
		DumpAfter: f.dumpAfter, Dump: os.Stderr, MemoryLimit: c.v.GetInt64("memory_limit")}
}

func (c *cli) buildCmd() *cobra.Command {
	var f buildFlags
	var out string
	cmd := &cobra.Command{
		Use:   "build [flags] SPEC",
		Short: "Compile a spec into a plan (.expc/plans/<name>-<hash12>.plan.json)",
		Long: "Compile a spec (a .cue or .hcl file, or a CUE package directory) into an execution plan.\n" +
			"The plan is written under .expc/plans/ in the current directory (or to -o FILE) and\nrecorded as the last build, which `expc run` and `expc explain` use by default.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(); err != nil {
				return c.fail(err)
			}
			res, diags := pipeline.Build(args[0], c.options(&f))
			if err := c.report(diags); err != nil || res == nil {
				return orExit(err)
			}
			path, err := pipeline.Write(res, out)
			if err != nil {
				return c.fail(fmt.Errorf("writing the plan: %w", err))
			}
			p := res.Plan
			fmt.Printf("%s\n", path)
			fmt.Fprintf(os.Stderr, "built %s %s for %s: %d train kernels, %d eval kernels, arena %s, %d steps\n",
				p.Name, p.ShortHash(), p.Target, len(p.Program("train").Kernels), len(p.Program("eval").Kernels),
				compiler.HumanBytes(p.Memory.ArenaBytes), p.Schedule.Steps)
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the plan to FILE instead of .expc/plans/")
	return cmd
}

func orExit(err error) error {
	if err == nil {
		return exitError{1}
	}
	return err
}

// isPlanPath tells a plan file from a spec by its name.
func isPlanPath(p string) bool { return strings.HasSuffix(p, ".json") }

// resolvePlan turns the optional PLAN|SPEC argument into a plan: the last
// build when absent, a plan file as is, a spec compiled now.
func (c *cli) resolvePlan(args []string, f *buildFlags, write bool) (*ir.Plan, []byte, string, *ir.Timings, error) {
	var target string
	if len(args) > 0 {
		target = args[0]
	} else {
		last, err := pipeline.LastBuild()
		if err != nil {
			return nil, nil, "", nil, c.fail(err)
		}
		target = last
	}
	if isPlanPath(target) {
		p, b, err := pipeline.ReadPlan(target)
		if err != nil {
			return nil, nil, "", nil, c.fail(err)
		}
		return p, b, target, pipeline.ReadTimings(target), nil
	}
	if err := f.check(); err != nil {
		return nil, nil, "", nil, c.fail(err)
	}
	res, diags := pipeline.Build(target, c.options(f))
	if err := c.report(diags); err != nil || res == nil {
		return nil, nil, "", nil, orExit(err)
	}
	path := ""
	if write {
		var err error
		if path, err = pipeline.Write(res, ""); err != nil {
			return nil, nil, "", nil, c.fail(fmt.Errorf("writing the plan: %w", err))
		}
	}
	return res.Plan, res.PlanJSON, path, res.Timings, nil
}

func (c *cli) vetCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "vet SPEC...",
		Short: "Type-check specs without building plans",
		Long:  "Load and validate each spec against the schema and the compiler's checks; print\npositioned diagnostics; exit non-zero if any spec has an error. Nothing is written.",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var all diag.List
			for _, path := range args {
				exp, diags := schema.Load(path)
				all = append(all, diags...)
				if diags.HasErrors() {
					continue
				}
				// The compiler's cross-field checks need the data's shapes
				// only; no plan is written.
				_, d := pipeline.BuildExperiment(exp, specDirOf(path), pipeline.Options{OptLevel: 0, MemoryLimit: c.v.GetInt64("memory_limit")})
				all = append(all, d...)
				if !d.HasErrors() {
					fmt.Fprintf(os.Stderr, "ok  %s\n", path)
				}
			}
			return c.report(all)
		},
	}
}

func specDirOf(path string) string {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return path
	}
	i := strings.LastIndexAny(path, "/")
	if i < 0 {
		return "."
	}
	return path[:i]
}

func (c *cli) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the compiler version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, args []string) {
			fmt.Printf("expc %s (plan format %s)\n", compiler.Version, ir.PlanFormat)
		},
	}
}
