package schema
import (
 _ "cuelang.org/go/cue/load"
 _ "cuelang.org/go/cue/cuecontext"
 _ "cuelang.org/go/cue/errors"
 _ "github.com/hashicorp/hcl/v2/hclsyntax"
 _ "github.com/hashicorp/hcl/v2/hclparse"
 _ "github.com/zclconf/go-cty/cty"
)
