package plugin

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/controller"
)

type rotateOptions struct {
	*Options
	wait    bool
	timeout time.Duration
}

func newRotateCommand(o *Options) *cobra.Command {
	opts := &rotateOptions{Options: o}
	cmd := &cobra.Command{
		Use:   "rotate ACCESSKEY [--wait]",
		Short: "Replace an AccessKey's key now",
		Long: `Rotate sets the AccessKey's iam.exokey.io/rotate annotation to a fresh value:
exokey mints a new key, publishes it in the Secret and revokes the old one after
the grace period. With --wait it returns once the new key is published.`,
		Example: `  kubectl exokey rotate backup-writer -n backups --wait`,
		Args:    cobra.ExactArgs(1),
		RunE:    func(cmd *cobra.Command, args []string) error { return opts.run(cmd.Context(), args[0]) },
	}
	cmd.Flags().BoolVar(&opts.wait, "wait", false, "Wait until the new key is published")
	cmd.Flags().DurationVar(&opts.timeout, "timeout", 5*time.Minute, "How long --wait waits")
	return cmd
}

func (o *rotateOptions) run(ctx context.Context, name string) error {
	c, namespace, err := o.clientIn()
	if err != nil {
		return err
	}
	key := types.NamespacedName{Namespace: namespace, Name: name}
	ak := &iamv1beta1.AccessKey{}
	if err := c.Get(ctx, key, ak); err != nil {
		return err
	}
	oldKey := ak.Status.KeyID
	request := time.Now().UTC().Format(time.RFC3339Nano)
	patch := client.MergeFrom(ak.DeepCopy())
	if ak.Annotations == nil {
		ak.Annotations = map[string]string{}
	}
	ak.Annotations[iamv1beta1.RotateAnnotation] = request
	if err := c.Patch(ctx, ak, patch); err != nil {
		return fmt.Errorf("ask for a rotation: %w", err)
	}
	fmt.Fprintf(o.Out, "accesskey %s: rotation requested (%s=%s)\n", key, iamv1beta1.RotateAnnotation, request)
	if !o.wait {
		return nil
	}

	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	err = wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, key, ak); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		return ak.Status.RotateRequest == request && ak.Status.KeyID != "" && ak.Status.KeyID != oldKey &&
			meta.IsStatusConditionTrue(ak.Status.Conditions, controller.ConditionReady), nil
	})
	if err != nil {
		why := "no reason recorded"
		if ready := meta.FindStatusCondition(ak.Status.Conditions, controller.ConditionReady); ready != nil {
			why = ready.Reason + ": " + ready.Message
		}
		return fmt.Errorf("accesskey %s: the new key was not published within %s (%s)", key, o.timeout, why)
	}
	fmt.Fprintf(o.Out, "accesskey %s: key %s published in Secret %s", key, ak.Status.KeyID, ak.Status.SecretName)
	for _, retiring := range ak.Status.Retiring {
		if retiring.KeyID == oldKey {
			fmt.Fprintf(o.Out, "; %s is revoked at %s", oldKey, ptr.Deref(retiring.RevokeAt, metav1.Time{}).UTC().Format(time.RFC3339))
		}
	}
	fmt.Fprintln(o.Out)
	return nil
}
