// Package exoscale is exokey's cloud side: one Keys interface over Exoscale's
// two IAM APIs (legacy access keys and IAM v3 roles with API keys), the
// policy compiler, and the HTTP client every backend shares. It knows nothing
// of Kubernetes.
package exoscale

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"
)

// Keys mints, finds and revokes restricted keys with one issuer's credentials.
type Keys interface {
	// Create mints a key. The returned Credential holds the only copy of
	// the key's secret.
	Create(ctx context.Context, spec KeySpec) (Credential, error)
	// Get returns a live key by ID, or ErrNotFound.
	Get(ctx context.Context, keyID string) (Key, error)
	// FindByName returns every key of that name, including (on IAMv3) a
	// role left without its key by an interrupted create.
	FindByName(ctx context.Context, name string) ([]Key, error)
	// Revoke revokes a key (and its role); a key already gone is not an error.
	Revoke(ctx context.Context, key Key) error
	// Describe reads a live key's restrictions back as a KeySpec (its name,
	// without labels): a legacy key's operations, tags and resources,
	// an IAM v3 key's role policy decompiled. A policy no KeySpec compiles
	// to is an *InexpressibleError; a key that does not exist ErrNotFound.
	Describe(ctx context.Context, keyID string) (KeySpec, error)
	// Grantable says what the issuer's own key may hand out: on IAMv3
	// what its role and the organisation policy both allow.
	Grantable(ctx context.Context) (Grantable, error)
	// FindByLabels returns the keys (and keyless roles) whose role carries
	// every one of labels. Legacy keys carry no labels: ErrNoLabels.
	FindByLabels(ctx context.Context, labels map[string]string) ([]Key, error)
	// CreateSessionRole creates the role of spec (its policy compiled
	// from spec, spec.Labels on it) that the issuer's own key alone may
	// assume, for at most maxTTL. The role grants nothing until assumed.
	// Legacy access keys have no sessions: ErrNoSessions.
	CreateSessionRole(ctx context.Context, spec KeySpec, maxTTL time.Duration) (Key, error)
	// GetRole returns a session role by ID (Key.ID empty), or ErrNotFound.
	GetRole(ctx context.Context, roleID string) (Key, error)
	// Assume returns a session credential of the role, valid for ttl. It
	// cannot be revoked: it expires, or ends with its role.
	Assume(ctx context.Context, roleID string, ttl time.Duration) (Session, error)
	// List reads what the organisation holds, in one call per kind: the
	// inventory's source, so a drift check costs O(1) calls, not one a key.
	List(ctx context.Context) (Listing, error)
	// PutPolicy sets a role's policy back to what spec compiles to, with
	// update-iam-role-policy. Legacy access keys have no role: ErrNoRoles.
	PutPolicy(ctx context.Context, roleID string, spec KeySpec) error
	// Release marks a key that outlives what it was minted for, so a sweep
	// of keys by labels leaves it alone (on IAMv3, a label on its role; a
	// no-op on legacy keys).
	Release(ctx context.Context, key Key, label string) error
}

// Grantable is what an issuer's own key holds, and so may grant.
type Grantable struct {
	// Operations the key holds, in both vocabularies (a legacy S3 name
	// when all its S3 actions are held, and each S3 action of a legacy
	// name that is held), sorted.
	Operations []string
	// Depends maps an operation whose grant depends on facts of the
	// request (source_ip, now, resources) to those facts: it is not
	// counted as held, since a key minted with it may be refused.
	Depends map[string][]string
	// Notes say what could not be read, in words for the issuer's status:
	// the organisation policy when the key may not read it.
	Notes []string
}

// Holds reports whether the key holds an operation.
func (g Grantable) Holds(operation string) bool { return slices.Contains(g.Operations, operation) }

// ErrLegacyAPIGone says the endpoint does not serve the legacy access-key
// API, which left Exoscale's API document in 2024.
var ErrLegacyAPIGone = errors.New("the endpoint does not serve legacy access keys (/v2/access-key), which Exoscale removed from its public API in 2024: use an issuer with api: IAMv3")

// ErrNoLabels is returned by FindByLabels where keys carry no labels.
var ErrNoLabels = errors.New("legacy access keys carry no labels")

// ErrNoSessions is returned by the session calls of a legacy backend.
var ErrNoSessions = errors.New("session credentials need IAM v3 (an issuer with api: IAMv3)")

// KeySpec is what a key may do.
type KeySpec struct {
	// Name of the key (and of its role on IAMv3).
	Name string
	// Operations by Exoscale operation id.
	Operations []string
	// Tags are whole services; "compute/*" is read as compute.
	Tags []string
	// Resources as DOMAIN/TYPE:NAME, e.g. sos/bucket:backups.
	Resources []string
	// Unrestricted asks for every right of the issuer.
	Unrestricted bool
	// Labels record the owner on IAMv3 roles; legacy keys cannot carry them.
	Labels map[string]string
}

// Key identifies a minted key; it never holds the secret.
type Key struct {
	ID   string
	Name string
	// RoleID is the key's role on IAMv3, empty on AccessKeyV2.
	RoleID string
	// Labels are the labels of the key's role as FindByName and
	// FindByLabels saw them: never nil on IAMv3, nil on AccessKeyV2.
	Labels map[string]string
}

// Credential is a freshly minted key with its secret.
type Credential struct {
	Key
	Secret Secret
}

// Session is a session credential from assume-iam-role: Key.ID is its
// key, Key.RoleID the assumed role.
type Session struct {
	Credential
	ExpiresAt time.Time
}

// CreateSession creates spec's session role and its first credential. A
// role whose credential cannot be had is deleted again, as Create deletes
// a role whose key cannot be made; if that fails too, NothingCreated
// reports false and the role is found by name.
func CreateSession(ctx context.Context, keys Keys, spec KeySpec, ttl time.Duration) (Session, error) {
	role, err := keys.CreateSessionRole(ctx, spec, ttl)
	if err != nil {
		return Session{}, err
	}
	session, err := keys.Assume(ctx, role.RoleID, ttl)
	if err != nil {
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if cleanupErr := keys.Revoke(cleanup, role); cleanupErr != nil {
			return Session{}, &leftBehindError{err: err, roleID: role.RoleID, cleanup: cleanupErr}
		}
		return Session{}, err
	}
	session.Name = spec.Name
	return session, nil
}

// Secret is a key's secret. It prints as [redacted] so it cannot reach a
// log, an event or an error by accident; Reveal returns the value.
type Secret string

// Reveal returns the secret's value, for writing into a Kubernetes Secret.
func (s Secret) Reveal() string { return string(s) }

func (Secret) String() string                  { return "[redacted]" }
func (Secret) GoString() string                { return "[redacted]" }
func (Secret) MarshalText() ([]byte, error)    { return []byte("[redacted]"), nil }
func (s Secret) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte("[redacted]")) }

// ErrNotFound is returned by Get when the key does not exist.
var ErrNotFound = errors.New("not found")

// APIError is an error answer of the Exoscale API.
type APIError struct {
	// Operation is the API operation, e.g. create-api-key.
	Operation string
	// Status is the HTTP status; 0 when the request got no answer.
	Status  int
	Message string
	// RetryAfter is set when the call was throttled, by a 429 or by the
	// client's own rate limit: come back after it.
	RetryAfter time.Duration
	err        error
}

func (e *APIError) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("%s: %v", e.Operation, e.err)
	}
	if e.Message == "" {
		return fmt.Sprintf("%s: %d %s", e.Operation, e.Status, http.StatusText(e.Status))
	}
	return fmt.Sprintf("%s: %d %s: %s", e.Operation, e.Status, http.StatusText(e.Status), e.Message)
}

func (e *APIError) Unwrap() error { return e.err }

// Terminal reports whether retrying cannot help: a 4xx other than 408 and
// 429. A terminal error stays until someone changes the spec or the issuer.
func (e *APIError) Terminal() bool {
	return e.Status >= 400 && e.Status < 500 && e.Status != http.StatusTooManyRequests && e.Status != http.StatusRequestTimeout
}

// RetryAfter returns how long to wait before calling again when err is a
// throttled call.
func RetryAfter(err error) (time.Duration, bool) {
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.RetryAfter > 0 {
		return apiErr.RetryAfter, true
	}
	return 0, false
}

// NothingCreated reports whether a failed Create left nothing behind: the
// API refused it for good, or it was throttled before anything was applied.
// Any other failure may have minted something, to be found by name.
func NothingCreated(err error) bool {
	var leftBehind *leftBehindError
	if errors.As(err, &leftBehind) {
		return false
	}
	_, throttled := RetryAfter(err)
	return throttled || IsTerminal(err)
}

// leftBehindError is a create that failed half way and could not undo the
// half it did (a role whose key was refused, and whose deletion failed).
type leftBehindError struct {
	err     error
	roleID  string
	cleanup error
}

func (e *leftBehindError) Error() string {
	return fmt.Sprintf("%v (and deleting role %s failed: %v)", e.err, e.roleID, e.cleanup)
}

// Unwrap answers the create's error, for its status and message.
func (e *leftBehindError) Unwrap() error { return e.err }

// IsTerminal reports whether err is a terminal API error or a SpecError.
func IsTerminal(err error) bool {
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr.Terminal()
	}
	var specErr *SpecError
	return errors.As(err, &specErr)
}

// SpecError says why a KeySpec cannot be minted, in words a user can act on.
type SpecError struct {
	// Reason is a CamelCase cause: UnknownOperation, UnknownTag,
	// InvalidResource or Unsupported.
	Reason  string
	Message string
}

func (e *SpecError) Error() string { return e.Message }

// Reasons of a SpecError.
const (
	ReasonUnknownOperation = "UnknownOperation"
	ReasonUnknownTag       = "UnknownTag"
	ReasonInvalidResource  = "InvalidResource"
	ReasonUnsupported      = "Unsupported"
)

// CreateOwnerKey mints an IAM v3 key on a role with an empty policy, which
// Exoscale reads as allowing everything (its built-in Owner role's policy
// is empty): for tests and the demo, an issuer key as an organisation's
// owner would hand it over.
func CreateOwnerKey(ctx context.Context, keys Keys, name string) (Credential, error) {
	v3, ok := unwrap(keys).(*iamv3Keys)
	if !ok {
		return Credential{}, errors.New("an Owner key is an IAM v3 key")
	}
	return v3.createOwnerKey(ctx, name)
}

func unwrap(keys Keys) Keys {
	if d, ok := keys.(withDeadlines); ok {
		return d.keys
	}
	return keys
}
