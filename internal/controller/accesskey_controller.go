package controller

import (
	"context"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	iamv1alpha1 "github.com/exokey/exokey/api/v1alpha1"
)

// AccessKeyReconciler turns AccessKeys into restricted Exoscale keys
// published in Secrets.
type AccessKeyReconciler struct {
	client.Client
}

// +kubebuilder:rbac:groups=iam.exokey.io,resources=accesskeys,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=iam.exokey.io,resources=accesskeys/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=iam.exokey.io,resources=accesskeys/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one AccessKey to its desired state.
func (r *AccessKeyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	logf.FromContext(ctx).V(1).Info("reconciling AccessKey")
	return ctrl.Result{}, nil
}

// SetupWithManager registers the reconciler with the manager.
func (r *AccessKeyReconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&iamv1alpha1.AccessKey{}).
		WithOptions(opts).
		Named("accesskey").
		Complete(r)
}
