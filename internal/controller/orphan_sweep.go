package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/exoscale"
)

// OrphanSweeper finds the keys this cluster's exokey minted whose AccessKey
// is gone (a finalizer stripped, a record lost), or whose AccessKey's
// status no longer names them (a create forgotten), and revokes them, or
// only reports them. It knows its keys by their roles' labels: the cluster's
// identity and the AccessKey's namespace, name and UID, as the inventory
// last listed them (it lists nothing itself but a candidate's role, again,
// before revoking it). Legacy access keys carry no labels, so only IAM v3
// issuers are swept.
type OrphanSweeper struct {
	Client client.Client
	// APIReader reads AccessKeys fresh: a key is only called orphaned
	// after a quorum read found no AccessKey with its UID.
	APIReader client.Reader
	Issuers   *IssuerClients
	// Inventory is the AccessKey reconciler's: its listings are swept.
	Inventory *Inventory
	Recorder  events.EventRecorder
	ClusterID string
	Period    time.Duration
	// ReportOnly reports orphaned keys (events, metric) without revoking.
	ReportOnly bool
	Metrics    *Metrics
	// KeyNames proves that a role a live AccessKey's status does not name
	// was minted for it (its name); nil sweeps only the keys of AccessKeys
	// that are gone.
	KeyNames *KeyNames
	// LeftLive is the record of keys deletions left live: an IAM v3 key
	// gone from its issuer's listing is dropped from it.
	LeftLive *LeftLive
}

// SweepResult is what one sweep found and did.
type SweepResult struct {
	Found, Revoked int
}

// NeedLeaderElection: one replica sweeps.
func (s *OrphanSweeper) NeedLeaderElection() bool { return true }

// Start sweeps every Period until ctx ends.
func (s *OrphanSweeper) Start(ctx context.Context) error {
	log := logf.FromContext(ctx).WithName("orphan-sweep")
	if s.ClusterID == "" {
		log.Info("no cluster identity: the orphan sweep is off")
		return nil
	}
	ticker := time.NewTicker(s.Period)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		sweepCtx, cancel := context.WithTimeout(ctx, max(s.Period, time.Minute))
		result, err := s.Sweep(sweepCtx)
		cancel()
		if err != nil {
			log.Error(err, "sweep for orphaned keys")
		}
		if result.Found > 0 {
			log.Info("swept orphaned keys", "found", result.Found, "revoked", result.Revoked)
		}
	}
}

// Sweep looks at every IAM v3 issuer once.
func (s *OrphanSweeper) Sweep(ctx context.Context) (SweepResult, error) {
	var result SweepResult
	var errs []error
	issuers, err := listIssuers(ctx, s.Client)
	if err != nil {
		return result, err
	}
	seen := map[string]bool{} // keys already judged through another issuer of the same organisation
	for _, iss := range issuers {
		if iss.Spec.API == iamv1beta1.IssuerAPIAccessKeyV2 {
			continue
		}
		found, listed := s.Inventory.Owned(iss)
		if !listed {
			continue // not listed yet, or its key may not list: swept once it is
		}
		s.settleLeftLive(ctx, iss, found)
		keys, err := s.Issuers.Keys(ctx, iss)
		if err != nil {
			continue // an issuer that cannot be used now is swept next time
		}
		for _, key := range found {
			id := key.ID + "/" + key.RoleID
			if seen[id] {
				continue
			}
			seen[id] = true
			orphaned, err := s.orphaned(ctx, key)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if !orphaned {
				continue
			}
			// The list may predate a deletion with deletionPolicy Orphan,
			// which labels the role before the AccessKey goes: look again.
			if key, err = s.confirm(ctx, keys, key); err != nil {
				errs = append(errs, err)
				continue
			}
			if orphaned, err = s.orphaned(ctx, key); err != nil || !orphaned {
				continue
			}
			result.Found++
			if err := s.handle(ctx, iss, keys, key); err != nil {
				errs = append(errs, err)
				continue
			}
			if !s.ReportOnly {
				result.Revoked++
			}
		}
	}
	return result, errors.Join(errs...)
}

// settleLeftLive drops from the record of keys left live those the issuer
// minted that its listing no longer holds: revoked by hand, or by an
// earlier sweep once the credentials worked again.
func (s *OrphanSweeper) settleLeftLive(ctx context.Context, iss *issuer, listed []exoscale.Key) {
	if s.LeftLive == nil {
		return
	}
	live := map[string]bool{}
	for _, key := range listed {
		live[key.ID] = true
	}
	var gone []LeftLiveKey
	for _, k := range s.LeftLive.List() {
		if k.mintedBy(iss) && k.KeyID != "" && !live[k.KeyID] {
			gone = append(gone, k)
		}
	}
	if len(gone) == 0 {
		return
	}
	if err := s.LeftLive.Remove(ctx, gone...); err != nil {
		logf.FromContext(ctx).Error(err, "drop revoked keys from the record of keys left live")
		return
	}
	for _, k := range gone {
		s.event(iss, corev1.EventTypeNormal, EventLeftLiveKeyGone, "Sweep", "key %s, left live by the deletion of AccessKey %s/%s, is no longer live",
			k.Key, k.Namespace, k.Name)
	}
}

// orphaned reports whether a key exokey minted has lost its AccessKey.
func (s *OrphanSweeper) orphaned(ctx context.Context, key exoscale.Key) (bool, error) {
	if key.Labels[LabelOrphaned] == "true" || key.Labels[LabelUID] == "" {
		return false, nil // kept on purpose (deletionPolicy Orphan), or not an AccessKey's
	}
	ak := &iamv1beta1.AccessKey{}
	err := s.APIReader.Get(ctx, keyOf(key.Labels[LabelNamespace], key.Labels[LabelName]), ak)
	if isNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("read the AccessKey of role %s: %w", key.RoleID, err)
	}
	if string(ak.UID) != key.Labels[LabelUID] {
		return true, nil
	}
	// A live AccessKey's: forgotten only when its status names it nowhere,
	// and only a role whose name proves exokey minted it for this
	// AccessKey; labels alone are anyone's with IAM rights to write.
	owned, proving := s.KeyNames.proves(key.Name, ak.UID)
	return owned && proving && !holdsRole(ak, key), nil
}

// holdsRole reports whether an AccessKey's status names a role: its
// current key's, a retiring key's, or a create in flight's (by name: the
// record is written before the create, and cleared by the write that
// records the key). A role minted for a live AccessKey that its status does
// not name was forgotten: a lookup of a pending create that found nothing
// while Exoscale's role operation was still running, say.
func holdsRole(ak *iamv1beta1.AccessKey, key exoscale.Key) bool {
	if ak.Status.RoleID == key.RoleID {
		return true
	}
	for _, old := range ak.Status.Retiring {
		if old.RoleID == key.RoleID {
			return true
		}
	}
	return !ak.Status.Pending.IsZero() && ak.Status.Pending.KeyName == key.Name
}

// confirm reads a key's role again, for labels as they are now.
func (s *OrphanSweeper) confirm(ctx context.Context, keys exoscale.Keys, key exoscale.Key) (exoscale.Key, error) {
	fresh, err := keys.FindByName(ctx, key.Name)
	if err != nil {
		return key, fmt.Errorf("read role %s again: %w", key.RoleID, err)
	}
	for _, k := range fresh {
		if k.RoleID == key.RoleID {
			return k, nil
		}
	}
	key.Labels = map[string]string{LabelOrphaned: "true"} // gone meanwhile: nothing to revoke
	return key, nil
}

func (s *OrphanSweeper) handle(ctx context.Context, iss *issuer, keys exoscale.Keys, key exoscale.Key) error {
	owner := key.Labels[LabelNamespace] + "/" + key.Labels[LabelName]
	if s.ReportOnly {
		s.Metrics.orphan(iss, "reported")
		s.event(iss, corev1.EventTypeWarning, EventOrphanFound, "key %s (role %s) was minted for AccessKey %s, which is gone: revoke it by hand",
			key.ID, key.RoleID, owner)
		return nil
	}
	if err := keys.Revoke(ctx, key); err != nil {
		return fmt.Errorf("revoke orphaned key %s (role %s): %w", key.ID, key.RoleID, err)
	}
	s.Metrics.orphan(iss, "revoked")
	logf.FromContext(ctx).Info("revoked an orphaned key", "keyID", key.ID, "roleID", key.RoleID, "accessKey", owner)
	s.event(iss, corev1.EventTypeNormal, EventOrphanRevoked, "revoked key %s (role %s): it was minted for AccessKey %s, which is gone",
		key.ID, key.RoleID, owner)
	return nil
}

func (s *OrphanSweeper) event(iss *issuer, eventType, reason, format string, args ...any) {
	if s.Recorder != nil {
		s.Recorder.Eventf(iss.Object, nil, eventType, reason, "Sweep", format, args...)
	}
}

// ClusterID is the UID of the kube-system namespace: a stable identity of
// the cluster, for the labels of the roles its exokey mints.
func ClusterID(ctx context.Context, reader client.Reader) (string, error) {
	ns := &corev1.Namespace{}
	if err := reader.Get(ctx, client.ObjectKey{Name: "kube-system"}, ns); err != nil {
		return "", err
	}
	return string(ns.UID), nil
}
