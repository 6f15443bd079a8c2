package controller

import (
	"context"
	"fmt"
	"sync"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/exokey/exokey/internal/crds"
)

// The controllers read the CRDs (the gate, the certificate's issuer), keep
// exokey's CRDs' caBundle current (conversion webhook) and trim their
// storedVersions after moving stored objects (cmd/main.go).
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=get;list;watch
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=update;patch,resourceNames=accesskeys.iam.exokey.io;keyissuers.iam.exokey.io;clusterkeyissuers.iam.exokey.io
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions/status,verbs=patch,resourceNames=accesskeys.iam.exokey.io;keyissuers.iam.exokey.io;clusterkeyissuers.iam.exokey.io

// ReasonCRDOutdated: the installed CRDs lack fields this manager writes.
// Nothing is reconciled until this release's CRDs are applied: the API
// server would prune those fields from every write (status.pending among
// them, the record that keeps a create from leaking a key).
const ReasonCRDOutdated = "CRDOutdated"

// CRDGate holds the controllers while the installed CRDs lack what the
// manager writes (docs/operations/sizing-and-upgrades.md). It checks at
// Check, and then every Period on every replica, so it opens within a
// period of the new CRDs being applied, and closes if they are replaced by
// older ones.
type CRDGate struct {
	// Reader reads CRDs from the API server.
	Reader client.Reader
	// Builtin are the CRDs the manager was built with.
	Builtin []*apiextensionsv1.CustomResourceDefinition
	// Period between checks (30s).
	Period time.Duration

	mu       sync.RWMutex
	outdated string
	unserved []string
}

// Unserved lists the CRDs that do not serve a version the manager reads,
// as of the last check: the controllers cannot start on them.
func (g *CRDGate) Unserved() []string {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.unserved
}

// crdCheckTimeout bounds one check: three reads of the API server.
const crdCheckTimeout = 30 * time.Second

// Check reads the installed CRDs now, and logs what changed. A check that
// fails leaves the gate as it was.
func (g *CRDGate) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, crdCheckTimeout)
	defer cancel()
	outdated, unserved, err := crds.Outdated(ctx, g.Reader, g.Builtin)
	if err != nil {
		return err
	}
	g.mu.Lock()
	was := g.outdated
	g.outdated, g.unserved = outdated, unserved
	g.mu.Unlock()
	log := logf.FromContext(ctx).WithName("crds")
	switch {
	case outdated != "" && outdated != was:
		log.Error(nil, "the installed CRDs lack fields this manager writes: nothing is reconciled until this release's CRDs are applied", "missing", outdated)
	case outdated == "" && was != "":
		log.Info("the installed CRDs hold every field this manager writes: reconciling")
	}
	return nil
}

// Start checks every Period until ctx ends.
func (g *CRDGate) Start(ctx context.Context) error {
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		if err := g.Check(ctx); err != nil {
			logf.FromContext(ctx).WithName("crds").Error(err, "checking the installed CRDs")
		}
	}, g.period())
	return nil
}

// NeedLeaderElection: every replica checks, as every replica's webhook
// and controllers (once leading) depend on it.
func (g *CRDGate) NeedLeaderElection() bool { return false }

func (g *CRDGate) period() time.Duration {
	if g.Period > 0 {
		return g.Period
	}
	return 30 * time.Second
}

// Refusal says why nothing may be reconciled, or "" when all is current.
// A nil gate refuses nothing.
func (g *CRDGate) Refusal() string {
	if g == nil {
		return ""
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.outdated == "" {
		return ""
	}
	return fmt.Sprintf("the installed CRDs lack fields this manager writes (%s): apply this release's CRDs (helm upgrade, or kubectl apply of the installer)", g.outdated)
}

// refuseOutdated sets Ready False (CRDOutdated) on conditions, with
// Stalled: only an admin's apply of the CRDs mends it.
func refuseOutdated(conditions *[]metav1.Condition, at time.Time, generation int64, message string) {
	setCondition(conditions, at, generation, ConditionReady, metav1.ConditionFalse, ReasonCRDOutdated, message)
	summarize(conditions, at, generation, true, ReasonCRDOutdated, message)
}
