package exoscale

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	egoscale "github.com/exoscale/egoscale/v2"
	apiv2 "github.com/exoscale/egoscale/v2/api"

	"github.com/exokey/exokey/internal/exoscale/catalog"
)

// legacyKeys mints legacy restricted access keys with egoscale's v2 package.
type legacyKeys struct {
	client *egoscale.Client
	cfg    Config
}

var _ Keys = (*legacyKeys)(nil)

func newLegacyKeys(cfg Config) (*legacyKeys, error) {
	client, err := newV2Client(cfg)
	if err != nil {
		return nil, err
	}
	return &legacyKeys{client: client, cfg: cfg}, nil
}

func newV2Client(cfg Config) (*egoscale.Client, error) {
	// The v2 client appends /v2 to the endpoint itself.
	return egoscale.NewClient(cfg.Key, cfg.Secret.Reveal(),
		egoscale.ClientOptWithAPIEndpoint(strings.TrimSuffix(cfg.Endpoint, "/v2")),
		egoscale.ClientOptWithHTTPClient(newHTTPClient(cfg)),
		egoscale.ClientOptWithPollInterval(cfg.PollInterval/4),
		egoscale.ClientOptWithTimeout(2*cfg.Timeout))
}

func (k *legacyKeys) call(ctx context.Context) (context.Context, *callRecord) {
	ctx, rec := recordCall(ctx)
	return apiv2.WithZone(ctx, k.cfg.Zone), rec
}

func (k *legacyKeys) Create(ctx context.Context, spec KeySpec) (Credential, error) {
	r, err := Resolve(spec, k.cfg.Catalog)
	if err != nil {
		return Credential{}, err
	}
	var opts []egoscale.CreateIAMAccessKeyOpt
	if !r.Unrestricted {
		var operations []string
		for _, ops := range r.Operations {
			operations = append(operations, ops...)
		}
		var resources []egoscale.IAMAccessKeyResource
		for _, bucket := range r.Buckets {
			resources = append(resources, egoscale.IAMAccessKeyResource{Domain: "sos", ResourceType: "bucket", ResourceName: bucket})
		}
		for _, product := range r.Products {
			resources = append(resources, egoscale.IAMAccessKeyResource{Domain: "partner", ResourceType: "product", ResourceName: product})
		}
		opts = append(opts,
			egoscale.CreateIAMAccessKeyWithOperations(operations),
			egoscale.CreateIAMAccessKeyWithTags(r.Services),
			egoscale.CreateIAMAccessKeyWithResources(resources))
	}
	ctx, rec := k.call(ctx)
	created, err := k.client.CreateIAMAccessKey(ctx, k.cfg.Zone, spec.Name, opts...)
	if err != nil {
		return Credential{}, apiError("create-access-key", rec, err)
	}
	if created.Key == nil || created.Secret == nil {
		return Credential{}, errors.New("create-access-key: the answer holds no key or secret")
	}
	return Credential{Key: Key{ID: *created.Key, Name: spec.Name}, Secret: Secret(*created.Secret)}, nil
}

func (k *legacyKeys) Get(ctx context.Context, keyID string) (Key, error) {
	ctx, rec := k.call(ctx)
	key, err := k.client.GetIAMAccessKey(ctx, k.cfg.Zone, keyID)
	if err != nil {
		return Key{}, apiError("get-access-key", rec, err)
	}
	return Key{ID: deref(key.Key), Name: deref(key.Name)}, nil
}

func (k *legacyKeys) Describe(ctx context.Context, keyID string) (KeySpec, error) {
	ctx, rec := k.call(ctx)
	key, err := k.client.GetIAMAccessKey(ctx, k.cfg.Zone, keyID)
	if err != nil {
		return KeySpec{}, apiError("get-access-key", rec, err)
	}
	spec := KeySpec{Name: deref(key.Name)}
	if deref(key.Type) == "unrestricted" {
		spec.Unrestricted = true
		return spec, nil
	}
	tagged := map[string]bool{}
	if key.Tags != nil {
		for _, tag := range *key.Tags {
			spec.Tags = append(spec.Tags, tag)
			tagged[catalog.NormalizeTag(tag)] = true
		}
	}
	if key.Operations != nil {
		// The API answers the operations of the tags too.
		for _, name := range *key.Operations {
			if op, known := k.cfg.Catalog.Lookup(name); !known || !tagged[op.Tag] {
				spec.Operations = append(spec.Operations, name)
			}
		}
	}
	if key.Resources != nil {
		for _, res := range *key.Resources {
			spec.Resources = append(spec.Resources, res.Domain+"/"+res.ResourceType+":"+res.ResourceName)
		}
	}
	sort.Strings(spec.Operations)
	sort.Strings(spec.Resources)
	return spec, nil
}

func (k *legacyKeys) FindByName(ctx context.Context, name string) ([]Key, error) {
	ctx, rec := k.call(ctx)
	all, err := k.client.ListIAMAccessKeys(ctx, k.cfg.Zone)
	if err != nil {
		return nil, apiError("list-access-keys", rec, err)
	}
	var found []Key
	for _, key := range all {
		if deref(key.Name) == name {
			found = append(found, Key{ID: deref(key.Key), Name: name})
		}
	}
	return found, nil
}

func (k *legacyKeys) Revoke(ctx context.Context, key Key) error {
	if key.ID == "" {
		return nil
	}
	ctx, rec := k.call(ctx)
	err := apiError("revoke-access-key", rec, k.client.RevokeIAMAccessKey(ctx, k.cfg.Zone, &egoscale.IAMAccessKey{Key: &key.ID}))
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

func (k *legacyKeys) FindByLabels(context.Context, map[string]string) ([]Key, error) {
	return nil, ErrNoLabels
}

func (k *legacyKeys) Release(context.Context, Key, string) error { return nil }

func (k *legacyKeys) List(ctx context.Context) (Listing, error) {
	ctx, rec := k.call(ctx)
	all, err := k.client.ListIAMAccessKeys(ctx, k.cfg.Zone)
	if err != nil {
		return Listing{}, apiError("list-access-keys", rec, err)
	}
	listing := Listing{Keys: make(map[string]string, len(all))}
	for _, key := range all {
		listing.Keys[deref(key.Key)] = ""
	}
	return listing, nil
}

func (k *legacyKeys) PutPolicy(context.Context, string, KeySpec) error { return ErrNoRoles }

func (k *legacyKeys) CreateSessionRole(context.Context, KeySpec, time.Duration) (Key, error) {
	return Key{}, ErrNoSessions
}

func (k *legacyKeys) GetRole(context.Context, string) (Key, error) { return Key{}, ErrNoSessions }

func (k *legacyKeys) Assume(context.Context, string, time.Duration) (Session, error) {
	return Session{}, ErrNoSessions
}

func (k *legacyKeys) Grantable(ctx context.Context) (Grantable, error) {
	names, err := listMyOperations(ctx, k.client, k.cfg.Zone)
	if errors.Is(err, ErrNotFound) {
		return Grantable{}, fmt.Errorf("list-access-key-operations: %w", ErrLegacyAPIGone)
	}
	if err != nil {
		return Grantable{}, err
	}
	return legacyGrantable(names, k.cfg.Catalog), nil
}

// legacyGrantable is what a legacy key holding names holds in both
// vocabularies: each S3 action of a legacy S3 name it holds too.
func legacyGrantable(names []string, cat *catalog.Catalog) Grantable {
	held := slices.Clone(names)
	for _, name := range names {
		if op, ok := cat.Lookup(name); ok && op.Vocabulary == catalog.Legacy {
			held = append(held, op.S3Actions...)
		}
	}
	sort.Strings(held)
	return Grantable{Operations: slices.Compact(held)}
}

func listMyOperations(ctx context.Context, client *egoscale.Client, zone string) ([]string, error) {
	ctx, rec := recordCall(ctx)
	ops, err := client.ListMyIAMAccessKeyOperations(apiv2.WithZone(ctx, zone), zone)
	if err != nil {
		return nil, apiError("list-access-key-operations", rec, err)
	}
	names := make([]string, 0, len(ops))
	for _, op := range ops {
		names = append(names, op.Name)
	}
	return names, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
