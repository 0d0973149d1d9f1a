package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/roundhouse/roundhouse/routing"
)

// Routes. The file's route "NAME" { ... } blocks send requests to pools:
// tried in file order, the first whose every stated condition holds wins
// (package routing matches them). Without route blocks every request goes
// to the default pool. With routes, a pool is reached only through a route
// that names it, the default pool included, and a pool no route names is
// refused: it would hold backends no request could reach.

// routeBlock is one route block as read.
type routeBlock struct {
	route routing.Route
	label hcl.Range // the label's position (the block's type when it has none)
	ok    bool      // the label is a good, unrepeated name
	// attrs holds each attribute read, by name, for the positions of the
	// checks that span attributes.
	attrs map[string]*hclsyntax.Attribute
}

// routeAttribute is one attribute of a route block.
type routeAttribute struct {
	name   string
	decode func(v cty.Value, r *routing.Route) error
}

// routeAttributes are the attributes of a route block; unknown-attribute
// messages list them in this order.
var routeAttributes = []routeAttribute{
	{"hosts", func(v cty.Value, r *routing.Route) (err error) { r.Hosts, err = asStrings(v); return err }},
	{"path_prefix", func(v cty.Value, r *routing.Route) (err error) { r.PathPrefix, err = asString(v); return err }},
	{"methods", func(v cty.Value, r *routing.Route) (err error) { r.Methods, err = asStrings(v); return err }},
	{"headers", func(v cty.Value, r *routing.Route) (err error) { r.Headers, err = asStringMap(v); return err }},
	{"pool", func(v cty.Value, r *routing.Route) (err error) { r.Pool, err = asString(v); return err }},
	{"strip_prefix", func(v cty.Value, r *routing.Route) (err error) { r.StripPrefix, err = asBool(v); return err }},
}

// route reads a route "NAME" { ... } block.
func (l *loader) route(b *hclsyntax.Block) {
	rb := &routeBlock{label: b.TypeRange, attrs: map[string]*hclsyntax.Attribute{}}
	if len(b.Labels) != 1 {
		l.problems = append(l.problems, problemAt(b.TypeRange,
			fmt.Sprintf(`route: want one label, the route's name: route "api" { pool = "api" }; got %d`, len(b.Labels))))
	} else {
		rb.route.Name, rb.label = b.Labels[0], b.LabelRanges[0]
		rb.ok = l.checkName("route", rb.route.Name, rb.label)
		for _, other := range l.routeBlocks {
			if rb.ok && other.ok && other.route.Name == rb.route.Name {
				l.problems = append(l.problems, problemAt(rb.label,
					fmt.Sprintf("route %q: given twice; the first is at line %d", rb.route.Name, other.label.Start.Line)))
				rb.ok = false
			}
		}
	}
	for _, a := range sortedAttributes(b.Body) {
		i := slices.IndexFunc(routeAttributes, func(x routeAttribute) bool { return x.name == a.Name })
		if i < 0 {
			var known []string
			for _, x := range routeAttributes {
				known = append(known, x.name)
			}
			l.problems = append(l.problems, problemAt(a.NameRange,
				fmt.Sprintf("unknown attribute %q in a route block (known: %s)", a.Name, strings.Join(known, ", "))))
			continue
		}
		v, valid := l.value(a, "route."+a.Name)
		if !valid {
			continue
		}
		if err := routeAttributes[i].decode(v, &rb.route); err != nil {
			l.problems = append(l.problems, problemAt(a.Expr.Range(), "route."+a.Name+": "+err.Error()))
			continue
		}
		rb.attrs[a.Name] = a
	}
	for _, inner := range b.Body.Blocks {
		l.unknownBlock(inner, "route")
	}
	l.routeBlocks = append(l.routeBlocks, rb)
}

// resolveRoutes checks the route blocks against the pools and each other
// and builds s.Routes; then it refuses the pools no request can reach.
// declared holds every pool name the configuration declares, with problems
// or not.
func (l *loader) resolveRoutes(declared []string) {
	s := l.s
	var routes []routing.Route
	var labels []hcl.Range
	for _, rb := range l.routeBlocks {
		r := rb.route
		name := fmt.Sprintf("route %q", r.Name)
		if a := rb.attrs["pool"]; a == nil {
			l.problems = append(l.problems, problemAt(rb.label,
				name+`: no pool: name the pool that serves it, such as pool = "api"`))
		} else if !slices.Contains(declared, r.Pool) {
			known := "none"
			if len(declared) > 0 {
				known = strings.Join(declared, ", ")
			}
			l.problems = append(l.problems, problemAt(a.Expr.Range(),
				fmt.Sprintf("%s: no pool %q (pools: %s)", name, r.Pool, known)))
		}
		l.routeProblems(rb, routing.CheckHosts(r.Hosts))
		l.routeProblems(rb, []error{routing.CheckPathPrefix(r.PathPrefix)})
		l.routeProblems(rb, routing.CheckMethods(r.Methods))
		l.routeProblems(rb, routing.CheckHeaders(r.Headers))
		if a := rb.attrs["strip_prefix"]; r.StripPrefix && r.PathPrefix == "" {
			l.problems = append(l.problems, problemAt(a.Expr.Range(),
				name+": strip_prefix needs a path_prefix to strip"))
		}
		routes = append(routes, r)
		labels = append(labels, rb.label)
	}
	for _, sh := range routing.Shadowed(routes) {
		l.problems = append(l.problems, problemAt(labels[sh.Later],
			fmt.Sprintf("route %q can never match: route %q (line %d) is tried first and matches every request it would",
				sh.LaterName, sh.EarlierName, labels[sh.Earlier].Start.Line)))
	}
	s.Routes = routes
	l.unreachablePools()
}

// routeProblems records the checkers' errors of rb at the attribute (or
// the list element) they concern.
func (l *loader) routeProblems(rb *routeBlock, errs []error) {
	for _, err := range errs {
		if err == nil {
			continue
		}
		at, msg := rb.label, err.Error()
		var fe *routing.FieldError
		if errors.As(err, &fe) {
			if a := rb.attrs[fe.Field]; a != nil {
				at = elementRange(a.Expr, fe)
			}
		}
		l.problems = append(l.problems, problemAt(at, fmt.Sprintf("route %q: %s", rb.route.Name, msg)))
	}
}

// elementRange returns the position of the list element or header name
// fe is about in expr, the value of fe.Field; expr's own when it is
// written otherwise.
func elementRange(expr hclsyntax.Expression, fe *routing.FieldError) hcl.Range {
	switch e := expr.(type) {
	case *hclsyntax.TupleConsExpr:
		if fe.Index >= 0 && fe.Index < len(e.Exprs) {
			return e.Exprs[fe.Index].Range()
		}
	case *hclsyntax.ObjectConsExpr:
		for _, item := range e.Items {
			k, diags := item.KeyExpr.Value(nil)
			if !diags.HasErrors() && k.Type() == cty.String && k.IsKnown() && !k.IsNull() && k.AsString() == fe.Value {
				return item.KeyExpr.Range()
			}
		}
	}
	return expr.Range()
}

// unreachablePools refuses each pool no request can reach: without routes,
// every pool but the default one; with routes, every pool no route names.
func (l *loader) unreachablePools() {
	s := l.s
	named := map[string]bool{}
	for _, r := range s.Routes {
		named[r.Pool] = true
	}
	for _, p := range s.Pools {
		switch {
		case named[p.Name], len(s.Routes) == 0 && p.Name == DefaultPool:
			continue
		case p.Name == DefaultPool && p.Source == "":
			msg := `the default pool (top-level backends, --backend and --discover) is reached only through a route that names it: add route "rest" { pool = "default" } after the others`
			switch {
			case len(l.backendRanges) > 0:
				l.problems = append(l.problems, problemAt(l.backendRanges[0], "backend: "+msg))
			case l.from[rowByFlag["backend"]].flag != "":
				l.problemFrom(rowByFlag["backend"], msg)
			case l.from[rowByFlag["discover"]].flag != "" || l.from[rowByFlag["discover"]].rng != nil:
				l.problemFrom(rowByFlag["discover"], msg)
			default:
				l.problems = append(l.problems, Problem{File: s.File, Msg: msg})
			}
		case len(s.Routes) == 0:
			l.problems = append(l.problems, problemAt(poolLabel(l, p.Name), fmt.Sprintf(
				`pool %q: no route names it, so no request can reach it (without route blocks, every request goes to the default pool); add a route such as route %q { pool = %q }`,
				p.Name, p.Name, p.Name)))
		default:
			l.problems = append(l.problems, problemAt(poolLabel(l, p.Name), fmt.Sprintf(
				`pool %q: no route names it, so no request can reach it; add a route such as route %q { pool = %q }`,
				p.Name, p.Name, p.Name)))
		}
	}
}

// poolLabel returns the position of the label of the good pool block
// called name.
func poolLabel(l *loader, name string) hcl.Range {
	for _, pb := range l.poolBlocks {
		if pb.ok && pb.name == name {
			return pb.label
		}
	}
	return hcl.Range{Filename: l.s.File}
}

// asStrings reads a list of strings.
func asStrings(v cty.Value) ([]string, error) {
	t := v.Type()
	if v.IsNull() || !v.IsKnown() || !(t.IsTupleType() || t.IsListType()) {
		return nil, fmt.Errorf("want a list of strings, got %s", typeName(v))
	}
	var out []string
	for i, e := range v.AsValueSlice() {
		str, err := asString(e)
		if err != nil {
			return nil, fmt.Errorf("element %d: %w", i, err)
		}
		out = append(out, str)
	}
	return out, nil
}

// asStringMap reads an object of strings, such as { "X-Canary" = "1" }.
func asStringMap(v cty.Value) (map[string]string, error) {
	t := v.Type()
	if v.IsNull() || !v.IsKnown() || !(t.IsObjectType() || t.IsMapType()) {
		return nil, fmt.Errorf(`want names and values, such as { "X-Canary" = "1" }, got %s`, typeName(v))
	}
	out := map[string]string{}
	for name, value := range v.AsValueMap() {
		str, err := asString(value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out[name] = str
	}
	return out, nil
}
