package exoscale

import (
	"context"
	"time"
)

// withDeadlines gives every call of a backend a deadline, retries and
// operation polls included, so no caller is held longer than timeout by an
// endpoint that accepts connections and never answers.
type withDeadlines struct {
	keys    Keys
	timeout time.Duration
}

func (d withDeadlines) Create(ctx context.Context, spec KeySpec) (Credential, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	return d.keys.Create(ctx, spec)
}

func (d withDeadlines) Get(ctx context.Context, keyID string) (Key, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	return d.keys.Get(ctx, keyID)
}

func (d withDeadlines) FindByName(ctx context.Context, name string) ([]Key, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	return d.keys.FindByName(ctx, name)
}

func (d withDeadlines) Revoke(ctx context.Context, key Key) error {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	return d.keys.Revoke(ctx, key)
}

func (d withDeadlines) Describe(ctx context.Context, keyID string) (KeySpec, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	return d.keys.Describe(ctx, keyID)
}

func (d withDeadlines) Grantable(ctx context.Context) (Grantable, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	return d.keys.Grantable(ctx)
}

func (d withDeadlines) FindByLabels(ctx context.Context, labels map[string]string) ([]Key, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	return d.keys.FindByLabels(ctx, labels)
}

func (d withDeadlines) Release(ctx context.Context, key Key, label string) error {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	return d.keys.Release(ctx, key, label)
}

func (d withDeadlines) CreateSessionRole(ctx context.Context, spec KeySpec, maxTTL time.Duration) (Key, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	return d.keys.CreateSessionRole(ctx, spec, maxTTL)
}

func (d withDeadlines) Assume(ctx context.Context, roleID string, ttl time.Duration) (Session, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	return d.keys.Assume(ctx, roleID, ttl)
}

func (d withDeadlines) GetRole(ctx context.Context, roleID string) (Key, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	return d.keys.GetRole(ctx, roleID)
}

func (d withDeadlines) List(ctx context.Context) (Listing, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	return d.keys.List(ctx)
}

func (d withDeadlines) PutPolicy(ctx context.Context, roleID string, spec KeySpec) error {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	return d.keys.PutPolicy(ctx, roleID, spec)
}
