package main

import (
	"fmt"
	"os"
	"sort"

	"github.com/spf13/cobra"

	"github.com/expc-dev/expc/explain"
)

func (c *cli) explainCmd() *cobra.Command {
	var f buildFlags
	var format string
	cmd := &cobra.Command{
		Use:   "explain [--format text|json|dot|cuda] [PLAN|SPEC]",
		Short: "Show what the compiler did: passes, kernels, memory",
		Long: "Explain a plan: the passes that ran and their times, the kernels in launch order\n" +
			"(op, fused-from, shapes, FLOPs, bytes) and the arena. Without an argument, the last build.\n" +
			"--format dot prints a Graphviz graph: expc explain --format dot | dot -Tsvg > plan.svg",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			render, ok := explain.Formats[format]
			if !ok {
				var names []string
				for n := range explain.Formats {
					names = append(names, n)
				}
				sort.Strings(names)
				return c.fail(fmt.Errorf("unknown format %q (want one of %v)", format, names))
			}
			plan, _, _, timings, err := c.resolvePlan(args, &f, false)
			if err != nil {
				return err
			}
			return render(os.Stdout, plan, timings)
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&format, "format", "text", "text, json, dot or cuda (the generated CUDA C++)")
	return cmd
}
