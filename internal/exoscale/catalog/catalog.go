// Package catalog is Exoscale's operation catalogue: every API operation with
// its legacy tag, its IAM v3 service class, method and path, and the S3
// actions of Object Storage in both vocabularies. It validates operation
// names, expands tags and classes into operations, translates legacy S3
// names into IAM v3 actions and matches issuers' glob patterns. Where each
// fact comes from is recorded per operation (docs/reference/exoscale-facts.md).
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

// Source is how well a fact of the catalogue is known.
type Source string

// The sources of a fact, strongest first.
const (
	Confirmed  Source = "confirmed"   // an Exoscale source says so
	ThirdParty Source = "third-party" // seen in roles used against the real API
	Inferred   Source = "inferred"    // reasoned from other facts
	Unknown    Source = "unknown"     // nothing found: a guess, to be confirmed live
)

// Vocabulary says which IAM API speaks an operation's name.
type Vocabulary string

const (
	// Both: a /v2 operation, named alike by legacy keys and IAM v3 roles.
	Both Vocabulary = ""
	// Legacy: an S3 operation under its legacy access-key name
	// (get-sos-object); IAM v3 roles know it by its S3Actions.
	Legacy Vocabulary = "legacy"
	// V3: an S3 action name of the IAM v3 sos class (get-object); legacy
	// access keys know it by its legacy name.
	V3 Vocabulary = "v3"
)

// Operation is one Exoscale API operation.
type Operation struct {
	Name string `json:"operation"`
	// Tag is the parent of the operation's documentation tag: what a legacy
	// access key's tags name. It is not the IAM v3 class.
	Tag string `json:"tag"`
	// Class is the IAM v3 service class the server evaluates the operation
	// under, and ClassSource how that is known. Empty: role policies do not
	// gate the operation at all.
	Class       string `json:"class"`
	ClassSource Source `json:"class-source"`
	// Note says why, where the class is not the tag's.
	Note string `json:"note,omitempty"`
	// Method and Path are empty for operations served over S3 only.
	Method string `json:"method,omitempty"`
	Path   string `json:"path,omitempty"`
	// Protocol is "s3" for Object Storage operations, empty for the /v2 API.
	Protocol string `json:"protocol,omitempty"`
	// Retired is when the operation left the public API, empty while it is current.
	Retired    string     `json:"retired,omitempty"`
	Vocabulary Vocabulary `json:"vocabulary,omitempty"`
	// S3Actions are the IAM v3 actions a Legacy operation covers.
	S3Actions []string `json:"s3-actions,omitempty"`
	// S3Request names the S3 requests of a V3 action.
	S3Request string `json:"s3-request,omitempty"`
	// Bucketless operations name no bucket: a rule on parameters.bucket
	// never matches them.
	Bucketless bool `json:"bucketless,omitempty"`
}

// Async reports whether the operation answers with an asynchronous
// operation that the caller polls with get-operation: the /v2 mutations,
// except those that answer their result directly (keys, sessions, and
// what is generated, revealed or read). Inferred from the API document's
// response shapes (docs/reference/exoscale-facts.md).
func (op Operation) Async() bool {
	switch {
	case op.Method == "" || op.Method == "GET":
		return false
	case op.Name == "create-access-key" || op.Name == "create-api-key" || op.Name == "assume-iam-role":
		return false
	}
	for _, prefix := range []string{"generate-", "reveal-", "get-", "list-"} {
		if strings.HasPrefix(op.Name, prefix) {
			return false
		}
	}
	return true
}

// Gated reports whether role policies decide the operation.
func (op Operation) Gated() bool { return op.Class != "" }

// Catalog is an immutable set of operations.
type Catalog struct {
	operations []Operation // sorted by name
	byName     map[string]Operation
	byTag      map[string][]string
	byClass    map[string][]string
	legacyOf   map[string]string // v3 action -> the legacy operation covering it
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
	c := &Catalog{byName: map[string]Operation{}, byTag: map[string][]string{}, byClass: map[string][]string{}, legacyOf: map[string]string{}}
	for _, op := range doc.Operations {
		if op.Name == "" || op.Tag == "" {
			return nil, fmt.Errorf("operation %q without a name or tag", op.Name)
		}
		if _, dup := c.byName[op.Name]; dup {
			return nil, fmt.Errorf("operation %q listed twice", op.Name)
		}
		if (op.Vocabulary == Legacy) != (len(op.S3Actions) > 0) {
			return nil, fmt.Errorf("operation %q: a legacy S3 operation, and only one, names its s3-actions", op.Name)
		}
		c.byName[op.Name] = op
		c.operations = append(c.operations, op)
		if op.Vocabulary != V3 {
			c.byTag[op.Tag] = append(c.byTag[op.Tag], op.Name)
		}
		if op.Vocabulary != Legacy && op.Class != "" {
			c.byClass[op.Class] = append(c.byClass[op.Class], op.Name)
		}
	}
	for _, op := range c.operations {
		for _, action := range op.S3Actions {
			target, ok := c.byName[action]
			if !ok || target.Vocabulary != V3 {
				return nil, fmt.Errorf("operation %q: s3-action %q is not an IAM v3 S3 action of the catalogue", op.Name, action)
			}
			if _, taken := c.legacyOf[action]; !taken {
				c.legacyOf[action] = op.Name
			}
		}
	}
	sort.Slice(c.operations, func(i, j int) bool { return c.operations[i].Name < c.operations[j].Name })
	for _, names := range c.byTag {
		sort.Strings(names)
	}
	for _, names := range c.byClass {
		sort.Strings(names)
	}
	return c, nil
}

// Operations returns every operation of both vocabularies, sorted by name.
func (c *Catalog) Operations() []Operation { return slices.Clone(c.operations) }

// OperationsOf returns the operations an API speaks, sorted by name: for
// legacy keys (v3 false) the /v2 operations and the legacy S3 names, for
// IAM v3 roles the /v2 operations and the S3 actions.
func (c *Catalog) OperationsOf(v3 bool) []Operation {
	skip := V3
	if v3 {
		skip = Legacy
	}
	ops := make([]Operation, 0, len(c.operations))
	for _, op := range c.operations {
		if op.Vocabulary != skip {
			ops = append(ops, op)
		}
	}
	return ops
}

// Lookup returns the operation of that name, in either vocabulary.
func (c *Catalog) Lookup(name string) (Operation, bool) {
	op, ok := c.byName[name]
	return op, ok
}

// Tags returns the legacy tags (the documentation tags' parents), sorted.
func (c *Catalog) Tags() []string { return sortedKeys(c.byTag) }

// HasTag reports whether tag is a legacy tag.
func (c *Catalog) HasTag(tag string) bool {
	_, ok := c.byTag[tag]
	return ok
}

// TagOperations returns the names of a legacy tag's operations, in the
// legacy vocabulary, sorted.
func (c *Catalog) TagOperations(tag string) []string { return slices.Clone(c.byTag[tag]) }

// Classes returns the IAM v3 service classes of the catalogue, sorted.
// Exoscale has classes without a catalogue operation (compute-legacy):
// a policy may name any class.
func (c *Catalog) Classes() []string { return sortedKeys(c.byClass) }

// HasClass reports whether class is the class of a catalogue operation.
func (c *Catalog) HasClass(class string) bool {
	_, ok := c.byClass[class]
	return ok
}

// ClassOperations returns the names of a class's operations, in the IAM v3
// vocabulary, sorted.
func (c *Catalog) ClassOperations(class string) []string { return slices.Clone(c.byClass[class]) }

// V3Actions returns what an operation is called in IAM v3 role policies:
// a legacy S3 name's S3 actions, any other operation's own name.
func (c *Catalog) V3Actions(name string) []string {
	if op, ok := c.byName[name]; ok && op.Vocabulary == Legacy {
		return slices.Clone(op.S3Actions)
	}
	return []string{name}
}

// LegacyName returns the legacy access-key operation that covers an IAM v3
// S3 action, empty when there is none.
func (c *Catalog) LegacyName(action string) string { return c.legacyOf[action] }

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
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
