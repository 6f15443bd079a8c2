package plugin

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/exokey/exokey/internal/crds"
)

type migrateOptions struct {
	*Options
	storageVersion string
	settle         time.Duration
}

func newMigrateCommand(o *Options) *cobra.Command {
	opts := &migrateOptions{Options: o}
	cmd := &cobra.Command{
		Use:   "migrate [--storage-version VERSION]",
		Short: "Rewrite every stored AccessKey and issuer at the CRDs' storage version",
		Long: `Migrate rewrites every AccessKey, KeyIssuer and ClusterKeyIssuer at the storage
version of its CRD and trims the CRD's status.storedVersions to it, so an older
version can be dropped. The manager does this by itself after an upgrade; run it
where the manager may not (--migrate-storage=false).

With --storage-version v1alpha1 it prepares a rollback to a release that knows
v1alpha1 alone: it makes v1alpha1 the storage version, rewrites every object at
it while this release's webhook still converts, and then has the CRDs serve
v1alpha1 alone, without conversion, as that release's CRDs did. Roll back
right after (helm rollback): this release's controllers cannot read v1beta1
any longer. A helm upgrade to this release again brings its CRDs back.`,
		Example: `  kubectl exokey migrate
  kubectl exokey migrate --storage-version v1alpha1 && helm rollback exokey -n exokey-system`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return opts.run(cmd.Context()) },
	}
	cmd.Flags().DurationVar(&opts.settle, "settle", 5*time.Second, "How long to wait after changing the storage version before rewriting")
	cmd.Flags().StringVar(&opts.storageVersion, "storage-version", "", "Make this the storage version first, and serve it alone after (a rollback to v1alpha1)")
	return cmd
}

func (o *migrateOptions) run(ctx context.Context) error {
	cfg, err := o.ConfigFlags.ToRESTConfig()
	if err != nil {
		return err
	}
	scheme := runtime.NewScheme()
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		return err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	exokeyCRDs, err := crds.Names()
	if err != nil {
		return err
	}
	if o.storageVersion != "" {
		for _, name := range exokeyCRDs {
			if err := crds.SetStorageVersion(ctx, c, name, o.storageVersion); err != nil {
				return err
			}
		}
		// The API server takes up a CRD's new storage version as its CRD
		// informer sees the change: writes made before are stored at the
		// old one.
		fmt.Fprintf(o.Out, "storage version set to %s; waiting %s for the API server to take it up\n", o.storageVersion, o.settle)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(o.settle):
		}
	}
	for _, name := range exokeyCRDs {
		done, err := crds.Migrate(ctx, c, c, name)
		if err != nil {
			return err
		}
		fmt.Fprintf(o.Out, "%s: %d objects rewritten at %s; storedVersions %v, now [%s]\n", done.CRD, done.Objects, done.To, done.From, done.To)
		if o.storageVersion != "" {
			if err := crds.ServeOnly(ctx, c, name, o.storageVersion); err != nil {
				return err
			}
			fmt.Fprintf(o.Out, "%s: serves %s alone, without conversion\n", name, o.storageVersion)
		}
	}
	return nil
}
