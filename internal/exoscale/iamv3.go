package exoscale

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	egoscale "github.com/exoscale/egoscale/v2"
	v3 "github.com/exoscale/egoscale/v3"
	"github.com/exoscale/egoscale/v3/credentials"

	"github.com/exokey/exokey/internal/exoscale/policy"
)

// iamv3Keys mints an IAM v3 role per key, its policy compiled from the
// KeySpec, and an API key bound to it, with egoscale v3.
type iamv3Keys struct {
	client *v3.Client
	// legacy answers Grantable for an issuer key that is not an IAM v3 API
	// key (an organisation's unrestricted legacy key).
	legacy *egoscale.Client
	cfg    Config
}

var _ Keys = (*iamv3Keys)(nil)

// cleanupTimeout bounds the deletion of a role whose key could not be made.
const cleanupTimeout = time.Minute

func newIAMv3Keys(cfg Config) (*iamv3Keys, error) {
	client, err := v3.NewClient(credentials.NewStaticCredentials(cfg.Key, cfg.Secret.Reveal()),
		v3.ClientOptWithEndpoint(v3.Endpoint(cfg.Endpoint)),
		v3.ClientOptWithHTTPClient(newHTTPClient(cfg)))
	if err != nil {
		return nil, err
	}
	legacy, err := newV2Client(cfg)
	if err != nil {
		return nil, err
	}
	return &iamv3Keys{client: client, legacy: legacy, cfg: cfg}, nil
}

// wait waits for an async operation to succeed and returns its reference
// id. It polls on its own short backoff (egoscale's Wait polls no sooner
// than every 3 s), within the caller's deadline.
func (k *iamv3Keys) wait(ctx context.Context, name string, op *v3.Operation, err error) (v3.UUID, error) {
	ctx, rec := recordCall(ctx)
	delay := k.cfg.PollInterval / 40
	for err == nil && op.State == v3.OperationStatePending {
		select {
		case <-ctx.Done():
			return "", apiError(name, rec, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, k.cfg.PollInterval)
		op, err = k.client.GetOperation(ctx, op.ID)
	}
	if err != nil {
		return "", apiError(name, rec, err)
	}
	if op.State != v3.OperationStateSuccess {
		return "", apiError(name, rec, fmt.Errorf("operation %s ended %s", op.ID, op.State))
	}
	if op.Reference == nil {
		return "", nil
	}
	return op.Reference.ID, nil
}

func (k *iamv3Keys) Create(ctx context.Context, spec KeySpec) (Credential, error) {
	roleID, err := k.createRole(ctx, spec, v3.CreateIAMRoleRequest{Description: "minted by exokey"})
	if err != nil {
		return Credential{}, err
	}

	created, err := k.createAPIKey(ctx, spec.Name, roleID)
	if err != nil {
		// The role alone grants nothing, but it must not linger.
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if cleanupErr := k.deleteRole(cleanup, roleID); cleanupErr != nil {
			return Credential{}, &leftBehindError{err: err, roleID: string(roleID), cleanup: cleanupErr}
		}
		return Credential{}, err
	}
	return Credential{
		Key:    Key{ID: created.Key, Name: created.Name, RoleID: string(created.RoleID)},
		Secret: Secret(created.Secret),
	}, nil
}

func (k *iamv3Keys) CreateSessionRole(ctx context.Context, spec KeySpec, maxTTL time.Duration) (Key, error) {
	var assume v3.IAMAssumeRolePolicy
	if err := convert(policy.AllowKey(k.cfg.Key), &assume); err != nil {
		return Key{}, err
	}
	roleID, err := k.createRole(ctx, spec, v3.CreateIAMRoleRequest{Description: "minted by exokey for session credentials",
		MaxSessionTtl: int64(maxTTL / time.Second), AssumeRolePolicy: &assume})
	if err != nil {
		return Key{}, err
	}
	return Key{Name: spec.Name, RoleID: string(roleID), Labels: spec.Labels}, nil
}

// roleVisibleWithin bounds how long create-api-key is retried on a 404
// for a role just created: Exoscale's clients see the role a few seconds
// after create-iam-role's operation succeeds (docs/reference/exoscale-facts.md).
const roleVisibleWithin = 10 * time.Second

// createAPIKey creates a key bound to a role just created, retrying a 404
// for at most roleVisibleWithin, within the caller's deadline.
func (k *iamv3Keys) createAPIKey(ctx context.Context, name string, roleID v3.UUID) (*v3.IAMAPIKeyCreated, error) {
	deadline := time.Now().Add(roleVisibleWithin)
	delay := 200 * time.Millisecond
	for {
		callCtx, rec := recordCall(ctx)
		created, err := k.client.CreateAPIKey(callCtx, v3.CreateAPIKeyRequest{Name: name, RoleID: roleID})
		if err == nil {
			return created, nil
		}
		err = apiError("create-api-key", rec, err)
		if !errors.Is(err, ErrNotFound) || time.Now().Add(delay).After(deadline) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(delay):
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// createRole creates spec's role, its policy compiled from spec, with the
// rest of req, and waits for it.
func (k *iamv3Keys) createRole(ctx context.Context, spec KeySpec, req v3.CreateIAMRoleRequest) (v3.UUID, error) {
	compiled, err := CompilePolicy(spec, k.cfg.Catalog)
	if err != nil {
		return "", err
	}
	if req.Policy, err = toV3Policy(compiled); err != nil {
		return "", err
	}
	req.Name, req.Labels = spec.Name, spec.Labels
	callCtx, rec := recordCall(ctx)
	op, err := k.client.CreateIAMRole(callCtx, req)
	if err != nil {
		return "", apiError("create-iam-role", rec, err)
	}
	roleID, err := k.wait(ctx, "create-iam-role", op, nil)
	if err != nil {
		return "", err
	}
	if roleID == "" {
		return "", errors.New("create-iam-role: the operation names no role")
	}
	return roleID, nil
}

func (k *iamv3Keys) GetRole(ctx context.Context, roleID string) (Key, error) {
	callCtx, rec := recordCall(ctx)
	role, err := k.client.GetIAMRole(callCtx, v3.UUID(roleID))
	if err != nil {
		return Key{}, apiError("get-iam-role", rec, err)
	}
	return Key{Name: role.Name, RoleID: string(role.ID), Labels: labelsOf(*role)}, nil
}

func (k *iamv3Keys) Assume(ctx context.Context, roleID string, ttl time.Duration) (Session, error) {
	session, err := k.assume(ctx, roleID, ttl)
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusForbidden {
		// The role may name a key the issuer no longer uses (its
		// credentials were replaced): point the role at the current key,
		// which may administer it, and try once more.
		if k.repoint(ctx, roleID) == nil {
			return k.assume(ctx, roleID, ttl)
		}
	}
	return session, err
}

func (k *iamv3Keys) assume(ctx context.Context, roleID string, ttl time.Duration) (Session, error) {
	callCtx, rec := recordCall(ctx)
	assumed, err := k.client.AssumeIAMRole(callCtx, v3.UUID(roleID), v3.AssumeIAMRoleRequest{Ttl: int64(ttl / time.Second)})
	if err != nil {
		return Session{}, apiError("assume-iam-role", rec, err)
	}
	expiresAt, err := time.Parse(time.RFC3339, assumed.ExpiresAT)
	if err != nil {
		return Session{}, fmt.Errorf("assume-iam-role: expires-at %q: %w", assumed.ExpiresAT, err)
	}
	if assumed.Key == "" || assumed.Secret == "" {
		return Session{}, errors.New("assume-iam-role: the answer holds no key or secret")
	}
	return Session{
		Credential: Credential{Key: Key{ID: assumed.Key, Name: assumed.Name, RoleID: roleID}, Secret: Secret(assumed.Secret)},
		ExpiresAt:  expiresAt,
	}, nil
}

// repoint sets the role's assume-role-policy to the issuer's current key.
func (k *iamv3Keys) repoint(ctx context.Context, roleID string) error {
	var assume v3.IAMAssumeRolePolicy
	if err := convert(policy.AllowKey(k.cfg.Key), &assume); err != nil {
		return err
	}
	callCtx, rec := recordCall(ctx)
	op, err := k.client.UpdateIAMRole(callCtx, v3.UUID(roleID), v3.UpdateIAMRoleRequest{AssumeRolePolicy: &assume})
	if err != nil {
		return apiError("update-iam-role", rec, err)
	}
	_, err = k.wait(ctx, "update-iam-role", op, nil)
	return err
}

// convert copies between two types of the same wire form.
func convert(from, to any) error {
	raw, err := json.Marshal(from)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, to)
}

func toV3Policy(p policy.Policy) (*v3.IAMPolicy, error) {
	out := &v3.IAMPolicy{}
	if err := convert(p, out); err != nil {
		return nil, err
	}
	if out.Services == nil {
		out.Services = map[string]v3.IAMServicePolicy{} // the API document requires the field
	}
	return out, nil
}

func (k *iamv3Keys) Get(ctx context.Context, keyID string) (Key, error) {
	ctx, rec := recordCall(ctx)
	key, err := k.client.GetAPIKey(ctx, keyID)
	if err != nil {
		return Key{}, apiError("get-api-key", rec, err)
	}
	return Key{ID: key.Key, Name: key.Name, RoleID: string(key.RoleID)}, nil
}

func (k *iamv3Keys) Describe(ctx context.Context, keyID string) (KeySpec, error) {
	key, err := k.Get(ctx, keyID)
	if errors.Is(err, ErrNotFound) {
		// A legacy access key of the same organisation, on its way to IAM v3.
		return (&legacyKeys{client: k.legacy, cfg: k.cfg}).Describe(ctx, keyID)
	}
	if err != nil {
		return KeySpec{}, err
	}
	callCtx, rec := recordCall(ctx)
	role, err := k.client.GetIAMRole(callCtx, v3.UUID(key.RoleID))
	if err != nil {
		return KeySpec{}, apiError("get-iam-role", rec, err)
	}
	spec, err := DecompilePolicy(policyOf(role), k.cfg.Catalog)
	if err != nil {
		return KeySpec{}, fmt.Errorf("role %s (%s): %w", role.Name, role.ID, err)
	}
	spec.Name = key.Name
	return spec, nil
}

// policyOf reads a role's policy in exokey's form; a role without one has
// the empty policy, which allows everything (as Exoscale's Owner role). It converts field by field: a listing reads every
// role's policy, and a round trip through JSON cost a listing of 10,000
// roles twice its size again in garbage.
func policyOf(role *v3.IAMRole) policy.Policy {
	var own policy.Policy
	if role.Policy == nil {
		return own
	}
	own.DefaultServiceStrategy = string(role.Policy.DefaultServiceStrategy)
	if role.Policy.Services != nil {
		own.Services = make(map[string]policy.ServicePolicy, len(role.Policy.Services))
	}
	for name, service := range role.Policy.Services {
		sp := policy.ServicePolicy{Type: string(service.Type)}
		for _, rule := range service.Rules {
			r := policy.PolicyRule{Action: string(rule.Action), Expression: rule.Expression}
			if len(rule.Resources) > 0 {
				r.Resources = rule.Resources
			}
			sp.Rules = append(sp.Rules, r)
		}
		own.Services[name] = sp
	}
	return own
}

func (k *iamv3Keys) FindByName(ctx context.Context, name string) ([]Key, error) {
	return k.find(ctx, func(role v3.IAMRole) bool { return role.Name == name })
}

func (k *iamv3Keys) FindByLabels(ctx context.Context, labels map[string]string) ([]Key, error) {
	return k.find(ctx, func(role v3.IAMRole) bool {
		for name, value := range labels {
			if role.Labels[name] != value {
				return false
			}
		}
		return true
	})
}

// find returns the API keys whose role matches, and the matching roles
// left without a key (an interrupted create), each with its role's labels.
func (k *iamv3Keys) find(ctx context.Context, match func(v3.IAMRole) bool) ([]Key, error) {
	callCtx, rec := recordCall(ctx)
	roles, err := k.client.ListIAMRoles(callCtx)
	if err != nil {
		return nil, apiError("list-iam-roles", rec, err)
	}
	matched := map[v3.UUID]v3.IAMRole{}
	for _, role := range roles.IAMRoles {
		if match(role) {
			matched[role.ID] = role
		}
	}
	if len(matched) == 0 {
		return nil, nil
	}
	callCtx, rec = recordCall(ctx)
	keys, err := k.client.ListAPIKeys(callCtx)
	if err != nil {
		return nil, apiError("list-api-keys", rec, err)
	}
	var found []Key
	withKey := map[v3.UUID]bool{}
	for _, key := range keys.APIKeys {
		if role, ok := matched[key.RoleID]; ok {
			found = append(found, Key{ID: key.Key, Name: key.Name, RoleID: string(key.RoleID), Labels: labelsOf(role)})
			withKey[key.RoleID] = true
		}
	}
	for id, role := range matched {
		if !withKey[id] {
			found = append(found, Key{Name: role.Name, RoleID: string(id), Labels: labelsOf(role)}) // a role whose key was never made
		}
	}
	return found, nil
}

func (k *iamv3Keys) List(ctx context.Context) (Listing, error) {
	callCtx, rec := recordCall(ctx)
	roles, err := k.client.ListIAMRoles(callCtx)
	if err != nil {
		return Listing{}, apiError("list-iam-roles", rec, err)
	}
	callCtx, rec = recordCall(ctx)
	keys, err := k.client.ListAPIKeys(callCtx)
	if err != nil {
		return Listing{}, apiError("list-api-keys", rec, err)
	}
	listing := Listing{Keys: make(map[string]string, len(keys.APIKeys)), Roles: make(map[string]Role, len(roles.IAMRoles))}
	for _, key := range keys.APIKeys {
		listing.Keys[key.Key] = string(key.RoleID)
	}
	for i := range roles.IAMRoles {
		role := &roles.IAMRoles[i]
		labels := map[string]string(role.Labels) // decoded for this listing alone: kept, not copied
		if labels == nil {
			labels = map[string]string{}
		}
		listing.Roles[string(role.ID)] = Role{Name: role.Name, Labels: labels, Policy: policyOf(role)}
		*role = v3.IAMRole{} // what was read is in the listing: the rest of the answer can go at the next collection
	}
	return listing, nil
}

func (k *iamv3Keys) PutPolicy(ctx context.Context, roleID string, spec KeySpec) error {
	compiled, err := CompilePolicy(spec, k.cfg.Catalog)
	if err != nil {
		return err
	}
	wire, err := toV3Policy(compiled)
	if err != nil {
		return err
	}
	callCtx, rec := recordCall(ctx)
	op, err := k.client.UpdateIAMRolePolicy(callCtx, v3.UUID(roleID), *wire)
	if err != nil {
		return apiError("update-iam-role-policy", rec, err)
	}
	_, err = k.wait(ctx, "update-iam-role-policy", op, nil)
	return err
}

func labelsOf(role v3.IAMRole) map[string]string {
	labels := map[string]string{}
	for name, value := range role.Labels {
		labels[name] = value
	}
	return labels
}

func (k *iamv3Keys) Release(ctx context.Context, key Key, label string) error {
	if key.RoleID == "" {
		return nil
	}
	callCtx, rec := recordCall(ctx)
	role, err := k.client.GetIAMRole(callCtx, v3.UUID(key.RoleID))
	if err != nil {
		return apiError("get-iam-role", rec, err)
	}
	labels := labelsOf(*role)
	labels[label] = "true"
	callCtx, rec = recordCall(ctx)
	op, err := k.client.UpdateIAMRole(callCtx, role.ID, v3.UpdateIAMRoleRequest{Labels: labels})
	if err != nil {
		return apiError("update-iam-role", rec, err)
	}
	_, err = k.wait(ctx, "update-iam-role", op, nil)
	return err
}

func (k *iamv3Keys) Revoke(ctx context.Context, key Key) error {
	if key.ID != "" {
		if key.RoleID == "" {
			current, err := k.Get(ctx, key.ID)
			if errors.Is(err, ErrNotFound) {
				return nil // the key is gone; its role is not known here
			}
			if err != nil {
				return err
			}
			key.RoleID = current.RoleID
		}
		callCtx, rec := recordCall(ctx)
		op, err := k.client.DeleteAPIKey(callCtx, key.ID)
		if err != nil {
			err = apiError("delete-api-key", rec, err)
		} else {
			_, err = k.wait(ctx, "delete-api-key", op, nil)
		}
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	if key.RoleID == "" {
		return nil
	}
	return k.deleteRole(ctx, v3.UUID(key.RoleID))
}

func (k *iamv3Keys) deleteRole(ctx context.Context, roleID v3.UUID) error {
	callCtx, rec := recordCall(ctx)
	op, err := k.client.DeleteIAMRole(callCtx, roleID)
	if err != nil {
		err = apiError("delete-iam-role", rec, err)
	} else {
		_, err = k.wait(ctx, "delete-iam-role", op, nil)
	}
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// Grantable evaluates the issuer key's own role policy over the catalogue,
// with the organisation policy as a second gate when the key may read it
// (get-iam-organization-policy); when it may not, a note says so and the
// role alone is judged. A key that is not an IAM v3 API key (an
// organisation's legacy key) is asked through list-access-key-operations.
func (k *iamv3Keys) Grantable(ctx context.Context) (Grantable, error) {
	self, err := k.Get(ctx, k.cfg.Key)
	if errors.Is(err, ErrNotFound) {
		names, err := listMyOperations(ctx, k.legacy, k.cfg.Zone)
		if err != nil {
			return Grantable{}, err
		}
		return legacyGrantable(names, k.cfg.Catalog), nil
	}
	if err != nil {
		return Grantable{}, err
	}
	callCtx, rec := recordCall(ctx)
	role, err := k.client.GetIAMRole(callCtx, v3.UUID(self.RoleID))
	if err != nil {
		return Grantable{}, apiError("get-iam-role", rec, err)
	}
	compiled, err := policy.Compile(policyOf(role))
	if err != nil {
		return Grantable{}, fmt.Errorf("the issuer's role %s: %w", role.ID, err)
	}
	levels := policy.Levels{Role: compiled}
	var notes []string
	org, err := k.organizationPolicy(ctx)
	var apiErr *APIError
	switch {
	case errors.As(err, &apiErr) && apiErr.Status == http.StatusForbidden:
		notes = append(notes, "the organisation policy could not be read (the key lacks get-iam-organization-policy): "+
			"what it denies is not known here, and keys may be refused calls the role allows")
	case err != nil:
		return Grantable{}, err
	default:
		levels.Organization = org
	}
	holding := policy.Holds(levels, k.cfg.Catalog, k.cfg.Key)
	return Grantable{Operations: holding.Held, Depends: holding.Depends, Notes: notes}, nil
}

// organizationPolicy reads the organisation policy, Exoscale's second gate.
func (k *iamv3Keys) organizationPolicy(ctx context.Context) (*policy.Compiled, error) {
	callCtx, rec := recordCall(ctx)
	wire, err := k.client.GetIAMOrganizationPolicy(callCtx)
	if err != nil {
		return nil, apiError("get-iam-organization-policy", rec, err)
	}
	var own policy.Policy
	if err := convert(wire, &own); err != nil {
		return nil, err
	}
	compiled, err := policy.Compile(own)
	if err != nil {
		return nil, fmt.Errorf("the organisation policy: %w", err)
	}
	return compiled, nil
}

func (k *iamv3Keys) createOwnerKey(ctx context.Context, name string) (Credential, error) {
	callCtx, rec := recordCall(ctx)
	op, err := k.client.CreateIAMRole(callCtx, v3.CreateIAMRoleRequest{Name: name, Description: "an empty policy: everything, as the Owner role"})
	if err != nil {
		return Credential{}, apiError("create-iam-role", rec, err)
	}
	roleID, err := k.wait(ctx, "create-iam-role", op, nil)
	if err != nil {
		return Credential{}, err
	}
	callCtx, rec = recordCall(ctx)
	created, err := k.client.CreateAPIKey(callCtx, v3.CreateAPIKeyRequest{Name: name, RoleID: roleID})
	if err != nil {
		return Credential{}, apiError("create-api-key", rec, err)
	}
	return Credential{Key: Key{ID: created.Key, Name: created.Name, RoleID: string(roleID)}, Secret: Secret(created.Secret)}, nil
}

// OrganizationPolicy reads the organisation policy with an IAM v3
// backend's credentials; ErrNoOrganizationPolicy on a legacy backend.
func OrganizationPolicy(ctx context.Context, keys Keys) (*policy.Compiled, error) {
	v3, ok := unwrap(keys).(*iamv3Keys)
	if !ok {
		return nil, ErrNoOrganizationPolicy
	}
	return v3.organizationPolicy(ctx)
}

// ErrNoOrganizationPolicy: legacy access keys are not gated by one here.
var ErrNoOrganizationPolicy = errors.New("the organisation policy gates IAM v3 keys")
