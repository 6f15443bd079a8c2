// Package plugin is kubectl exokey: import existing Exoscale keys as
// AccessKeys, ask what a key may do, see every AccessKey at a glance, and
// rotate one. It reads the cluster through the user's kubeconfig
// (k8s.io/cli-runtime) and decides with the operator's own compiler,
// policy evaluator and ceiling check.
package plugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/controller"
	"github.com/exokey/exokey/internal/exoscale"
	"github.com/exokey/exokey/internal/exoscale/catalog"
)

// Exit codes: 0 done (or "yes" for can-i), 1 "no" from can-i or a refusal
// such as an inexpressible policy, 2 an error (bad input, unreachable API).
const (
	ExitNo    = 1
	ExitError = 2
)

// Options are what every command shares.
type Options struct {
	genericiooptions.IOStreams
	ConfigFlags *genericclioptions.ConfigFlags
	// Exoscale is the base configuration of the backends the plugin
	// builds: rate limits, retries, timeouts.
	Exoscale exoscale.Config
	// Getenv reads EXOSCALE_* for --mine; os.Getenv unless a test sets it.
	Getenv func(string) string

	catalog *catalog.Catalog
}

// refusal is an answer the user asked for that is "no": can-i denied, a
// policy that cannot be imported. Its message, if any, is printed as is.
type refusal struct{ message string }

func (r *refusal) Error() string { return r.message }

// ExitCode maps an error from Execute to the plugin's exit code.
func ExitCode(err error) int {
	var no *refusal
	switch {
	case err == nil:
		return 0
	case errors.As(err, &no):
		return ExitNo
	default:
		return ExitError
	}
}

// NewCommand is `kubectl exokey` with its subcommands.
func NewCommand(o *Options) *cobra.Command {
	if o.ConfigFlags == nil {
		o.ConfigFlags = genericclioptions.NewConfigFlags(true)
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	o.catalog = catalog.Default()
	root := &cobra.Command{
		Use:   "kubectl-exokey",
		Short: "Work with exokey's AccessKeys and the Exoscale keys behind them",
		Long: `kubectl exokey imports existing Exoscale keys as AccessKeys, lists the operations
an issuer may grant, says whether an AccessKey's key may call an operation and
why, shows every AccessKey at a glance, rotates one, and moves stored objects
to a CRD's storage version.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl exokey"},
	}
	root.SetIn(o.In)
	root.SetOut(o.Out)
	root.SetErr(o.ErrOut)
	o.ConfigFlags.AddFlags(root.PersistentFlags())
	root.AddCommand(newImportCommand(o), newOperationsCommand(o), newCanICommand(o), newStatusCommand(o), newRotateCommand(o),
		newMigrateCommand(o))
	return root
}

// client is a Kubernetes client for exokey's objects, from the kubeconfig flags.
func (o *Options) client() (client.Client, error) {
	cfg, err := o.ConfigFlags.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := iamv1beta1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: scheme})
}

// clientIn is client and namespace.
func (o *Options) clientIn() (client.Client, string, error) {
	namespace, err := o.namespace()
	if err != nil {
		return nil, "", err
	}
	c, err := o.client()
	return c, namespace, err
}

// namespace is -n, or the kubeconfig context's namespace.
func (o *Options) namespace() (string, error) {
	namespace, _, err := o.ConfigFlags.ToRawKubeConfigLoader().Namespace()
	return namespace, err
}

// issuers builds backends from issuers' credentials Secrets, as the manager does.
func (o *Options) issuers(c client.Reader) *controller.IssuerClients {
	return &controller.IssuerClients{Reader: c, Base: o.Exoscale}
}

// parseIssuer reads KIND/NAME, e.g. ClusterKeyIssuer/exoscale or
// keyissuer/team-a; a bare NAME is a ClusterKeyIssuer, as in an AccessKey.
func parseIssuer(s string) (iamv1beta1.IssuerReference, error) {
	kind, name, found := strings.Cut(s, "/")
	if !found {
		kind, name = string(iamv1beta1.ClusterKeyIssuerKind), s
	}
	if name == "" {
		return iamv1beta1.IssuerReference{}, fmt.Errorf("--issuer %q: want KIND/NAME, e.g. ClusterKeyIssuer/exoscale", s)
	}
	switch strings.ToLower(kind) {
	case "clusterkeyissuer", "clusterkeyissuers":
		return iamv1beta1.IssuerReference{Kind: iamv1beta1.ClusterKeyIssuerKind, Name: name}, nil
	case "keyissuer", "keyissuers":
		return iamv1beta1.IssuerReference{Kind: iamv1beta1.KeyIssuerKind, Name: name}, nil
	}
	return iamv1beta1.IssuerReference{}, fmt.Errorf("--issuer %q: the kind is ClusterKeyIssuer or KeyIssuer", s)
}

// outputFormat checks -o: empty (text), yaml or json.
func outputFormat(format string) error {
	switch format {
	case "", "yaml", "json":
		return nil
	}
	return fmt.Errorf("--output %q: want yaml or json", format)
}

// printData writes v as YAML or JSON.
func printData(out io.Writer, format string, v any) error {
	if format == "json" {
		encoder := json.NewEncoder(out)
		encoder.SetIndent("", "  ")
		return encoder.Encode(v)
	}
	raw, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	_, err = out.Write(raw)
	return err
}

func addOutputFlag(cmd *cobra.Command, format *string) {
	cmd.Flags().StringVarP(format, "output", "o", "", "Output format: yaml or json (text when empty)")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"yaml", "json"}, cobra.ShellCompDirectiveNoFileComp))
}
