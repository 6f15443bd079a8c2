package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
)

// The rights on the ConfigMap are not markers: they are namespaced and name
// it (the leader-election Role of config/rbac and the chart).

// LeftLiveKey is a key a deleted AccessKey left live at Exoscale: its
// deletion waited --revoke-timeout and could not revoke it.
type LeftLiveKey struct {
	// Namespace and Name are the deleted AccessKey's.
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Issuer is the minting issuer, Kind/name.
	Issuer string `json:"issuer"`
	// Key is how the key is named to people: its ID, "role ID", or
	// "pending key NAME".
	Key   string `json:"key"`
	KeyID string `json:"keyID,omitempty"`
	// Since is when the AccessKey was released.
	Since time.Time `json:"since"`
}

func (k LeftLiveKey) id() string { return k.Issuer + "/" + k.Key }

// LeftLive is the record of the keys deleted AccessKeys left live, kept in
// a ConfigMap of the manager's namespace so that it outlives the manager
// and the issuer, and read by the leader into memory when it starts to
// lead; the metric exokey_unrevoked_keys and the alert ExokeyKeysLeftLive
// come from it. An entry goes when the orphan sweep finds the key gone from
// its issuer's listing (IAM v3: revoked by hand, or by the sweep once the
// credentials work again), or when an admin deletes it from the ConfigMap.
type LeftLive struct {
	// Reader reads the ConfigMap uncached (nothing watches ConfigMaps);
	// Writer writes it.
	Reader client.Reader
	Writer client.Writer
	// Key is the ConfigMap; an empty Name keeps the record in memory only.
	Key types.NamespacedName

	mu      sync.Mutex
	entries map[string]LeftLiveKey
}

// NeedLeaderElection: the leader keeps the record.
func (l *LeftLive) NeedLeaderElection() bool { return true }

// Start loads the record once this replica leads, and again every
// minute, so an admin's edit of the ConfigMap (an entry deleted once its
// key was revoked by hand) reaches the metric.
func (l *LeftLive) Start(ctx context.Context) error {
	if l.Key.Name == "" {
		return nil
	}
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		entries, err := l.read(ctx)
		if err != nil {
			logf.FromContext(ctx).Error(err, "read the record of keys left live", "configMap", l.Key)
			return
		}
		l.mu.Lock()
		l.entries = entries
		l.mu.Unlock()
	}, leftLiveReload)
	return nil
}

// leftLiveReload is how often the leader reads the record again.
const leftLiveReload = time.Minute

// List returns the keys left live, oldest first.
func (l *LeftLive) List() []LeftLiveKey {
	l.mu.Lock()
	defer l.mu.Unlock()
	keys := slices.Collect(maps.Values(l.entries))
	slices.SortFunc(keys, func(a, b LeftLiveKey) int { return a.Since.Compare(b.Since) })
	return keys
}

// Add records keys left live.
func (l *LeftLive) Add(ctx context.Context, keys ...LeftLiveKey) error {
	return l.update(ctx, func(entries map[string]LeftLiveKey) {
		for _, k := range keys {
			entries[k.id()] = k
		}
	})
}

// Remove drops keys no longer live.
func (l *LeftLive) Remove(ctx context.Context, keys ...LeftLiveKey) error {
	return l.update(ctx, func(entries map[string]LeftLiveKey) {
		for _, k := range keys {
			delete(entries, k.id())
		}
	})
}

// update changes the record in the ConfigMap, on its latest version, and
// in memory.
func (l *LeftLive) update(ctx context.Context, change func(map[string]LeftLiveKey)) error {
	if l.Key.Name == "" {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.entries == nil {
			l.entries = map[string]LeftLiveKey{}
		}
		change(l.entries)
		return nil
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm := &corev1.ConfigMap{}
		err := l.Reader.Get(ctx, l.Key, cm)
		missing := apierrors.IsNotFound(err)
		if err != nil && !missing {
			return err
		}
		entries, err := decodeLeftLive(cm)
		if err != nil {
			return err
		}
		change(entries)
		cm.Name, cm.Namespace = l.Key.Name, l.Key.Namespace
		cm.Data = map[string]string{}
		for id, k := range entries {
			raw, err := json.Marshal(k)
			if err != nil {
				return err
			}
			cm.Data[configMapKey(id)] = string(raw)
		}
		if missing {
			cm.Annotations = map[string]string{"iam.exokey.io/description": "Keys deleted AccessKeys left live at Exoscale: revoke each by hand, then delete its entry."}
			err = l.Writer.Create(ctx, cm)
		} else {
			err = l.Writer.Update(ctx, cm)
		}
		if err != nil {
			return err
		}
		l.mu.Lock()
		l.entries = entries
		l.mu.Unlock()
		return nil
	})
}

func (l *LeftLive) read(ctx context.Context) (map[string]LeftLiveKey, error) {
	cm := &corev1.ConfigMap{}
	if err := l.Reader.Get(ctx, l.Key, cm); apierrors.IsNotFound(err) {
		return map[string]LeftLiveKey{}, nil
	} else if err != nil {
		return nil, err
	}
	return decodeLeftLive(cm)
}

func decodeLeftLive(cm *corev1.ConfigMap) (map[string]LeftLiveKey, error) {
	entries := map[string]LeftLiveKey{}
	for dataKey, raw := range cm.Data {
		var k LeftLiveKey
		if err := json.Unmarshal([]byte(raw), &k); err != nil {
			return nil, fmt.Errorf("ConfigMap %s/%s, entry %s: %w", cm.Namespace, cm.Name, dataKey, err)
		}
		entries[k.id()] = k
	}
	return entries, nil
}

// configMapKey makes an entry's ID a valid ConfigMap key ([-._a-zA-Z0-9]).
func configMapKey(id string) string {
	out := []byte(id)
	for i, c := range out {
		if !(c == '-' || c == '.' || c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			out[i] = '_'
		}
	}
	return string(out)
}

// leftLiveKeys turns the keys a released AccessKey holds into records.
func leftLiveKeys(ak *iamv1beta1.AccessKey, keys []heldKey, now time.Time) []LeftLiveKey {
	out := make([]LeftLiveKey, 0, len(keys))
	for _, key := range keys {
		out = append(out, LeftLiveKey{Namespace: ak.Namespace, Name: ak.Name, Issuer: key.issuerName(ak), Key: key.label(),
			KeyID: key.key.ID, Since: now.UTC().Truncate(time.Second)})
	}
	return out
}

// mintedBy reports whether the record's key was minted by iss.
func (k LeftLiveKey) mintedBy(iss *issuer) bool {
	return k.Issuer == string(iss.Kind)+"/"+iss.Key.Name && (iss.Kind == iamv1beta1.ClusterKeyIssuerKind || iss.Key.Namespace == k.Namespace)
}
