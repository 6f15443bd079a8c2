package emulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/exokey/exokey/internal/exoscale/catalog"
	"github.com/exokey/exokey/internal/exoscale/policy"
)

// zones are the Exoscale zones the emulator lists; any of them serves IAM.
var zones = []string{"at-vie-1", "at-vie-2", "bg-sof-1", "ch-dk-2", "ch-gva-2", "de-fra-1", "de-muc-1", "hr-zag-1"}

// dispatch runs an authorised call. Operations without an emulated
// behaviour answer 200 {}.
func (s *Server) dispatch(c *call) (any, error) {
	switch c.op.Name {
	case "list-zones":
		return s.listZones(c.requestURL), nil
	case "get-operation":
		return s.getOperation(c)
	case "create-access-key":
		return s.createAccessKey(c)
	case "list-access-keys":
		return s.sized(c, s.listAccessKeys()), nil
	case "get-access-key":
		return s.getAccessKey(c)
	case "revoke-access-key":
		return s.revokeAccessKey(c)
	case "list-access-key-known-operations":
		return s.knownOperations(), nil
	case "list-access-key-operations":
		return s.myOperations(c), nil
	case "create-iam-role":
		return s.createRole(c)
	case "list-iam-roles":
		return s.sized(c, s.listRoles()), nil
	case "get-iam-role":
		return s.getRole(c)
	case "update-iam-role":
		return s.updateRole(c)
	case "update-iam-role-policy":
		return s.updateRolePolicy(c)
	case "delete-iam-role":
		return s.deleteRole(c)
	case "assume-iam-role":
		return s.assumeRole(c)
	case "create-api-key":
		return s.createAPIKey(c)
	case "list-api-keys":
		return s.sized(c, s.listAPIKeys()), nil
	case "get-api-key":
		return s.getAPIKey(c)
	case "delete-api-key":
		return s.deleteAPIKey(c)
	case "get-iam-organization-policy":
		return s.organizationPolicy(), nil
	case "update-iam-organization-policy":
		return s.updateOrganizationPolicy(c)
	case "reset-iam-organization-policy":
		return s.setOrganizationPolicy(c, policy.Policy{})
	}
	return struct{}{}, nil
}

// listAnswer is a list call's answer and how many items it holds.
type listAnswer struct {
	body  map[string]any
	items int
}

// sized delays a list answer by Faults.ListLatencyPer1000MS for each 1,000
// of its items, and returns its body.
func (s *Server) sized(c *call, answer listAnswer) any {
	s.mu.Lock()
	per1000 := s.faults.ListLatencyPer1000MS
	s.mu.Unlock()
	if delay := time.Duration(per1000) * time.Millisecond * time.Duration(answer.items) / 1000; delay > 0 && c.ctx != nil {
		timer := time.NewTimer(delay)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-c.ctx.Done():
		}
	}
	return answer.body
}

func decode(c *call, into any) error {
	if len(c.body) == 0 {
		return errorf(http.StatusBadRequest, "%s needs a JSON body", c.op.Name)
	}
	if err := json.Unmarshal(c.body, into); err != nil {
		return errorf(http.StatusBadRequest, "%s: invalid body: %v", c.op.Name, err)
	}
	return nil
}

func (s *Server) listZones(apiEndpoint string) any {
	list := make([]map[string]string, 0, len(zones))
	for _, z := range zones {
		list = append(list, map[string]string{
			"name": z, "api-endpoint": apiEndpoint, "sos-endpoint": "https://sos-" + z + ".exo.io",
		})
	}
	return map[string]any{"zones": list}
}

func (s *Server) getOperation(c *call) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	op, ok := s.state.Operations[c.params["id"]]
	if !ok {
		return nil, errorf(http.StatusNotFound, "operation %s not found", c.params["id"])
	}
	view := op.view()
	if op.PollsLeft > 0 {
		op.PollsLeft--
	}
	return view, nil
}

// checkInheritance refuses a grant that reaches beyond the signing key's.
func (s *Server) checkInheritance(c *call, child grant) error {
	missing := beyond(c.grant, child, s.cat)
	if len(missing) == 0 {
		return nil
	}
	shown := missing
	if len(shown) > 8 {
		shown = shown[:8]
	}
	more := ""
	if len(missing) > len(shown) {
		more = fmt.Sprintf(" and %d more", len(missing)-len(shown))
	}
	return errorf(http.StatusForbidden, "key %s cannot grant what it does not hold: %s%s",
		c.principal.Key, strings.Join(shown, ", "), more)
}

// Legacy access keys.

type wireAccessKey struct {
	Key        string     `json:"key"`
	Name       string     `json:"name"`
	Secret     string     `json:"secret,omitempty"`
	Type       string     `json:"type"`
	Version    string     `json:"version"`
	Tags       []string   `json:"tags,omitempty"`
	Operations []string   `json:"operations,omitempty"`
	Resources  []resource `json:"resources,omitempty"`
}

func (k *accessKey) wire(withSecret bool) wireAccessKey {
	w := wireAccessKey{Key: k.Key, Name: k.Name, Type: "restricted", Version: "v2",
		Tags: k.Tags, Operations: k.Operations, Resources: k.Resources}
	if k.Unrestricted {
		w.Type = "unrestricted"
	}
	if withSecret {
		w.Secret = k.Secret
	}
	return w
}

func (s *Server) createAccessKey(c *call) (any, error) {
	var req struct {
		Name       string     `json:"name"`
		Operations []string   `json:"operations"`
		Tags       []string   `json:"tags"`
		Resources  []resource `json:"resources"`
	}
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	if req.Name == "" || len(req.Name) > 255 {
		return nil, errorf(http.StatusBadRequest, "name: between 1 and 255 characters")
	}
	operations := map[string]bool{}
	for _, name := range req.Operations {
		if op, ok := s.cat.Lookup(name); !ok || op.Vocabulary == catalog.V3 {
			return nil, errorf(http.StatusBadRequest, "operations: unknown operation %q", name)
		}
		operations[name] = true
	}
	for _, tag := range req.Tags {
		if !s.cat.HasTag(tag) {
			return nil, errorf(http.StatusBadRequest, "tags: unknown tag %q", tag)
		}
		for _, name := range s.cat.TagOperations(tag) {
			operations[name] = true
		}
	}
	for i, res := range req.Resources {
		valid := (res.Domain == "sos" && res.ResourceType == "bucket") || (res.Domain == "partner" && res.ResourceType == "product")
		if !valid || res.ResourceName == "" {
			return nil, errorf(http.StatusBadRequest, "resources[%d]: want domain/type sos/bucket or partner/product and a name", i)
		}
	}
	key := &accessKey{Kind: kindLegacy, Key: newKeyID(), Secret: newSecret(), Name: req.Name,
		Tags: req.Tags, Resources: req.Resources, CreatedAt: s.opts.Now()}
	if len(operations) == 0 {
		if len(req.Resources) > 0 {
			return nil, errorf(http.StatusBadRequest, "resources restrict operations: name operations or tags too")
		}
		key.Unrestricted = true
	}
	for name := range operations {
		key.Operations = append(key.Operations, name)
	}
	sort.Strings(key.Operations)

	s.mu.Lock()
	defer s.mu.Unlock()
	child, _ := s.grantOfLocked(key)
	if err := s.checkInheritance(c, child); err != nil {
		return nil, err
	}
	s.state.Keys[key.Key] = key
	if err := s.saveLocked(); err != nil {
		return nil, err
	}
	return key.wire(true), nil
}

func (s *Server) keysOfKind(kind keyKind) []*accessKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []*accessKey
	for _, k := range s.state.Keys {
		if k.Kind == kind {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].Key < keys[j].Key })
	return keys
}

func (s *Server) listAccessKeys() listAnswer {
	list := []wireAccessKey{}
	for _, k := range s.keysOfKind(kindLegacy) {
		list = append(list, k.wire(false))
	}
	return listAnswer{body: map[string]any{"access-keys": list}, items: len(list)}
}

func (s *Server) lookupKey(id string, kind keyKind) (*accessKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.state.Keys[id]
	if !ok || k.Kind != kind {
		return nil, errorf(http.StatusNotFound, "key %s not found", id)
	}
	return k, nil
}

func (s *Server) getAccessKey(c *call) (any, error) {
	k, err := s.lookupKey(c.params["key"], kindLegacy)
	if err != nil {
		return nil, err
	}
	return k.wire(false), nil
}

func (s *Server) revokeAccessKey(c *call) (any, error) {
	return s.deleteKey(c, c.params["key"], kindLegacy, "access-key")
}

func (s *Server) deleteKey(c *call, id string, kind keyKind, refKind string) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.state.Keys[id]
	if !ok || k.Kind != kind {
		return nil, errorf(http.StatusNotFound, "key %s not found", id)
	}
	delete(s.state.Keys, id)
	op := s.newOperationLocked(c, id, refKind)
	if err := s.saveLocked(); err != nil {
		return nil, err
	}
	return op.view(), nil
}

type wireOperation struct {
	Operation string   `json:"operation"`
	Tags      []string `json:"tags"`
}

func (s *Server) knownOperations() any {
	list := []wireOperation{}
	for _, op := range s.cat.OperationsOf(false) {
		list = append(list, wireOperation{Operation: op.Name, Tags: []string{op.Tag}})
	}
	return map[string]any{"access-key-operations": list}
}

func (s *Server) myOperations(c *call) any {
	list := []wireOperation{}
	for _, op := range holds(c.grant, s.cat) {
		list = append(list, wireOperation{Operation: op.Name, Tags: []string{op.Tag}})
	}
	return map[string]any{"access-key-operations": list}
}

// IAM v3 roles.

func (s *Server) createRole(c *call) (any, error) {
	var req struct {
		Name          string                   `json:"name"`
		Description   string                   `json:"description"`
		Labels        map[string]string        `json:"labels"`
		Editable      *bool                    `json:"editable"`
		Policy        *policy.Policy           `json:"policy"`
		Permissions   []string                 `json:"permissions"`
		MaxSessionTTL int64                    `json:"max-session-ttl"`
		AssumeRole    *policy.AssumeRolePolicy `json:"assume-role-policy"`
	}
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	if err := checkSessionSettings(req.MaxSessionTTL, req.AssumeRole); err != nil {
		return nil, err
	}
	if req.Name == "" || len(req.Name) > 191 {
		return nil, errorf(http.StatusBadRequest, "name: between 1 and 191 characters")
	}
	var rolePolicy policy.Policy // none: the empty policy, which allows everything
	if req.Policy != nil {
		rolePolicy = *req.Policy
	}
	compiled, err := policy.Compile(rolePolicy)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "policy: %v", err)
	}
	r := &role{ID: uuid.NewString(), Name: req.Name, Description: req.Description, Labels: req.Labels,
		Editable: req.Editable == nil || *req.Editable, Policy: rolePolicy, Permissions: req.Permissions,
		MaxSessionTTL: req.MaxSessionTTL, AssumeRolePolicy: req.AssumeRole, Created: s.opts.Now()}

	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkInheritance(c, s.roleGrant(compiled)); err != nil {
		return nil, err
	}
	s.state.Roles[r.ID] = r
	s.compiled[r.ID] = compiled
	op := s.newOperationLocked(c, r.ID, "iam-role")
	s.log.Info("role created", "role", r.ID, "name", r.Name, "policy", rolePolicy.Describe())
	if err := s.saveLocked(); err != nil {
		return nil, err
	}
	return op.view(), nil
}

func (s *Server) listRoles() listAnswer {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := []role{}
	for _, r := range s.state.Roles {
		list = append(list, *r) // a copy: it is encoded after the lock is released
	}
	sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	return listAnswer{body: map[string]any{"iam-roles": list}, items: len(list)}
}

func (s *Server) roleLocked(id string) (*role, error) {
	r, ok := s.state.Roles[id]
	if !ok {
		return nil, errorf(http.StatusNotFound, "role %s not found", id)
	}
	return r, nil
}

func (s *Server) getRole(c *call) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.roleLocked(c.params["id"])
	if err != nil {
		return nil, err
	}
	// A copy: the answer is encoded after the lock is released, and an
	// update replaces the role's labels and policy meanwhile.
	snapshot := *r
	return &snapshot, nil
}

func (s *Server) updateRole(c *call) (any, error) {
	var req struct {
		Description   *string                  `json:"description"`
		Labels        map[string]string        `json:"labels"`
		Permissions   []string                 `json:"permissions"`
		MaxSessionTTL int64                    `json:"max-session-ttl"`
		AssumeRole    *policy.AssumeRolePolicy `json:"assume-role-policy"`
	}
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	if err := checkSessionSettings(req.MaxSessionTTL, req.AssumeRole); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.roleLocked(c.params["id"])
	if err != nil {
		return nil, err
	}
	if req.Description != nil {
		r.Description = *req.Description
	}
	if req.Labels != nil {
		r.Labels = req.Labels
	}
	if req.Permissions != nil {
		r.Permissions = req.Permissions
	}
	if req.MaxSessionTTL > 0 {
		r.MaxSessionTTL = req.MaxSessionTTL
	}
	if req.AssumeRole != nil {
		r.AssumeRolePolicy = req.AssumeRole
	}
	op := s.newOperationLocked(c, r.ID, "iam-role")
	if err := s.saveLocked(); err != nil {
		return nil, err
	}
	return op.view(), nil
}

func (s *Server) updateRolePolicy(c *call) (any, error) {
	var newPolicy policy.Policy
	if err := decode(c, &newPolicy); err != nil {
		return nil, err
	}
	compiled, err := policy.Compile(newPolicy)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "policy: %v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.roleLocked(c.params["id"])
	if err != nil {
		return nil, err
	}
	if !r.Editable {
		return nil, errorf(http.StatusForbidden, "role %s is not editable", r.ID)
	}
	if err := s.checkInheritance(c, s.roleGrant(compiled)); err != nil {
		return nil, err
	}
	r.Policy = newPolicy
	s.compiled[r.ID] = compiled
	op := s.newOperationLocked(c, r.ID, "iam-role")
	if err := s.saveLocked(); err != nil {
		return nil, err
	}
	return op.view(), nil
}

// deleteRole refuses while API keys are bound to the role (the emulator's
// choice: deleting them first is what a careful client does anyway).
func (s *Server) deleteRole(c *call) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := c.params["id"]
	if _, err := s.roleLocked(id); err != nil {
		return nil, err
	}
	var bound []string
	for _, k := range s.state.Keys {
		if k.RoleID == id && k.Kind == kindAPIKey {
			bound = append(bound, k.Key)
		}
	}
	if len(bound) > 0 {
		slices.Sort(bound)
		return nil, errorf(http.StatusConflict, "role %s still has API keys: %s", id, strings.Join(bound, ", "))
	}
	for keyID, k := range s.state.Keys {
		if k.RoleID == id {
			delete(s.state.Keys, keyID) // assumed session keys end with their role
		}
	}
	delete(s.state.Roles, id)
	delete(s.compiled, id)
	op := s.newOperationLocked(c, id, "iam-role")
	if err := s.saveLocked(); err != nil {
		return nil, err
	}
	return op.view(), nil
}

// checkSessionSettings validates a role's max-session-ttl and
// assume-role-policy.
func checkSessionSettings(maxSessionTTL int64, assumeRole *policy.AssumeRolePolicy) error {
	if maxSessionTTL < 0 {
		return errorf(http.StatusBadRequest, "max-session-ttl: a positive number of seconds")
	}
	if assumeRole != nil {
		if _, err := policy.CompileAssumeRolePolicy(*assumeRole); err != nil {
			return errorf(http.StatusBadRequest, "%v", err)
		}
	}
	return nil
}

func (s *Server) assumeRole(c *call) (any, error) {
	var req struct {
		TTL int64 `json:"ttl"`
	}
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	if req.TTL <= 0 {
		return nil, errorf(http.StatusBadRequest, "ttl: a positive number of seconds")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.roleLocked(c.params["id"])
	if err != nil {
		return nil, err
	}
	if r.MaxSessionTTL > 0 && req.TTL > r.MaxSessionTTL {
		return nil, errorf(http.StatusBadRequest, "ttl: at most the role's max-session-ttl, %d", r.MaxSessionTTL)
	}
	if r.AssumeRolePolicy != nil {
		compiled, err := policy.CompileAssumeRolePolicy(*r.AssumeRolePolicy)
		if err != nil {
			// Set before its bindings were what they are now (caller.key):
			// it names no key that can be proven, so none may assume.
			return nil, errorf(http.StatusForbidden, "the assume-role-policy of role %s does not evaluate: %v", r.ID, err)
		}
		if !compiled.Allows(c.principal.Key) {
			return nil, errorf(http.StatusForbidden, "the assume-role-policy of role %s does not let key %s assume it", r.ID, c.principal.Key)
		}
	}
	rolePolicy, err := s.compiledLocked(r.ID)
	if err != nil {
		return nil, err
	}
	if err := s.checkInheritance(c, s.roleGrant(rolePolicy)); err != nil {
		return nil, err
	}
	expires := s.opts.Now().Add(time.Duration(req.TTL) * time.Second).UTC()
	key := &accessKey{Kind: kindAssumed, Key: newKeyID(), Secret: newSecret(), Name: "assumed-" + r.Name,
		RoleID: r.ID, ExpiresAt: &expires, CreatedAt: s.opts.Now()}
	s.state.Keys[key.Key] = key
	if err := s.saveLocked(); err != nil {
		return nil, err
	}
	return map[string]string{"key": key.Key, "secret": key.Secret, "expires-at": expires.Format(time.RFC3339),
		"role-id": r.ID, "name": key.Name, "org-id": "00000000-0000-0000-0000-000000000000"}, nil
}

// IAM v3 API keys.

func (s *Server) createAPIKey(c *call) (any, error) {
	var req struct {
		Name   string `json:"name"`
		RoleID string `json:"role-id"`
	}
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	if req.Name == "" || len(req.Name) > 255 {
		return nil, errorf(http.StatusBadRequest, "name: between 1 and 255 characters")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.state.Roles[req.RoleID]
	if !ok {
		return nil, errorf(http.StatusBadRequest, "role-id: no role %q", req.RoleID)
	}
	if lag := time.Duration(s.faults.RoleLagMS) * time.Millisecond; s.opts.Now().Sub(r.Created) < lag {
		return nil, errorf(http.StatusNotFound, "IAM role %s not found", req.RoleID) // not visible yet
	}
	rolePolicy, err := s.compiledLocked(req.RoleID)
	if err != nil {
		return nil, err
	}
	if err := s.checkInheritance(c, s.roleGrant(rolePolicy)); err != nil {
		return nil, err
	}
	key := &accessKey{Kind: kindAPIKey, Key: newKeyID(), Secret: newSecret(), Name: req.Name,
		RoleID: req.RoleID, CreatedAt: s.opts.Now()}
	s.state.Keys[key.Key] = key
	if err := s.saveLocked(); err != nil {
		return nil, err
	}
	return map[string]string{"key": key.Key, "name": key.Name, "role-id": key.RoleID, "secret": key.Secret}, nil
}

func apiKeyView(k *accessKey) map[string]string {
	return map[string]string{"key": k.Key, "name": k.Name, "role-id": k.RoleID}
}

func (s *Server) listAPIKeys() listAnswer {
	list := []map[string]string{}
	for _, k := range s.keysOfKind(kindAPIKey) {
		list = append(list, apiKeyView(k))
	}
	return listAnswer{body: map[string]any{"api-keys": list}, items: len(list)}
}

func (s *Server) getAPIKey(c *call) (any, error) {
	k, err := s.lookupKey(c.params["id"], kindAPIKey)
	if err != nil {
		return nil, err
	}
	return apiKeyView(k), nil
}

func (s *Server) deleteAPIKey(c *call) (any, error) {
	return s.deleteKey(c, c.params["id"], kindAPIKey, "api-key")
}

// roleGrant is a role's grant under the organisation policy.
func (s *Server) roleGrant(role *policy.Compiled) roleGrant {
	return roleGrant{cat: s.cat, levels: policy.Levels{Organization: s.organization, Role: role}}
}

// The organisation policy.

func (s *Server) organizationPolicy() any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state.OrganizationPolicy
}

func (s *Server) updateOrganizationPolicy(c *call) (any, error) {
	var p policy.Policy
	if err := decode(c, &p); err != nil {
		return nil, err
	}
	return s.setOrganizationPolicy(c, p)
}

func (s *Server) setOrganizationPolicy(c *call, p policy.Policy) (any, error) {
	compiled, err := policy.Compile(p)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "policy: %v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state.OrganizationPolicy, s.organization = p, compiled
	s.log.Info("organisation policy set", "policy", p.Describe())
	op := s.newOperationLocked(c, "", "iam-organization-policy")
	if err := s.saveLocked(); err != nil {
		return nil, err
	}
	return op.view(), nil
}

// SetOrganizationPolicy sets the organisation policy, as
// update-iam-organization-policy does.
func (s *Server) SetOrganizationPolicy(p policy.Policy) error {
	_, err := s.setOrganizationPolicy(&call{op: catalog.Operation{Name: "update-iam-organization-policy"}}, p)
	return err
}
