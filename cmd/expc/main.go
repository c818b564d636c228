// Command expc compiles machine-learning experiment specs into execution
// plans and runs them. This package is flags and printing only; the work is
// in pipeline, runner, explain and the backends.
package main

import (
	"errors"
	"fmt"
	"os"
)

// exitError carries an exit code through cobra without printing twice.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func main() {
	root := newRootCmd()
	if err := root.Execute(); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		fmt.Fprintf(os.Stderr, "expc: %v\n", err)
		os.Exit(2)
	}
}
