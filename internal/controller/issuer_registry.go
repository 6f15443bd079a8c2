package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/exoscale"
)

// issuer is a KeyIssuer or ClusterKeyIssuer, read through one shape.
type issuer struct {
	Kind       iamv1beta1.IssuerKind
	Key        types.NamespacedName
	Object     client.Object
	Generation int64
	Spec       iamv1beta1.IssuerSpec
	// NamespaceSelector is set on a ClusterKeyIssuer only.
	Selector *iamv1beta1.ClusterKeyIssuerSpec
	Status   *iamv1beta1.IssuerStatus
}

// getIssuer reads the issuer an AccessKey in namespace refers to.
func getIssuer(ctx context.Context, c client.Reader, ref iamv1beta1.IssuerReference, namespace string) (*issuer, error) {
	if ref.Kind == iamv1beta1.KeyIssuerKind {
		obj := &iamv1beta1.KeyIssuer{}
		if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: ref.Name}, obj); err != nil {
			return nil, err
		}
		return keyIssuer(obj), nil
	}
	obj := &iamv1beta1.ClusterKeyIssuer{}
	if err := c.Get(ctx, types.NamespacedName{Name: ref.Name}, obj); err != nil {
		return nil, err
	}
	return clusterKeyIssuer(obj), nil
}

func keyIssuer(obj *iamv1beta1.KeyIssuer) *issuer {
	return &issuer{Kind: iamv1beta1.KeyIssuerKind, Key: client.ObjectKeyFromObject(obj), Object: obj, Generation: obj.Generation,
		Spec: obj.Spec, Status: &obj.Status}
}

func clusterKeyIssuer(obj *iamv1beta1.ClusterKeyIssuer) *issuer {
	return &issuer{Kind: iamv1beta1.ClusterKeyIssuerKind, Key: client.ObjectKeyFromObject(obj), Object: obj, Generation: obj.Generation,
		Spec: obj.Spec.IssuerSpec, Selector: &obj.Spec, Status: &obj.Status}
}

// credentialsKey is where the issuer's credentials Secret lives.
func (i *issuer) credentialsKey() types.NamespacedName {
	namespace := i.Spec.CredentialsRef.Namespace
	if i.Kind == iamv1beta1.KeyIssuerKind {
		namespace = i.Key.Namespace
	}
	return types.NamespacedName{Namespace: namespace, Name: i.Spec.CredentialsRef.Name}
}

// CredentialsError says why an issuer's credentials cannot be used; its
// Reason is a condition reason.
type CredentialsError struct {
	Reason  string
	Message string
}

func (e *CredentialsError) Error() string { return e.Message }

// KeysFactory builds a backend from a configuration; tests swap it.
type KeysFactory func(exoscale.Config) (exoscale.Keys, error)

// IssuerClients caches one backend per issuer, rebuilt when the issuer's
// generation or its credentials Secret's resourceVersion changes.
type IssuerClients struct {
	// Reader reads credentials Secrets. Those are not labelled for exokey,
	// so this is the uncached API reader: the cache holds exokey's Secrets only.
	Reader client.Reader
	// Base is the configuration every backend starts from (rate limits,
	// retries, metrics).
	Base    exoscale.Config
	Factory KeysFactory
	// ReuseFor is how long a backend is handed out without reading its
	// credentials Secret again (default 10s), so a burst of AccessKeys
	// does not read it once each. The issuer reconciler refreshes it as
	// soon as it sees the Secret change.
	ReuseFor time.Duration
	// Clock is the real clock unless a test sets another.
	Clock clock.PassiveClock

	mu      sync.Mutex
	entries map[string]clientEntry
	shares  map[string]*mintShare
	// grants is what each issuer's key was last seen to hold.
	grants map[string]exoscale.Grantable
}

// setGrantable records what the issuer's key holds, as its check read it.
func (c *IssuerClients) setGrantable(i *issuer, g exoscale.Grantable) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.grants == nil {
		c.grants = map[string]exoscale.Grantable{}
	}
	c.grants[issuerID(i)] = g
}

// grantable is what the issuer's key was last seen to hold; false before
// its first check.
func (c *IssuerClients) grantable(i *issuer) (exoscale.Grantable, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g, ok := c.grants[issuerID(i)]
	return g, ok
}

// admit spends one mint of namespace's fair share of the issuer's rate, or
// says how long to wait for one. The rate is the issuer's request rate
// (Base.QPS) over the calls a mint costs.
func (c *IssuerClients) admit(i *issuer, namespace string, now time.Time) time.Duration {
	return c.share(i).take(namespace, now)
}

func (c *IssuerClients) share(i *issuer) *mintShare {
	c.mu.Lock()
	if c.shares == nil {
		c.shares = map[string]*mintShare{}
	}
	share, ok := c.shares[issuerID(i)]
	if !ok {
		qps, burst := c.Base.RateLimit()
		callsPerMint := 1.0
		if i.Spec.API != iamv1beta1.IssuerAPIAccessKeyV2 {
			callsPerMint = 2 // a role and its key
		}
		share = newMintShare(qps/callsPerMint, max(1, int(float64(burst)/callsPerMint)))
		c.shares[issuerID(i)] = share
	}
	c.mu.Unlock()
	return share
}

type clientEntry struct {
	generation    int64
	secretVersion string
	readAt        time.Time
	keys          exoscale.Keys
	// credentialsGone: the credentials Secret was deleted or emptied. The
	// backend is kept to revoke what the issuer minted (a namespace being
	// deleted takes the Secret with it) and used for nothing else.
	credentialsGone bool
}

// Keys returns the backend of an issuer.
func (c *IssuerClients) Keys(ctx context.Context, i *issuer) (exoscale.Keys, error) {
	reuseFor := c.ReuseFor
	if reuseFor <= 0 {
		reuseFor = 10 * time.Second
	}
	c.mu.Lock()
	entry, ok := c.entries[issuerID(i)]
	c.mu.Unlock()
	if ok && !entry.credentialsGone && entry.generation == i.Generation && c.now().Sub(entry.readAt) < reuseFor {
		return entry.keys, nil
	}
	return c.refresh(ctx, i)
}

// revoker returns the backend that revokes an issuer's keys: its backend,
// or, when its credentials Secret is gone, the one built from them while it
// was there.
func (c *IssuerClients) revoker(ctx context.Context, i *issuer) (exoscale.Keys, error) {
	keys, err := c.Keys(ctx, i)
	if _, missing := asCredentialsError(err); missing {
		c.mu.Lock()
		entry, ok := c.entries[issuerID(i)]
		c.mu.Unlock()
		if ok && entry.credentialsGone {
			return entry.keys, nil
		}
	}
	return keys, err
}

// credentialsGone keeps an issuer's backend for revocations only.
func (c *IssuerClients) credentialsGone(i *issuer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if entry, ok := c.entries[issuerID(i)]; ok {
		entry.credentialsGone = true
		c.entries[issuerID(i)] = entry
	}
}

func (c *IssuerClients) forget(i *issuer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, issuerID(i))
	delete(c.shares, issuerID(i))
	delete(c.grants, issuerID(i))
}

func (c *IssuerClients) now() time.Time {
	if c.Clock == nil {
		return time.Now()
	}
	return c.Clock.Now()
}

func issuerID(i *issuer) string { return string(i.Kind) + "/" + i.Key.String() }

// refresh reads the issuer's credentials Secret and returns its backend,
// built again when the issuer or the Secret changed.
func (c *IssuerClients) refresh(ctx context.Context, i *issuer) (exoscale.Keys, error) {
	ref := i.credentialsKey()
	secret := &corev1.Secret{}
	if err := c.Reader.Get(ctx, ref, secret); err != nil {
		if apierrors.IsNotFound(err) {
			c.credentialsGone(i)
			return nil, &CredentialsError{Reason: ReasonCredentialsMissing,
				Message: fmt.Sprintf("credentials Secret %s not found", ref)}
		}
		return nil, fmt.Errorf("read credentials Secret %s: %w", ref, err)
	}
	id := issuerID(i)
	c.mu.Lock()
	defer c.mu.Unlock()
	if entry, ok := c.entries[id]; ok && !entry.credentialsGone && entry.generation == i.Generation && entry.secretVersion == secret.ResourceVersion {
		entry.readAt = c.now()
		c.entries[id] = entry
		return entry.keys, nil
	}
	keyField, secretField := i.Spec.CredentialsRef.KeyField, i.Spec.CredentialsRef.SecretField
	if keyField == "" {
		keyField = "EXOSCALE_API_KEY"
	}
	if secretField == "" {
		secretField = "EXOSCALE_API_SECRET"
	}
	for _, field := range []string{keyField, secretField} {
		if len(secret.Data[field]) == 0 {
			if entry, ok := c.entries[id]; ok {
				entry.credentialsGone = true
				c.entries[id] = entry
			}
			return nil, &CredentialsError{Reason: ReasonCredentialsMissing,
				Message: fmt.Sprintf("credentials Secret %s has no field %s", ref, field)}
		}
	}
	cfg := c.Base
	cfg.API = string(i.Spec.API)
	cfg.Zone = i.Spec.Zone
	cfg.Endpoint = i.Spec.Endpoint
	cfg.Key = string(secret.Data[keyField])
	cfg.Secret = exoscale.Secret(secret.Data[secretField])
	factory := c.Factory
	if factory == nil {
		factory = exoscale.New
	}
	keys, err := factory(cfg)
	if err != nil {
		return nil, &CredentialsError{Reason: ReasonCredentialsInvalid, Message: err.Error()}
	}
	if c.entries == nil {
		c.entries = map[string]clientEntry{}
	}
	c.entries[id] = clientEntry{generation: i.Generation, secretVersion: secret.ResourceVersion, readAt: c.now(), keys: keys}
	return keys, nil
}

// credentialsFingerprint changes when the issuer's spec or its credentials
// Secret does: the generation and the Secret's resourceVersion ("" while it
// is missing).
func (c *IssuerClients) credentialsFingerprint(ctx context.Context, i *issuer) (string, *metav1.PartialObjectMetadata, error) {
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	err := c.Reader.Get(ctx, i.credentialsKey(), meta)
	if apierrors.IsNotFound(err) {
		return fmt.Sprintf("%d/", i.Generation), nil, nil
	}
	if err != nil {
		return "", nil, fmt.Errorf("read credentials Secret %s: %w", i.credentialsKey(), err)
	}
	return fmt.Sprintf("%d/%s", i.Generation, meta.ResourceVersion), meta, nil
}

// asCredentialsError returns err's CredentialsError, if it is one.
func asCredentialsError(err error) (*CredentialsError, bool) {
	var credErr *CredentialsError
	ok := errors.As(err, &credErr)
	return credErr, ok
}
