package lowering

import "github.com/expc-dev/expc/ir"

// The ir functions the driver calls, as variables so that tests can count
// the calls.
var (
	verifyModule = ir.Verify
	verifyPlan   = ir.VerifyPlan
	printModule  = ir.Print
	printPlan    = ir.PrintPlan
)
