// Package emulator is a local Exoscale IAM API: legacy access keys, IAM v3
// roles and API keys, async operations and request signing, faithful enough
// that the unmodified egoscale v2 and v3 clients work against it. Every other
// catalogue operation answers 200 {} when the signing key may call it and 403
// when not, so a minted key can be probed.
package emulator

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/exokey/exokey/internal/exoscale/catalog"
	"github.com/exokey/exokey/internal/exoscale/policy"
)

// Options configure an emulator.
type Options struct {
	// RootKey and RootSecret are the unrestricted key the emulator starts
	// with; generated when empty.
	RootKey, RootSecret string
	// StateFile, when set, persists keys, roles and operations across restarts.
	StateFile string
	// PendingPolls is how many polls an async operation answers pending.
	PendingPolls int
	// Faults are injected into /v2 calls from the start.
	Faults Faults
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger gets one line per request (never a secret); silent when nil.
	Logger *slog.Logger
	// Catalog of operations; the embedded one when nil.
	Catalog *catalog.Catalog
	// Zone is what the zone binding of policies reads; ch-gva-2 when empty.
	Zone string
}

// Faults are injected into /v2 calls, before authentication.
type Faults struct {
	// LatencyMS delays every call, plus up to JitterMS more. With
	// LatencyP99MS above it, the delay is log-normal: LatencyMS is its
	// median and LatencyP99MS its 99th percentile.
	LatencyMS    int `json:"latencyMs"`
	LatencyP99MS int `json:"latencyP99Ms"`
	JitterMS     int `json:"jitterMs"`
	// PendingPolls is how many polls a new async operation answers pending
	// (at least Options.PendingPolls); with PendingPollsMax above it, a
	// uniform number between the two.
	PendingPolls    int `json:"pendingPolls"`
	PendingPollsMax int `json:"pendingPollsMax"`
	// KeyRate limits each key's calls per second, with a burst of KeyBurst
	// (default: one second's worth). A call beyond it is answered 429 with
	// a Retry-After of the wait, rounded up to whole seconds.
	KeyRate  float64 `json:"keyRate"`
	KeyBurst int     `json:"keyBurst"`
	// ErrorRate is the fraction of calls answered 503.
	ErrorRate float64 `json:"errorRate"`
	// ThrottleRate is the fraction of calls answered 429 with Retry-After.
	ThrottleRate float64 `json:"throttleRate"`
	// RetryAfterSeconds is the Retry-After of a 429 (default 1).
	RetryAfterSeconds int `json:"retryAfterSeconds"`
	// FailNext and ThrottleNext answer the next N calls 503 or 429.
	FailNext     int `json:"failNext"`
	ThrottleNext int `json:"throttleNext"`
	// LoseResponseRate is the fraction of mutating calls (POST, PUT,
	// DELETE) that are applied and then answered 504, as when a response
	// is lost on the way back; LoseResponseNext does it to the next N.
	LoseResponseRate float64 `json:"loseResponseRate"`
	LoseResponseNext int     `json:"loseResponseNext"`
	// LoseResponseOperations limits lost responses to these operations.
	LoseResponseOperations []string `json:"loseResponseOperations,omitempty"`
	// LegacyGone answers the legacy access-key endpoints (/v2/access-key*)
	// 404, as Exoscale's public API no longer documents them.
	LegacyGone bool `json:"legacyGone,omitempty"`
	// RoleLagMS answers create-api-key 404 for a role created less than
	// this long ago, as Exoscale's clients see right after create-iam-role.
	RoleLagMS int `json:"roleLagMs,omitempty"`
	// ThrottleBody answers a 429 with its wait in the body alone,
	// {"error","retry_after"}, and no Retry-After header.
	ThrottleBody bool `json:"throttleBody,omitempty"`
	// ProblemJSON answers errors as RFC 9457 problem details.
	ProblemJSON bool `json:"problemJson,omitempty"`
	// ListLatencyPer1000MS delays a list call by this much more per 1,000
	// items it answers, as a real API takes longer to read and send a
	// whole organisation.
	ListLatencyPer1000MS int `json:"listLatencyPer1000Ms"`
}

// Stats count /v2 calls by operation, by status and by key.
type Stats struct {
	Total      int            `json:"total"`
	Operations map[string]int `json:"operations"`
	Statuses   map[string]int `json:"statuses"`
	Keys       map[string]int `json:"keys"`
	// ByOperationStatus counts "operation status" pairs, e.g. "create-api-key 200".
	ByOperationStatus map[string]int `json:"byOperationStatus"`
}

// Server is an emulated Exoscale IAM API. It is safe for concurrent use.
type Server struct {
	opts   Options
	cat    *catalog.Catalog
	router *catalog.Router
	log    *slog.Logger

	mu     sync.Mutex
	state  state
	faults Faults
	rates  keyRates
	stats  Stats
	// compiled caches the compiled policy of each role by role id.
	compiled map[string]*policy.Compiled
	// organization is the compiled organisation policy.
	organization *policy.Compiled
	// objects is the S3 store behind the SOS endpoint.
	objects http.Handler
}

// state is everything the emulator persists.
type state struct {
	Keys       map[string]*accessKey `json:"keys"`
	Roles      map[string]*role      `json:"roles"`
	Operations map[string]*operation `json:"operations"`
	// OrganizationPolicy is the organisation's policy, the second gate of
	// every IAM v3 request; empty (allow everything) by default, as at
	// Exoscale.
	OrganizationPolicy policy.Policy `json:"organization-policy"`
}

type keyKind string

const (
	kindLegacy  keyKind = "legacy"  // a legacy access key
	kindAPIKey  keyKind = "api-key" // an IAM v3 API key bound to a role
	kindAssumed keyKind = "assumed" // a session key from assume-iam-role
)

type accessKey struct {
	Kind         keyKind    `json:"kind"`
	Key          string     `json:"key"`
	Secret       string     `json:"secret"`
	Name         string     `json:"name"`
	Unrestricted bool       `json:"unrestricted,omitempty"`
	Operations   []string   `json:"operations,omitempty"`
	Tags         []string   `json:"tags,omitempty"`
	Resources    []resource `json:"resources,omitempty"`
	RoleID       string     `json:"roleID,omitempty"`
	ExpiresAt    *time.Time `json:"expiresAt,omitempty"`
	CreatedAt    time.Time  `json:"createdAt"`
}

type resource struct {
	Domain       string `json:"domain"`
	ResourceType string `json:"resource-type"`
	ResourceName string `json:"resource-name"`
}

type role struct {
	ID            string            `json:"id"`
	Name          string            `json:"name"`
	Description   string            `json:"description,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	Editable      bool              `json:"editable"`
	MaxSessionTTL int64             `json:"max-session-ttl,omitempty"`
	Permissions   []string          `json:"permissions,omitempty"`
	Policy        policy.Policy     `json:"policy"`
	// AssumeRolePolicy says who may assume the role; without one, any key
	// holding what the role grants may.
	AssumeRolePolicy *policy.AssumeRolePolicy `json:"assume-role-policy,omitempty"`
	// Created is when the role was made, for Faults.RoleLagMS.
	Created time.Time `json:"-"`
}

type operation struct {
	ID        string     `json:"id"`
	State     string     `json:"state"`
	Reason    string     `json:"reason,omitempty"`
	Message   string     `json:"message,omitempty"`
	Reference *reference `json:"reference,omitempty"`
	PollsLeft int        `json:"pollsLeft"`
	// Created is when the operation began: finished ones are forgotten
	// operationRetention after it.
	Created time.Time `json:"created"`
}

// operationRetention is how long a finished operation can still be read.
// Clients poll an operation within seconds of starting it; keeping every
// one made the state, which a --state file rewrites on each change, grow
// with every call ever made.
const operationRetention = 5 * time.Minute

type reference struct {
	ID      string `json:"id,omitempty"`
	Link    string `json:"link,omitempty"`
	Command string `json:"command,omitempty"`
}

// New starts an emulator's state: loaded from opts.StateFile when it exists,
// with the root key present.
func New(opts Options) (*Server, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Catalog == nil {
		opts.Catalog = catalog.Default()
	}
	if opts.Zone == "" {
		opts.Zone = "ch-gva-2"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	var err error
	s := &Server{
		opts:     opts,
		cat:      opts.Catalog,
		router:   catalog.NewRouter(opts.Catalog),
		log:      opts.Logger,
		faults:   opts.Faults,
		rates:    newKeyRates(opts.Faults),
		stats:    newStats(),
		compiled: map[string]*policy.Compiled{},
		state: state{
			Keys:       map[string]*accessKey{},
			Roles:      map[string]*role{},
			Operations: map[string]*operation{},
		},
	}
	if opts.StateFile != "" {
		if err = s.load(); err != nil {
			return nil, err
		}
	}
	if (opts.RootKey == "") != (opts.RootSecret == "") {
		return nil, errors.New("root key and root secret are given together")
	}
	if opts.RootKey == "" {
		if root := s.findRoot(); root != nil {
			opts.RootKey, opts.RootSecret = root.Key, root.Secret
		} else {
			opts.RootKey, opts.RootSecret = newKeyID(), newSecret()
		}
	}
	s.opts = opts
	s.state.Keys[opts.RootKey] = &accessKey{
		Kind: kindLegacy, Key: opts.RootKey, Secret: opts.RootSecret, Name: "root",
		Unrestricted: true, CreatedAt: opts.Now(),
	}
	if s.organization, err = policy.Compile(s.state.OrganizationPolicy); err != nil {
		return nil, fmt.Errorf("the stored organisation policy: %w", err)
	}
	s.objects = newObjectStore()
	if err := s.saveLocked(); err != nil {
		return nil, err
	}
	return s, nil
}

func newStats() Stats {
	return Stats{Operations: map[string]int{}, Statuses: map[string]int{}, Keys: map[string]int{}, ByOperationStatus: map[string]int{}}
}

// Root returns the unrestricted root credential.
func (s *Server) Root() (key, secret string) { return s.opts.RootKey, s.opts.RootSecret }

func (s *Server) findRoot() *accessKey {
	for _, k := range s.state.Keys {
		if k.Kind == kindLegacy && k.Name == "root" && k.Unrestricted {
			return k
		}
	}
	return nil
}

// SetFaults replaces the injected faults.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
	s.rates = newKeyRates(f)
}

// Faults returns the faults injected now.
func (s *Server) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// Stats returns a copy of the call counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{
		Total: s.stats.Total, Operations: maps.Clone(s.stats.Operations), Statuses: maps.Clone(s.stats.Statuses),
		Keys: maps.Clone(s.stats.Keys), ByOperationStatus: maps.Clone(s.stats.ByOperationStatus),
	}
}

// ResetStats zeroes the call counters.
func (s *Server) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats = newStats()
}

// LiveKeys returns the IDs of the keys that authenticate now, root excluded:
// what a leak check compares against what Secrets hold.
func (s *Server) LiveKeys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	var ids []string
	for id, k := range s.state.Keys {
		if id == s.opts.RootKey || (k.ExpiresAt != nil && now.After(*k.ExpiresAt)) {
			continue
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// KeyInfo describes a live key without its secret.
type KeyInfo struct {
	ID, Name, Kind, RoleID string
}

// Keys lists the keys that authenticate now, root excluded, sorted by ID.
func (s *Server) Keys() []KeyInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	var keys []KeyInfo
	for id, k := range s.state.Keys {
		if id == s.opts.RootKey || (k.ExpiresAt != nil && now.After(*k.ExpiresAt)) {
			continue
		}
		keys = append(keys, KeyInfo{ID: id, Name: k.Name, Kind: string(k.Kind), RoleID: k.RoleID})
	}
	slices.SortFunc(keys, func(a, b KeyInfo) int { return strings.Compare(a.ID, b.ID) })
	return keys
}

// RoleInfo describes an IAM v3 role.
type RoleInfo struct {
	ID, Name string
	Labels   map[string]string
	Policy   policy.Policy
}

// Roles lists the IAM v3 roles, sorted by name.
func (s *Server) Roles() []RoleInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	roles := make([]RoleInfo, 0, len(s.state.Roles))
	for _, r := range s.state.Roles {
		roles = append(roles, RoleInfo{ID: r.ID, Name: r.Name, Labels: maps.Clone(r.Labels), Policy: r.Policy})
	}
	slices.SortFunc(roles, func(a, b RoleInfo) int { return strings.Compare(a.Name, b.Name) })
	return roles
}

// RoleCount returns how many IAM v3 roles exist.
func (s *Server) RoleCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.state.Roles)
}

// apiError is an HTTP error answered as {"message": ...}, or in the forms
// Faults.ProblemJSON and Faults.ThrottleBody choose.
type apiError struct {
	status  int
	message string
	// retryAfter is a 429's wait in seconds.
	retryAfter int
}

func (e *apiError) Error() string { return e.message }

func errorf(status int, format string, args ...any) *apiError {
	return &apiError{status: status, message: fmt.Sprintf(format, args...)}
}

// call is one authenticated /v2 request.
type call struct {
	op         catalog.Operation
	params     map[string]string
	body       []byte
	principal  *accessKey
	grant      grant
	requestURL string
	ctx        context.Context
}

// ServeHTTP serves /v2 and the /_emulator endpoints.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasPrefix(r.URL.Path, "/v2/"):
		s.serveAPI(w, r)
	case r.URL.Path == "/_emulator/authorize":
		s.serveAuthorize(w, r)
	case r.URL.Path == "/_emulator/faults" || r.URL.Path == "/_emulator/stats":
		s.serveAdmin(w, r)
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "not found: " + r.URL.Path})
	}
}

const maxBody = 1 << 20

// publicOperations answer unsigned requests too, as at Exoscale (egoscale v3
// does not sign them). A signed request is still verified.
var publicOperations = map[string]bool{"list-zones": true}

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	started := s.opts.Now()
	op, params, found := s.router.Match(r.Method, r.URL.Path)
	opName := op.Name
	if !found {
		opName = "unknown"
	}
	status, keyID, message := http.StatusInternalServerError, "-", ""
	defer func() {
		s.count(opName, status, keyID)
		attrs := []any{"method", r.Method, "path", r.URL.Path, "operation", opName,
			"status", status, "key", keyID, "duration", s.opts.Now().Sub(started).String()}
		if message != "" {
			attrs = append(attrs, "message", message)
		}
		s.log.Info("request", attrs...)
	}()
	respond := func(code int, body any) {
		status = code
		writeJSON(w, code, body)
	}
	fail := func(err error) {
		var ae *apiError
		if !errors.As(err, &ae) {
			ae = errorf(http.StatusInternalServerError, "internal error: %v", err)
		}
		message = ae.message
		status = ae.status
		s.writeError(w, ae)
	}

	if !found {
		fail(errorf(http.StatusNotFound, "no operation at %s %s", r.Method, r.URL.Path))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		fail(errorf(http.StatusBadRequest, "read body: %v", err))
		return
	}
	if retryAfter, code := s.injectFaults(r.Context(), callerKey(r)); code != 0 {
		fail(&apiError{status: code, message: "injected fault: " + http.StatusText(code), retryAfter: retryAfter})
		return
	}
	if s.Faults().LegacyGone && strings.HasPrefix(r.URL.Path, "/v2/access-key") {
		fail(errorf(http.StatusNotFound, "no operation at %s %s", r.Method, r.URL.Path))
		return
	}

	if publicOperations[op.Name] && r.Header.Get("Authorization") == "" {
		respond(http.StatusOK, s.listZones("http://"+r.Host+"/v2"))
		return
	}
	principal, g, err := s.authenticate(r, body)
	if err != nil {
		fail(err)
		return
	}
	keyID = principal.Key
	for name, values := range r.URL.Query() {
		if len(values) == 1 {
			params[name] = values[0]
		}
	}
	if !g.allows(op, s.request(r, principal, params, body)) {
		fail(errorf(http.StatusForbidden, "key %s may not call %s", principal.Key, op.Name))
		return
	}
	c := &call{op: op, params: params, body: body, principal: principal, grant: g,
		requestURL: "http://" + r.Host + "/v2", ctx: r.Context()}
	result, err := s.dispatch(c)
	if err != nil {
		fail(err)
		return
	}
	if r.Method != http.MethodGet && s.loseResponse(op.Name) {
		fail(errorf(http.StatusGatewayTimeout, "injected fault: the call was applied and its response lost"))
		return
	}
	respond(http.StatusOK, result)
}

// injectFaults sleeps the configured latency and decides whether this call
// fails: it returns the status to answer (0: none) and a Retry-After. key is
// the calling key, for its request rate.
func (s *Server) injectFaults(ctx context.Context, key string) (retryAfter, status int) {
	s.mu.Lock()
	f := &s.faults
	delay := f.Latency()
	retryAfter = f.RetryAfterSeconds
	if retryAfter <= 0 {
		retryAfter = 1
	}
	switch {
	case f.ThrottleNext > 0:
		f.ThrottleNext--
		status = http.StatusTooManyRequests
	case f.FailNext > 0:
		f.FailNext--
		status = http.StatusServiceUnavailable
	case f.ThrottleRate > 0 && mrand.Float64() < f.ThrottleRate:
		status = http.StatusTooManyRequests
	case f.ErrorRate > 0 && mrand.Float64() < f.ErrorRate:
		status = http.StatusServiceUnavailable
	default:
		if wait := s.rates.admit(key, time.Now()); wait > 0 {
			status = http.StatusTooManyRequests
			retryAfter = int((wait + time.Second - 1) / time.Second)
		}
	}
	s.mu.Unlock()

	if delay > 0 {
		timer := time.NewTimer(delay)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
		}
	}
	if status != http.StatusTooManyRequests {
		retryAfter = 0
	}
	return retryAfter, status
}

// callerKey is the key a request says it is signed with, unverified: what
// a per-key rate limit counts before the signature is checked.
func callerKey(r *http.Request) string {
	auth, err := ParseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		return "-"
	}
	return auth.Credential
}

// loseResponse decides whether an applied mutating call loses its response.
func (s *Server) loseResponse(operation string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.faults.LoseResponseOperations) > 0 && !slices.Contains(s.faults.LoseResponseOperations, operation) {
		return false
	}
	if s.faults.LoseResponseNext > 0 {
		s.faults.LoseResponseNext--
		return true
	}
	return s.faults.LoseResponseRate > 0 && mrand.Float64() < s.faults.LoseResponseRate
}

func (s *Server) count(op string, status int, key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Total++
	s.stats.Operations[op]++
	s.stats.Statuses[strconv.Itoa(status)]++
	s.stats.Keys[key]++
	s.stats.ByOperationStatus[op+" "+strconv.Itoa(status)]++
}

// authenticate verifies the request's signature and returns the signing key
// and what it may do.
func (s *Server) authenticate(r *http.Request, body []byte) (*accessKey, grant, error) {
	auth, err := ParseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		return nil, nil, errorf(http.StatusForbidden, "%v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	key, ok := s.state.Keys[auth.Credential]
	if !ok || (key.ExpiresAt != nil && now.After(*key.ExpiresAt)) {
		return nil, nil, errorf(http.StatusForbidden, "unknown, revoked or expired key %s", auth.Credential)
	}
	if err := verifySignature(auth, r, body, key.Secret, now); err != nil {
		return nil, nil, errorf(http.StatusForbidden, "invalid request signature: %v", err)
	}
	g, err := s.grantOfLocked(key)
	if err != nil {
		return nil, nil, err
	}
	return key, g, nil
}

func (s *Server) grantOfLocked(key *accessKey) (grant, error) {
	if key.Kind == kindLegacy {
		g := legacyGrant{cat: s.cat, unrestricted: key.Unrestricted, operations: map[string]bool{}}
		for _, op := range key.Operations {
			g.operations[op] = true
		}
		for _, res := range key.Resources {
			if res.Domain == "sos" && res.ResourceType == "bucket" {
				g.buckets = append(g.buckets, res.ResourceName)
			}
		}
		return g, nil
	}
	role, err := s.compiledLocked(key.RoleID)
	if err != nil {
		return nil, err
	}
	return roleGrant{cat: s.cat, levels: policy.Levels{Organization: s.organization, Role: role}}, nil
}

// request is a call as a policy sees it: path and query parameters and the
// body's top-level fields, kebab-case names in snake_case, the caller's
// key, address and the time.
func (s *Server) request(r *http.Request, principal *accessKey, params map[string]string, body []byte) policy.Request {
	parameters := policy.Parameters(params)
	var fields map[string]any
	if len(body) > 0 && json.Unmarshal(body, &fields) == nil {
		for name, value := range fields {
			parameters[strings.ReplaceAll(name, "-", "_")] = value
		}
	}
	source, _, _ := net.SplitHostPort(r.RemoteAddr)
	return policy.Request{Parameters: parameters, APIKey: principal.Key, SourceIP: source,
		Now: s.opts.Now().UTC().Format(time.RFC3339), Zone: s.opts.Zone,
		Identity: map[string]any{"key": principal.Key}}
}

func (s *Server) compiledLocked(roleID string) (*policy.Compiled, error) {
	if p, ok := s.compiled[roleID]; ok {
		return p, nil
	}
	r, ok := s.state.Roles[roleID]
	if !ok {
		return nil, errorf(http.StatusForbidden, "the key's role %s no longer exists", roleID)
	}
	p, err := policy.Compile(r.Policy)
	if err != nil {
		return nil, errorf(http.StatusInternalServerError, "stored policy of role %s: %v", roleID, err)
	}
	s.compiled[roleID] = p
	return p, nil
}

// serveAuthorize answers whether the signing key may call an operation with
// parameters, S3-only operations included.
func (s *Server) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"message": "POST only"})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": err.Error()})
		return
	}
	var req struct {
		Operation  string            `json:"operation"`
		Parameters map[string]string `json:"parameters"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "body: " + err.Error()})
		return
	}
	op, ok := s.cat.Lookup(req.Operation)
	if !ok {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "unknown operation " + req.Operation})
		return
	}
	principal, g, err := s.authenticate(r, body)
	if err != nil {
		var ae *apiError
		errors.As(err, &ae)
		writeJSON(w, ae.status, map[string]string{"message": ae.message})
		return
	}
	allowed := g.allows(op, policy.Request{Parameters: policy.Parameters(req.Parameters), APIKey: principal.Key})
	s.log.Info("authorize", "key", principal.Key, "operation", op.Name, "allowed", allowed)
	writeJSON(w, http.StatusOK, map[string]bool{"allowed": allowed})
}

// serveAdmin serves the faults and stats, to loopback callers only.
func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		writeJSON(w, http.StatusForbidden, map[string]string{"message": "admin endpoints answer loopback callers only"})
		return
	}
	switch {
	case r.URL.Path == "/_emulator/stats" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, s.Stats())
	case r.URL.Path == "/_emulator/stats" && r.Method == http.MethodDelete:
		s.ResetStats()
		writeJSON(w, http.StatusOK, s.Stats())
	case r.URL.Path == "/_emulator/faults" && r.Method == http.MethodGet:
		s.mu.Lock()
		f := s.faults
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, f)
	case r.URL.Path == "/_emulator/faults" && (r.Method == http.MethodPut || r.Method == http.MethodPost):
		var f Faults
		dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"message": "faults: " + err.Error()})
			return
		}
		s.SetFaults(f)
		writeJSON(w, http.StatusOK, f)
	default:
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"message": r.Method + " not served at " + r.URL.Path})
	}
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(body); err != nil {
		status, buf = http.StatusInternalServerError, *bytes.NewBufferString(`{"message":"encode response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// newOperationLocked records an async operation that completes after the
// configured number of polls (Options.PendingPolls, Faults.PendingPolls).
func (s *Server) newOperationLocked(c *call, refID, refKind string) *operation {
	now := s.opts.Now()
	op := &operation{ID: uuid.NewString(), State: "success", PollsLeft: max(s.opts.PendingPolls, s.faults.Polls()),
		Reference: &reference{ID: refID, Link: c.requestURL + "/" + refKind + "/" + refID, Command: c.op.Name}, Created: now}
	if len(s.state.Operations)%256 == 0 { // amortised: a sweep every 256 operations
		for id, old := range s.state.Operations {
			if old.PollsLeft == 0 && now.Sub(old.Created) > operationRetention {
				delete(s.state.Operations, id)
			}
		}
	}
	s.state.Operations[op.ID] = op
	return op
}

// operationView is an operation as a client sees it now.
func (op *operation) view() map[string]any {
	out := map[string]any{"id": op.ID, "state": op.State}
	if op.PollsLeft > 0 {
		out["state"] = "pending"
	}
	if op.Reason != "" {
		out["reason"] = op.Reason
	}
	if op.Message != "" {
		out["message"] = op.Message
	}
	if op.Reference != nil {
		out["reference"] = op.Reference
	}
	return out
}

func newKeyID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "EXO" + hex.EncodeToString(b)
}

func newSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	// 43 characters, like Exoscale's secrets.
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *Server) load() error {
	raw, err := os.ReadFile(s.opts.StateFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read state: %w", err)
	}
	var st state
	if err := json.Unmarshal(raw, &st); err != nil {
		return fmt.Errorf("parse state %s: %w", s.opts.StateFile, err)
	}
	if st.Keys != nil {
		s.state.Keys = st.Keys
	}
	if st.Roles != nil {
		s.state.Roles = st.Roles
	}
	if st.Operations != nil {
		s.state.Operations = st.Operations
	}
	s.state.OrganizationPolicy = st.OrganizationPolicy
	return nil
}

// saveLocked writes the state file atomically, when one is configured.
func (s *Server) saveLocked() error {
	if s.opts.StateFile == "" {
		return nil
	}
	raw, err := json.Marshal(s.state)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.opts.StateFile), ".emulator-state-*")
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(raw); err != nil {
		tmp.Close()
		return fmt.Errorf("save state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	return os.Rename(tmp.Name(), s.opts.StateFile)
}

// writeError answers an API error as Exoscale's services do: {"message"}
// by default; RFC 9457 problem details with Faults.ProblemJSON, as newer
// services answer; and a 429 with its wait in the header, or with
// Faults.ThrottleBody in the body alone ({"error","retry_after"}, the one
// documented 429 body).
func (s *Server) writeError(w http.ResponseWriter, ae *apiError) {
	faults := s.Faults()
	if ae.status == http.StatusTooManyRequests && ae.retryAfter > 0 {
		if faults.ThrottleBody {
			writeJSON(w, ae.status, map[string]any{"error": ae.message, "retry_after": ae.retryAfter})
			return
		}
		w.Header().Set("Retry-After", strconv.Itoa(ae.retryAfter))
	}
	if faults.ProblemJSON {
		raw, _ := json.Marshal(map[string]any{"type": "about:blank", "title": http.StatusText(ae.status), "status": ae.status, "detail": ae.message})
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(ae.status)
		_, _ = w.Write(raw)
		return
	}
	writeJSON(w, ae.status, map[string]string{"message": ae.message})
}
