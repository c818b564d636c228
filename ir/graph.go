package ir

import "fmt"

// Role says what a function parameter is, which decides where its buffer
// lives (persistent or per step) and who fills it.
type Role uint8

const (
	RoleNone  Role = iota
	RoleInput      // data fed each step (a batch, a label vector, the step number)
	RoleParam      // trainable weight: persistent, initialised, updated by the step
	RoleState      // optimizer or method state: persistent, zero-initialised
)

var roleNames = [...]string{RoleNone: "", RoleInput: "input", RoleParam: "param", RoleState: "state"}

func (r Role) String() string { return roleNames[r] }

// ParseRole is the inverse of Role.String.
func ParseRole(s string) (Role, error) {
	for i, n := range roleNames {
		if n == s && n != "" {
			return Role(i), nil
		}
	}
	return RoleNone, fmt.Errorf("unknown role %q (want input, param or state)", s)
}

// Value is an SSA value: a function parameter or one result of an instruction.
type Value struct {
	Name string // unique within its function; printed as %Name
	Type Type
	Role Role   // for parameters
	Def  *Instr // defining instruction; nil for parameters
	// Init names the initializer of a RoleParam ("he_normal", "xavier_uniform", "zeros").
	Init string
}

// Instr is one operation. Most ops have one result; optimizer updates and
// some fused ops have several.
type Instr struct {
	Op      string
	Args    []*Value
	Attrs   Attrs
	Results []*Value
	Loc     Loc
}

// Result is the single result of a one-result op.
func (in *Instr) Result() *Value { return in.Results[0] }

// Output is one named result of a function. When Updates is set, the value
// is the new contents of that parameter or state slot: backends write it in
// place.
type Output struct {
	Name    string
	Value   *Value
	Updates *Value
}

// Func is one program of a module: "train" (forward, backward, update) or
// "eval" (forward, loss, accuracy).
type Func struct {
	Name    string
	Params  []*Value
	Body    []*Instr
	Outputs []Output
}

// Module is everything the compiler produced for one spec.
type Module struct {
	Name  string
	Funcs []*Func
}

// Func returns the function with the given name, or nil.
func (m *Module) Func(name string) *Func {
	for _, f := range m.Funcs {
		if f.Name == name {
			return f
		}
	}
	return nil
}

// Builder appends instructions to a function, inferring result types from
// the op table and naming values uniquely.
type Builder struct {
	F     *Func
	Loc   Loc // position attached to new instructions
	names map[string]int
	used  map[string]bool
}

// NewBuilder starts (or continues) building f.
func NewBuilder(f *Func) *Builder {
	b := &Builder{F: f, names: map[string]int{}, used: map[string]bool{}}
	for _, p := range f.Params {
		b.used[p.Name] = true
	}
	for _, in := range f.Body {
		for _, r := range in.Results {
			b.used[r.Name] = true
		}
	}
	return b
}

// Fresh returns an unused value name with the given stem: "h", "h.1", ...
func (b *Builder) Fresh(stem string) string {
	if stem == "" {
		stem = "t"
	}
	if !b.used[stem] {
		b.used[stem] = true
		return stem
	}
	for {
		b.names[stem]++
		n := fmt.Sprintf("%s.%d", stem, b.names[stem])
		if !b.used[n] {
			b.used[n] = true
			return n
		}
	}
}

// Param adds a function parameter.
func (b *Builder) Param(name string, t Type, role Role) *Value {
	v := &Value{Name: b.Fresh(name), Type: t, Role: role}
	b.F.Params = append(b.F.Params, v)
	return v
}

// Emit appends an instruction; names are stems for its results. It returns
// an error when the op table rejects the arguments.
func (b *Builder) Emit(op string, args []*Value, attrs Attrs, names ...string) (*Instr, error) {
	types := make([]Type, len(args))
	for i, a := range args {
		types[i] = a.Type
	}
	rts, err := InferTypes(op, types, attrs)
	if err != nil {
		return nil, err
	}
	in := &Instr{Op: op, Args: args, Attrs: attrs, Loc: b.Loc}
	for i, t := range rts {
		stem := op
		if i < len(names) && names[i] != "" {
			stem = names[i]
		}
		in.Results = append(in.Results, &Value{Name: b.Fresh(stem), Type: t, Def: in})
	}
	b.F.Body = append(b.F.Body, in)
	return in, nil
}

// Must is Emit for compiler code whose shapes were already checked: a type
// error here is an internal bug, reported by the caller's recover.
func (b *Builder) Must(op string, args []*Value, attrs Attrs, names ...string) *Instr {
	in, err := b.Emit(op, args, attrs, names...)
	if err != nil {
		panic(fmt.Sprintf("internal: %v", err))
	}
	return in
}

// V emits a single-result op and returns its value.
func (b *Builder) V(op string, attrs Attrs, name string, args ...*Value) *Value {
	return b.Must(op, args, attrs, name).Result()
}

// Uses counts, for every value, the instructions and outputs that read it.
func (f *Func) Uses() map[*Value]int {
	uses := map[*Value]int{}
	for _, in := range f.Body {
		for _, a := range in.Args {
			uses[a]++
		}
	}
	for _, o := range f.Outputs {
		uses[o.Value]++
	}
	return uses
}

// ReplaceAllUses makes every reader of old read new instead.
func (f *Func) ReplaceAllUses(old, new *Value) {
	for _, in := range f.Body {
		for i, a := range in.Args {
			if a == old {
				in.Args[i] = new
			}
		}
	}
	for i := range f.Outputs {
		if f.Outputs[i].Value == old {
			f.Outputs[i].Value = new
		}
	}
}
