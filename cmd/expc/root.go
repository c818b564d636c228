package main

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"
	"golang.org/x/term"

	"github.com/expc-dev/expc/diag"
)

// cli holds the resolved configuration: flags, then EXPC_* variables, then
// a config file, then defaults (viper's order).
type cli struct {
	v *viper.Viper
}

func newRootCmd() *cobra.Command {
	c := &cli{v: viper.New()}
	root := &cobra.Command{
		Use:           "expc",
		Short:         "expc compiles ML experiment specs into execution plans and runs them",
		Long:          "expc type-checks an experiment spec (CUE or HCL), compiles its training step into a\ndeterministic, content-addressed plan, runs it and records the run.",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return c.loadConfig(cmd)
		},
	}
	pf := root.PersistentFlags()
	pf.String("config", "", "config file (default: .expc/config.yaml, then $XDG_CONFIG_HOME/expc/config.yaml)")
	pf.Bool("json", false, "print diagnostics as JSON")
	pf.Bool("no-color", false, "no colours in diagnostics")
	pf.Int("threads", 0, "worker threads for the CPU backend (default: all cores)")
	for _, name := range []string{"json", "no-color", "threads"} {
		_ = c.v.BindPFlag(name, pf.Lookup(name))
	}
	c.v.SetDefault("backend", "")
	c.v.SetDefault("runs_dir", "runs")
	c.v.SetDefault("memory_limit", 0)
	root.AddCommand(c.buildCmd(), c.runCmd(), c.explainCmd(), c.vetCmd(), c.versionCmd())
	return root
}

func (c *cli) loadConfig(cmd *cobra.Command) error {
	c.v.SetEnvPrefix("EXPC")
	c.v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	c.v.AutomaticEnv()
	if f, _ := cmd.Flags().GetString("config"); f != "" {
		c.v.SetConfigFile(f)
		if err := c.v.ReadInConfig(); err != nil {
			return err
		}
	} else {
		c.v.SetConfigName("config")
		c.v.SetConfigType("yaml")
		c.v.AddConfigPath(".expc")
		if x := os.Getenv("XDG_CONFIG_HOME"); x != "" {
			c.v.AddConfigPath(filepath.Join(x, "expc"))
		} else if h, err := os.UserHomeDir(); err == nil {
			c.v.AddConfigPath(filepath.Join(h, ".config", "expc"))
		}
		if err := c.v.ReadInConfig(); err != nil {
			var nf viper.ConfigFileNotFoundError
			if !asNotFound(err, &nf) {
				return err
			}
		}
	}
	if t := c.v.GetInt("threads"); t > 0 {
		runtime.GOMAXPROCS(t)
	}
	return nil
}

func asNotFound(err error, target *viper.ConfigFileNotFoundError) bool {
	nf, ok := err.(viper.ConfigFileNotFoundError)
	if ok {
		*target = nf
	}
	return ok
}

// report prints diagnostics (as text with snippets, or JSON) to stderr and
// returns the exit error when any is an error.
func (c *cli) report(list diag.List) error {
	if len(list) == 0 {
		return nil
	}
	if c.v.GetBool("json") {
		_ = diag.RenderJSON(os.Stdout, list)
	} else {
		color := !c.v.GetBool("no-color") && term.IsTerminal(int(os.Stderr.Fd()))
		_ = diag.Render(os.Stderr, list, sourceFiles(list), color)
	}
	if list.HasErrors() {
		return exitError{1}
	}
	return nil
}

// sourceFiles reads the text files the diagnostics point at, for snippets.
func sourceFiles(list diag.List) map[string][]byte {
	files := map[string][]byte{}
	for _, d := range list {
		f := d.Range.File
		if f == "" || files[f] != nil {
			continue
		}
		if b, err := os.ReadFile(f); err == nil && len(b) < 1<<20 {
			files[f] = b
		}
	}
	return files
}

// fail reports a plain error as a diagnostic without a position.
func (c *cli) fail(err error) error {
	return c.report(diag.FromError(err))
}
