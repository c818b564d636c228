package codegen

// HostPrelude and Prelude let the external tests build generated units for
// the host (moe_host_test.go).
var HostPrelude, Prelude = hostPrelude, prelude
