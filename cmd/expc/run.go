package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/expc-dev/expc/backends"
	_ "github.com/expc-dev/expc/backends/cpu"  // registers "cpu"
	_ "github.com/expc-dev/expc/backends/cuda" // registers "cuda"
	"github.com/expc-dev/expc/pipeline"
	"github.com/expc-dev/expc/runner"
)

func (c *cli) runCmd() *cobra.Command {
	var f buildFlags
	var steps int
	var runsDir, resume string
	cmd := &cobra.Command{
		Use:   "run [--steps N] [--runs-dir DIR] [PLAN|SPEC]",
		Short: "Train: run a plan (the last build by default) and record the run",
		Long: "Run a plan and record it under runs/<run-id>/ (spec, plan.json, metrics.jsonl,\n" +
			"summary.json, checkpoint.bin). Ctrl-C saves a checkpoint and marks the run\n" +
			"interrupted; --resume RUN_DIR continues it.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// A spec is compiled in memory and its plan written only once the
			// backend is ready, so a backend that cannot run (no GPU) leaves
			// nothing behind.
			plan, planJSON, _, timings, err := c.resolvePlan(args, &f, false)
			if err != nil {
				return err
			}
			backendName := plan.Target
			be, err := backends.Open(backendName)
			if err != nil {
				return c.fail(err)
			}
			exe, err := be.Prepare(plan)
			if err != nil {
				return c.fail(fmt.Errorf("%s backend: %w", backendName, err))
			}
			defer exe.Close()
			if len(args) > 0 && !isPlanPath(args[0]) {
				if _, err := pipeline.Write(&pipeline.Result{Plan: plan, PlanJSON: planJSON, Timings: timings}, ""); err != nil {
					return c.fail(fmt.Errorf("writing the plan: %w", err))
				}
			}

			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if runsDir == "" {
				runsDir = c.v.GetString("runs_dir")
			}
			specPath := ""
			if len(args) > 0 && !isPlanPath(args[0]) {
				specPath = args[0]
			}
			sum, dir, err := runner.Run(ctx, plan, exe, backendName, runner.Options{
				RunsDir: runsDir, Steps: steps, SpecPath: specPath, PlanJSON: planJSON,
				Progress: os.Stderr, Terminal: term.IsTerminal(int(os.Stderr.Fd())), Resume: resume,
			})
			if dir != "" {
				fmt.Println(dir)
			}
			if err != nil {
				return c.fail(err)
			}
			if sum != nil && sum.Status == "interrupted" {
				return exitError{130}
			}
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().IntVar(&steps, "steps", 0, "train for N steps instead of the plan's schedule")
	cmd.Flags().StringVar(&runsDir, "runs-dir", "", "where run directories go (default \"runs\")")
	cmd.Flags().StringVar(&resume, "resume", "", "continue the run in RUN_DIR from its checkpoint")
	return cmd
}
