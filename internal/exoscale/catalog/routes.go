package catalog

import (
	"sort"
	"strings"
)

// Router maps a method and path under /v2 to a catalogue operation and its
// path parameters, using the templates of the catalogue (e.g.
// /v2/iam-role/{id}:policy). Retired operations stay: the legacy access
// keys are among them, and serving them is the point.
type Router struct {
	byMethod map[string][]route
}

type route struct {
	op       Operation
	segments []segment
	literal  int // literal characters: more is more specific
}

// segment is one path segment template: prefix{param}suffix, or a literal
// when param is empty.
type segment struct {
	prefix, param, suffix string
}

// NewRouter builds the router of a catalogue.
func NewRouter(cat *Catalog) *Router {
	r := &Router{byMethod: map[string][]route{}}
	for _, op := range cat.Operations() {
		if op.Method == "" { // S3-only

			continue
		}
		rt := route{op: op}
		for part := range strings.SplitSeq(strings.Trim(op.Path, "/"), "/") {
			seg := segment{prefix: part}
			if open := strings.IndexByte(part, '{'); open >= 0 {
				if end := strings.IndexByte(part[open:], '}'); end > 0 {
					seg = segment{prefix: part[:open], param: part[open+1 : open+end], suffix: part[open+end+1:]}
				}
			}
			rt.literal += len(seg.prefix) + len(seg.suffix)
			rt.segments = append(rt.segments, seg)
		}
		r.byMethod[op.Method] = append(r.byMethod[op.Method], rt)
	}
	for method := range r.byMethod {
		routes := r.byMethod[method]
		sort.SliceStable(routes, func(i, j int) bool { return routes[i].literal > routes[j].literal })
	}
	return r
}

// Match returns the operation at method and path and its path parameters.
func (r *Router) Match(method, path string) (Operation, map[string]string, bool) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	for _, rt := range r.byMethod[method] {
		if params, ok := rt.match(parts); ok {
			return rt.op, params, true
		}
	}
	return Operation{}, nil, false
}

func (rt route) match(parts []string) (map[string]string, bool) {
	if len(parts) != len(rt.segments) {
		return nil, false
	}
	params := map[string]string{}
	for i, seg := range rt.segments {
		part := parts[i]
		if seg.param == "" {
			if part != seg.prefix {
				return nil, false
			}
			continue
		}
		if len(part) <= len(seg.prefix)+len(seg.suffix) ||
			!strings.HasPrefix(part, seg.prefix) || !strings.HasSuffix(part, seg.suffix) {
			return nil, false
		}
		params[seg.param] = part[len(seg.prefix) : len(part)-len(seg.suffix)]
	}
	return params, true
}
