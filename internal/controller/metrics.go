package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
)

// Metrics are exokey's own metrics on the manager's metrics endpoint. The
// gauges are computed from the cached AccessKeys at scrape time, so they
// cannot drift from what the cluster says.
type Metrics struct {
	rotations *prometheus.CounterVec
	orphans   *prometheus.CounterVec
	drift     *prometheus.CounterVec
	unproven  *prometheus.CounterVec
	restarts  *prometheus.CounterVec
	forced    prometheus.Counter
	toRevoke  prometheus.Histogram
	cache     cache.Cache
	// leftLive is the record of keys deletions left live (nil: none).
	leftLive *LeftLive
	// leading is closed once this replica leads; the gauges read off the
	// cache are reported by the leader alone (nil: always).
	leading <-chan struct{}

	accessKeys         *prometheus.Desc
	keyCreated         *prometheus.Desc
	keyOverdue         *prometheus.Desc
	revocationsPending *prometheus.Desc
	sessionExpiration  *prometheus.Desc
	sessionTTL         *prometheus.Desc
	unrevoked          *prometheus.Desc
}

// NewMetrics registers exokey's metrics with reg; the gauges are read off
// c's AccessKeys.
func NewMetrics(reg prometheus.Registerer, c cache.Cache) *Metrics {
	m := &Metrics{
		rotations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exokey_rotations_total",
			Help: "Keys minted, by reason: NoKey, RestrictionsChanged, RotationDue, RotationRequested, KeyGone, RoleDrifted, SecretMissing, SecretTampered, RenewalDue.",
		}, []string{"reason"}),
		orphans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exokey_orphaned_keys_total",
			Help: "Keys exokey minted whose AccessKey is gone, found by the orphan sweep, by issuer and action (revoked, reported).",
		}, []string{"issuer", "action"}),
		drift: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exokey_drift_corrections_total",
			Help: "Keys found drifted at Exoscale and put right, by issuer and kind: widened, narrowed, changed (a role's policy), relabelled (a role's labels), gone (a key or role deleted).",
		}, []string{"issuer", "kind"}),
		unproven: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exokey_unproven_keys_total",
			Help: "Keys named in an AccessKey's status that Exoscale does not show as minted for it, by issuer: left alone and dropped from status.",
		}, []string{"issuer"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exokey_restarts_total",
			Help: "Workloads rolled onto a new key, by kind.",
		}, []string{"kind"}),
		forced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "exokey_revocations_forced_total",
			Help: "Replaced keys revoked at the end of their grace period before every consumer had rolled onto the new key.",
		}),
		toRevoke: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "exokey_publish_to_revoke_seconds",
			Help:    "Time from a new key's publish to the revocation of the key it replaced, for keys that waited for their consumers.",
			Buckets: []float64{5, 15, 30, 60, 120, 300, 600, 1800, 3600},
		}),
		cache: c,
		accessKeys: prometheus.NewDesc("exokey_access_keys",
			"AccessKeys by issuer and readiness.", []string{"issuer", "ready"}, nil),
		keyCreated: prometheus.NewDesc("exokey_key_created_timestamp_seconds",
			"When each AccessKey's current key was created (Unix time).", []string{"namespace", "name"}, nil),
		keyOverdue: prometheus.NewDesc("exokey_key_overdue_timestamp_seconds",
			"When each current key of an AccessKey that rotates on a schedule is overdue: created plus rotation.everySeconds plus rotation.gracePeriodSeconds (Unix time).",
			[]string{"namespace", "name"}, nil),
		revocationsPending: prometheus.NewDesc("exokey_revocations_pending",
			"Replaced keys waiting for their grace period to end.", nil, nil),
		sessionExpiration: prometheus.NewDesc("exokey_session_expiration_timestamp_seconds",
			"When the current session credential of each AccessKey with spec.ttlSeconds expires (Unix time).", []string{"namespace", "name"}, nil),
		unrevoked: prometheus.NewDesc("exokey_unrevoked_keys",
			"Keys of deleted AccessKeys that could not be revoked before the finalizer was released: revoke them by hand. "+
				"1 per key, from the record the manager keeps (ConfigMap exokey-keys-left-live).",
			[]string{"namespace", "name", "issuer", "key"}, nil),
		sessionTTL: prometheus.NewDesc("exokey_session_ttl_seconds",
			"spec.ttlSeconds of each AccessKey with session credentials.", []string{"namespace", "name"}, nil),
	}
	reg.MustRegister(m.rotations, m.orphans, m.drift, m.unproven, m.restarts, m.forced, m.toRevoke, m)
	return m
}

// rotated counts a minted key; a nil Metrics counts nothing.
func (m *Metrics) rotated(reason string) {
	if m != nil {
		m.rotations.WithLabelValues(reason).Inc()
	}
}

// orphan counts a key the sweep found; a nil Metrics counts nothing.
func (m *Metrics) orphan(iss *issuer, action string) {
	if m != nil {
		m.orphans.WithLabelValues(issuerID(iss), action).Inc()
	}
}

// driftCorrected counts a drifted key put right; a nil Metrics counts nothing.
func (m *Metrics) driftCorrected(iss *issuer, kind string) {
	if m != nil {
		m.drift.WithLabelValues(issuerID(iss), kind).Inc()
	}
}

// unprovenKey counts a key status named that was not the AccessKey's.
func (m *Metrics) unprovenKey(iss *issuer) {
	if m != nil {
		m.unproven.WithLabelValues(issuerID(iss)).Inc()
	}
}

// restarted counts a workload rolled onto a new key.
func (m *Metrics) restarted(kind string) {
	if m != nil {
		m.restarts.WithLabelValues(kind).Inc()
	}
}

// forcedRevocation counts a key revoked at gracePeriod before its consumers rolled.
func (m *Metrics) forcedRevocation() {
	if m != nil {
		m.forced.Inc()
	}
}

// publishToRevoke observes how long a key outlived its successor's publish.
func (m *Metrics) publishToRevoke(d time.Duration) {
	if m != nil {
		m.toRevoke.Observe(d.Seconds())
	}
}

// LeftLive has the metrics report the keys in l's record.
func (m *Metrics) LeftLive(l *LeftLive) { m.leftLive = l }

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.accessKeys
	ch <- m.keyCreated
	ch <- m.keyOverdue
	ch <- m.revocationsPending
	ch <- m.sessionExpiration
	ch <- m.sessionTTL
	ch <- m.unrevoked
}

// LeaderOnly reports the gauges read off the cache only once leading is
// closed (the manager's Elected): every replica fills its cache, and a
// standby reporting them too doubled every series a dashboard sums and
// every per-key alert's matches.
func (m *Metrics) LeaderOnly(leading <-chan struct{}) { m.leading = leading }

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	if m.leading != nil {
		select {
		case <-m.leading:
		default:
			return // a standby: the leader reports them
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	type issuerReady struct{ issuer, ready string }
	counts := map[issuerReady]int{}
	pending := 0
	err := m.eachAccessKey(ctx, func(ak *iamv1beta1.AccessKey) {
		ready := "false"
		if meta.IsStatusConditionTrue(ak.Status.Conditions, ConditionReady) {
			ready = "true"
		}
		counts[issuerReady{string(kindOf(ak.Spec.IssuerRef)) + "/" + ak.Spec.IssuerRef.Name, ready}]++
		pending += len(ak.Status.Retiring)
		// Times, not ages, as cert-manager exports them: a series that
		// does not change with the clock, compared with time() in the rules.
		if created := ak.Status.CreatedAt; created != nil {
			ch <- prometheus.MustNewConstMetric(m.keyCreated, prometheus.GaugeValue, unixSeconds(created.Time), ak.Namespace, ak.Name)
			if ak.Spec.Rotation != nil && ak.Spec.Rotation.EverySeconds > 0 {
				overdue := created.Add(iamv1beta1.Seconds(ak.Spec.Rotation.EverySeconds) + specGrace(ak))
				ch <- prometheus.MustNewConstMetric(m.keyOverdue, prometheus.GaugeValue, unixSeconds(overdue), ak.Namespace, ak.Name)
			}
		}
		if ttl := ttlOf(ak); ttl > 0 {
			ch <- prometheus.MustNewConstMetric(m.sessionTTL, prometheus.GaugeValue, ttl.Seconds(), ak.Namespace, ak.Name)
			if ak.Status.ExpiresAt != nil {
				ch <- prometheus.MustNewConstMetric(m.sessionExpiration, prometheus.GaugeValue, unixSeconds(ak.Status.ExpiresAt.Time), ak.Namespace, ak.Name)
			}
		}
	})
	if err != nil {
		return // the cache is not started yet: nothing to report
	}
	for key, n := range counts {
		ch <- prometheus.MustNewConstMetric(m.accessKeys, prometheus.GaugeValue, float64(n), key.issuer, key.ready)
	}
	ch <- prometheus.MustNewConstMetric(m.revocationsPending, prometheus.GaugeValue, float64(pending))
	if m.leftLive != nil {
		for _, k := range m.leftLive.List() {
			ch <- prometheus.MustNewConstMetric(m.unrevoked, prometheus.GaugeValue, 1, k.Namespace, k.Name, k.Issuer, k.Key)
		}
	}
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// eachAccessKey calls fn with every cached AccessKey, which fn must not
// change. It reads the informer's store in place: a List, even one that
// does not deep-copy, copies every AccessKey into the list, and a scrape of
// 10,000 of them made the manager's high-water mark.
func (m *Metrics) eachAccessKey(ctx context.Context, fn func(*iamv1beta1.AccessKey)) error {
	informer, err := m.cache.GetInformer(ctx, &iamv1beta1.AccessKey{}, cache.BlockUntilSynced(false))
	if err != nil {
		return err
	}
	store, ok := informer.(interface{ GetStore() toolscache.Store })
	if !ok {
		return fmt.Errorf("the AccessKey informer (%T) has no store to read", informer)
	}
	if !informer.HasSynced() {
		return errors.New("the AccessKey informer has not synced")
	}
	for _, obj := range store.GetStore().List() {
		if ak, ok := obj.(*iamv1beta1.AccessKey); ok {
			fn(ak)
		}
	}
	return nil
}
