// Package catalog is Exoscale's operation catalogue: every API operation with
// its service, method and path. It validates operation names, expands tags
// (services) into operations and matches issuers' glob patterns.
package catalog

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
)

//go:embed operations.json
var operationsJSON []byte

// Operation is one Exoscale API operation.
type Operation struct {
	Name    string `json:"operation"`
	Service string `json:"service"`
	// Method and Path are empty for operations served over S3 only.
	Method string `json:"method,omitempty"`
	Path   string `json:"path,omitempty"`
	// Protocol is "s3" for Object Storage operations, empty for the /v2 API.
	Protocol string `json:"protocol,omitempty"`
	// Retired is when the operation left the public API, empty while it is current.
	Retired string `json:"retired,omitempty"`
}

// Catalog is an immutable set of operations.
type Catalog struct {
	operations []Operation // sorted by name
	byName     map[string]Operation
	byService  map[string][]string
}

var defaultCatalog = mustParse(operationsJSON)

// Default returns the catalogue embedded in this package.
func Default() *Catalog { return defaultCatalog }

func mustParse(raw []byte) *Catalog {
	c, err := Parse(raw)
	if err != nil {
		panic(fmt.Sprintf("embedded operation catalogue: %v", err))
	}
	return c
}

// Parse reads a catalogue in the format of operations.json.
func Parse(raw []byte) (*Catalog, error) {
	var doc struct {
		Operations []Operation `json:"operations"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	c := &Catalog{byName: map[string]Operation{}, byService: map[string][]string{}}
	for _, op := range doc.Operations {
		if op.Name == "" || op.Service == "" {
			return nil, fmt.Errorf("operation %q without a name or service", op.Name)
		}
		if _, dup := c.byName[op.Name]; dup {
			return nil, fmt.Errorf("operation %q listed twice", op.Name)
		}
		c.byName[op.Name] = op
		c.byService[op.Service] = append(c.byService[op.Service], op.Name)
		c.operations = append(c.operations, op)
	}
	sort.Slice(c.operations, func(i, j int) bool { return c.operations[i].Name < c.operations[j].Name })
	for _, names := range c.byService {
		sort.Strings(names)
	}
	return c, nil
}

// Operations returns every operation, sorted by name.
func (c *Catalog) Operations() []Operation { return slices.Clone(c.operations) }

// Lookup returns the operation of that name.
func (c *Catalog) Lookup(name string) (Operation, bool) {
	op, ok := c.byName[name]
	return op, ok
}

// Services returns the services (the operation tags), sorted.
func (c *Catalog) Services() []string {
	services := make([]string, 0, len(c.byService))
	for s := range c.byService {
		services = append(services, s)
	}
	sort.Strings(services)
	return services
}

// HasService reports whether service is a known service.
func (c *Catalog) HasService(service string) bool {
	_, ok := c.byService[service]
	return ok
}

// ServiceOperations returns the names of a service's operations, sorted.
func (c *Catalog) ServiceOperations(service string) []string {
	return slices.Clone(c.byService[service])
}

// NormalizeTag reads the older tag syntax "compute/*" as the tag "compute".
func NormalizeTag(tag string) string { return strings.TrimSuffix(tag, "/*") }

// MatchOperations returns the names of the operations a glob pattern such
// as "get-sos-*" matches, sorted.
func (c *Catalog) MatchOperations(pattern string) []string {
	var names []string
	for _, op := range c.operations {
		if Glob(pattern, op.Name) {
			names = append(names, op.Name)
		}
	}
	return names
}

// Glob reports whether name matches a shell glob pattern (*, ?, [..]).
// A malformed pattern matches nothing.
func Glob(pattern, name string) bool {
	ok, err := path.Match(pattern, name)
	return err == nil && ok
}

// Suggest returns the known operation name nearest to an unknown one, for
// "did you mean" messages; empty when nothing is reasonably close.
func (c *Catalog) Suggest(name string) string {
	best, bestDistance := "", len(name)/2+2
	for _, op := range c.operations {
		if d := editDistance(name, op.Name); d < bestDistance {
			best, bestDistance = op.Name, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	previous := make([]int, len(b)+1)
	current := make([]int, len(b)+1)
	for j := range previous {
		previous[j] = j
	}
	for i := 1; i <= len(a); i++ {
		current[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			current[j] = min(previous[j]+1, current[j-1]+1, previous[j-1]+cost)
		}
		previous, current = current, previous
	}
	return previous[len(b)]
}
