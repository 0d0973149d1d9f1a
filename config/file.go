package config

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/roundhouse/roundhouse/actors"
)

// The file is HCL native syntax, read with hclsyntax. Values are literals:
// variables and function calls are refused. Types are strict: a number
// where a string is wanted is an error, not a conversion. The schema comes
// from table (top-level attributes and blocks of attributes) plus the
// backend blocks, which take the backend's URL as their label.

// loader collects settings and problems while one configuration is read.
type loader struct {
	s        *Settings
	file     string   // the config file's name as given, for positions
	dir      string   // its directory, for relative file names in it
	from     []origin // per table row: who gave the value
	problems Problems
	// backendRanges holds, for each of s.Backends that came from the
	// file, its label's position.
	backendRanges []hcl.Range
	// backendLines maps the URL of every backend block read so far,
	// with problems or not, to the line of its label.
	backendLines map[string]int
	// unread is set when the file could not be read or parsed, and
	// rejected counts the backend blocks (and discover lists) that had
	// problems: in either case
	// "no backend" would only repeat a problem already reported.
	unread   bool
	rejected int

	// inPool is set on the loader that reads one pool block's body (see
	// pool): it refuses what a pool cannot set.
	inPool bool
	// poolBlocks and routeBlocks are the file's pool and route blocks, in
	// file order, as read; check makes Settings.Pools and Routes of them.
	poolBlocks  []*poolBlock
	routeBlocks []*routeBlock
}

// origin is who gave a setting its value: a flag, a file position, or
// neither (the default).
type origin struct {
	flag string
	rng  *hcl.Range
}

func newLoader(s *Settings) *loader {
	return &loader{s: s, from: make([]origin, len(table))}
}

// problemFrom records msg against whoever gave table[i] its value.
func (l *loader) problemFrom(i int, msg string) {
	o := l.from[i]
	path, fl := table[i].names()
	switch {
	case o.rng != nil:
		l.problems = append(l.problems, problemAt(*o.rng, path+": "+msg))
	case o.flag != "":
		l.problems = append(l.problems, Problem{Flag: o.flag, Msg: msg})
	default: // a default value that fails its own check: a bug in table
		l.problems = append(l.problems, Problem{Flag: fl, Msg: msg + " (the default)"})
	}
}

func problemAt(r hcl.Range, msg string) Problem {
	return Problem{File: r.Filename, Line: r.Start.Line, Column: r.Start.Column, Msg: msg}
}

// readFile reads the configuration file into l.s.
func (l *loader) readFile(file string) {
	l.s.File = file
	src, err := os.ReadFile(file)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		l.problems = append(l.problems, Problem{File: file, Msg: err.Error()})
		l.unread = true
		return
	}
	l.parse(file, src)
}

// parse reads src, the contents of file, into l.s. It never panics: a
// reload must not take the balancer down, whatever the file holds.
func (l *loader) parse(file string, src []byte) {
	l.s.File, l.file, l.dir = file, file, filepath.Dir(file)
	defer func() {
		if r := recover(); r != nil {
			l.problems = append(l.problems, Problem{File: file, Msg: fmt.Sprintf("cannot parse: %v", r)})
			l.unread = true
		}
	}()
	f, diags := hclsyntax.ParseConfig(src, file, hcl.InitialPos)
	if diags.HasErrors() {
		l.diagnostics(diags, "") // the structure cannot be trusted: stop here
		l.unread = true
		return
	}
	l.body(f.Body.(*hclsyntax.Body))
}

// body reads the attributes and blocks of body: the file's top level, or,
// when l.inPool, a pool block's.
func (l *loader) body(body *hclsyntax.Body) {
	l.attributes(body, "")
	first := map[string]*hclsyntax.Block{}
	for _, b := range body.Blocks {
		switch {
		case b.Type == "backend":
			l.backend(b)
			continue
		case b.Type == "pool" || b.Type == "route":
			if l.inPool {
				l.problems = append(l.problems, problemAt(b.TypeRange,
					fmt.Sprintf("a %s block cannot be inside a pool block: write it at the top level", b.Type)))
			} else if b.Type == "pool" {
				l.pool(b)
			} else {
				l.route(b)
			}
			continue
		case !slices.Contains(blocks, b.Type):
			l.unknownBlock(b, "")
			continue
		case l.inPool && !slices.Contains(poolBlocks, b.Type):
			l.problems = append(l.problems, problemAt(b.TypeRange, notInPool("the "+b.Type+" block")))
			continue
		case len(b.Labels) > 0:
			l.problems = append(l.problems, problemAt(b.LabelRanges[0], fmt.Sprintf("%s: the %s block takes no label", b.Type, b.Type)))
		case first[b.Type] != nil:
			l.problems = append(l.problems, problemAt(b.TypeRange,
				fmt.Sprintf("%s: a second %s block; the first is at line %d", b.Type, b.Type, first[b.Type].TypeRange.Start.Line)))
			continue
		}
		first[b.Type] = b
		l.attributes(b.Body, b.Type)
		l.innerBlocks(b)
	}
}

// innerBlocks reads the blocks inside block b: those of nestedBlocks
// (tls { acme { ... } }), once each and without a label; any other is a
// problem.
func (l *loader) innerBlocks(b *hclsyntax.Block) {
	seen := map[string]bool{}
	for _, inner := range b.Body.Blocks {
		path := b.Type + "." + inner.Type
		switch {
		case !slices.Contains(nestedBlocks, path):
			l.unknownBlock(inner, b.Type)
		case len(inner.Labels) > 0:
			l.problems = append(l.problems, problemAt(inner.LabelRanges[0], fmt.Sprintf("%s: the %s block takes no label", path, inner.Type)))
		case seen[path]:
			l.problems = append(l.problems, problemAt(inner.TypeRange, fmt.Sprintf("%s: a second %s block", path, inner.Type)))
		default:
			seen[path] = true
			l.attributes(inner.Body, path)
			for _, deeper := range inner.Body.Blocks {
				l.unknownBlock(deeper, path)
			}
		}
	}
}

// diagnostics records HCL's own problems (syntax, variables), each
// message after prefix.
func (l *loader) diagnostics(diags hcl.Diagnostics, prefix string) {
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		msg := prefix + d.Summary
		if d.Detail != "" {
			msg += ": " + d.Detail
		}
		p := Problem{File: l.file, Msg: msg}
		if d.Subject != nil {
			p = problemAt(*d.Subject, msg)
		}
		l.problems = append(l.problems, p)
	}
}

// attributes reads the attributes of body, the top level (block "") or one
// block's, into l.s.
func (l *loader) attributes(body *hclsyntax.Body, block string) {
	for _, a := range sortedAttributes(body) {
		path := a.Name
		if block != "" {
			path = block + "." + a.Name
		}
		i, ok := rowByPath[path]
		switch {
		case !ok && l.inPool && block == "":
			l.problems = append(l.problems, problemAt(a.NameRange,
				fmt.Sprintf("unknown attribute %q in a pool block (a pool may set %s)", a.Name, strings.Join(poolKeyNames(), ", "))))
			continue
		case !ok:
			l.problems = append(l.problems, problemAt(a.NameRange, unknownAttribute(a.Name, block)))
			continue
		case l.inPool && !slices.Contains(poolKeys, path):
			l.problems = append(l.problems, problemAt(a.NameRange, notInPool(path)))
			continue
		}
		v, ok := l.value(a, path)
		if !ok {
			continue
		}
		if err := table[i].decode(v, l.s, l.dir); err != nil {
			l.problems = append(l.problems, problemAt(a.Expr.Range(), path+": "+err.Error()))
			if path == "discover" {
				l.rejected++ // "no backend" would only repeat this problem
			}
			continue
		}
		r := a.Expr.Range()
		l.from[i] = origin{rng: &r}
	}
}

// value evaluates a's expression, which may use no variables or functions.
// path names the attribute in problems.
func (l *loader) value(a *hclsyntax.Attribute, path string) (cty.Value, bool) {
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() {
		l.diagnostics(diags, path+": ")
		return cty.NilVal, false
	}
	return v, true
}

func sortedAttributes(body *hclsyntax.Body) []*hclsyntax.Attribute {
	attrs := make([]*hclsyntax.Attribute, 0, len(body.Attributes))
	for _, a := range body.Attributes {
		attrs = append(attrs, a)
	}
	slices.SortFunc(attrs, func(a, b *hclsyntax.Attribute) int { return a.SrcRange.Start.Byte - b.SrcRange.Start.Byte })
	return attrs
}

// unknownAttribute explains an attribute name that block ("" for the top
// level) does not have.
func unknownAttribute(name, block string) string {
	if block == "" && slices.Contains(blocks, name) {
		return fmt.Sprintf("%s is a block, not an attribute: write %s { ... }", name, name)
	}
	var known []string
	for _, row := range table {
		path, _ := row.names()
		if path == "" || path == "backend" {
			continue
		}
		b, attr, nested := "", path, false
		if i := strings.LastIndex(path, "."); i >= 0 { // tls.acme.domains: block tls.acme
			b, attr, nested = path[:i], path[i+1:], true
		}
		if b == block {
			known = append(known, attr)
		}
		if block == "" && nested && attr == name {
			return fmt.Sprintf("unknown attribute %q at the top level; it belongs in the %s block", name, b)
		}
	}
	where := "at the top level"
	if block != "" {
		where = "in the " + block + " block"
	}
	return fmt.Sprintf("unknown attribute %q %s (known: %s)", name, where, strings.Join(known, ", "))
}

// isAttribute reports whether name is a top-level attribute.
func isAttribute(name string) bool {
	_, ok := rowByPath[name]
	return ok && name != "backend"
}

// unknownBlock records a block that is not allowed where it is: inside
// block, or at the top level when block is "".
func (l *loader) unknownBlock(b *hclsyntax.Block, block string) {
	var msg string
	switch {
	case block != "":
		msg = fmt.Sprintf("unexpected block %q in the %s block: it takes only attributes", b.Type, block)
	case isAttribute(b.Type):
		msg = fmt.Sprintf("%s is an attribute, not a block: write %s = ...", b.Type, b.Type)
	case outerBlock(b.Type) != "":
		msg = fmt.Sprintf("the %s block belongs in the %s block: write %s { %s { ... } }", b.Type, outerBlock(b.Type), outerBlock(b.Type), b.Type)
	default:
		msg = fmt.Sprintf("unknown block %q (known: %s)", b.Type, strings.Join(append([]string{"backend"}, append(slices.Clone(blocks), "pool", "route")...), ", "))
	}
	l.problems = append(l.problems, problemAt(b.TypeRange, msg))
}

// outerBlock is the block that holds the nested block name (tls for
// acme), or "" when there is no such nested block.
func outerBlock(name string) string {
	for _, n := range nestedBlocks {
		if outer, inner, _ := strings.Cut(n, "."); inner == name {
			return outer
		}
	}
	return ""
}

// backendAttribute is one attribute of a backend block.
type backendAttribute struct {
	name     string
	fileType string // for the reference table: "number"
	flag     string // the flag that sets it, for the reference table
	decode   func(v cty.Value, b *Backend) error
}

// backendAttributes are the attributes of a backend block. Every backend
// gets a problem of its own, so these checks run as each value is read.
var backendAttributes = []backendAttribute{
	{"weight", "number", "`--backend URL,weight=N`", func(v cty.Value, b *Backend) error {
		n, err := asInt(v)
		if err == nil && (n < 0 || n > actors.MaxWeight) {
			err = fmt.Errorf("want a whole number from 0 to %d, got %d", actors.MaxWeight, n)
		}
		b.Weight = n
		return err
	}},
	{"enabled", "bool", "none", func(v cty.Value, b *Backend) error {
		on, err := asBool(v)
		b.Disabled = !on
		return err
	}},
	{"proxy_protocol", "string", "`--backend URL,proxy-protocol=v1\\|v2`", func(v cty.Value, b *Backend) error {
		str, err := asString(v)
		if err != nil {
			return err
		}
		if b.ProxyProtocol, err = parseProxyProtocolVersion(str); err == nil && b.URL != nil && b.URL.Scheme == "h2c" {
			err = errProxyProtocolH2C
		}
		return err
	}},
}

// backend reads a backend "URL" { weight = N  enabled = BOOL } block.
func (l *loader) backend(b *hclsyntax.Block) {
	ok := true
	var be Backend
	if len(b.Labels) != 1 {
		l.problems = append(l.problems, problemAt(b.TypeRange,
			fmt.Sprintf(`backend: want one label, the URL: backend "http://127.0.0.1:8081" { }; got %d`, len(b.Labels))))
		ok = false
	} else {
		u, err := actors.ParseBackendURL(b.Labels[0])
		if err != nil {
			l.problems = append(l.problems, problemAt(b.LabelRanges[0], fmt.Sprintf("backend %q: %v", b.Labels[0], err)))
			ok = false
		}
		r := b.LabelRanges[0]
		be = Backend{URL: u, Weight: 1, Source: fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)}
	}
	for _, a := range sortedAttributes(b.Body) {
		i := slices.IndexFunc(backendAttributes, func(x backendAttribute) bool { return x.name == a.Name })
		if i < 0 {
			var known []string
			for _, x := range backendAttributes {
				known = append(known, x.name)
			}
			l.problems = append(l.problems, problemAt(a.NameRange,
				fmt.Sprintf("unknown attribute %q in a backend block (known: %s)", a.Name, strings.Join(known, ", "))))
			ok = false
			continue
		}
		v, valid := l.value(a, "backend."+a.Name)
		if !valid {
			ok = false
			continue
		}
		if err := backendAttributes[i].decode(v, &be); err != nil {
			l.problems = append(l.problems, problemAt(a.Expr.Range(), "backend."+a.Name+": "+err.Error()))
			ok = false
		}
	}
	for _, inner := range b.Body.Blocks {
		l.unknownBlock(inner, "backend")
		ok = false
	}
	if be.URL != nil {
		// A repeated URL is a problem of its own, whether or not either
		// block has others: every problem is reported at once.
		name := be.URL.String()
		if line, dup := l.backendLines[name]; dup {
			l.problems = append(l.problems, problemAt(b.LabelRanges[0],
				fmt.Sprintf("backend %s: given twice; the first is at line %d", be.URL, line)))
			ok = false
		} else {
			if l.backendLines == nil {
				l.backendLines = map[string]int{}
			}
			l.backendLines[name] = b.LabelRanges[0].Start.Line
		}
	}
	if !ok || be.URL == nil {
		l.rejected++
		return
	}
	l.s.Backends = append(l.s.Backends, be)
	l.backendRanges = append(l.backendRanges, b.LabelRanges[0])
}

// The file's value types. Each returns an error that says what was wanted
// and what was found; the caller adds the position and the setting's path.

func typeName(v cty.Value) string {
	switch t := v.Type(); {
	case v.IsNull():
		return "null"
	case t == cty.String:
		return "a string"
	case t == cty.Number:
		return "a number"
	case t == cty.Bool:
		return "a bool"
	case t.IsTupleType(), t.IsListType(), t.IsSetType():
		return "a list"
	case t.IsObjectType(), t.IsMapType():
		return "an object"
	}
	return v.Type().FriendlyName()
}

func asString(v cty.Value) (string, error) {
	if v.IsNull() || v.Type() != cty.String || !v.IsKnown() {
		return "", fmt.Errorf("want a string, got %s", typeName(v))
	}
	return v.AsString(), nil
}

func asBool(v cty.Value) (bool, error) {
	if v.IsNull() || v.Type() != cty.Bool || !v.IsKnown() {
		return false, fmt.Errorf("want true or false, got %s", typeName(v))
	}
	return v.True(), nil
}

func asInt(v cty.Value) (int, error) {
	if v.IsNull() || v.Type() != cty.Number || !v.IsKnown() {
		return 0, fmt.Errorf("want a whole number, got %s", typeName(v))
	}
	f := v.AsBigFloat()
	if !f.IsInt() {
		return 0, fmt.Errorf("want a whole number, got %s", f.Text('g', -1))
	}
	n, acc := f.Int64()
	if acc != big.Exact || n < math.MinInt || n > math.MaxInt {
		return 0, fmt.Errorf("%s is out of range", f.Text('g', -1))
	}
	return int(n), nil
}

func asDuration(v cty.Value) (time.Duration, error) {
	s, err := asString(v)
	if err != nil {
		return 0, fmt.Errorf("want a duration such as \"10s\", got %s", typeName(v))
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("bad duration %q: want a number and a unit, such as 500ms, 10s or 1m30s", s)
	}
	return d, nil
}
