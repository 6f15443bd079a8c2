package plugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/controller"
	"github.com/exokey/exokey/internal/exoscale"
	"github.com/exokey/exokey/internal/exoscale/catalog"
	"github.com/exokey/exokey/internal/exoscale/policy"
)

type importOptions struct {
	*Options
	issuer   string
	name     string
	fromFile string
	output   string
}

func newImportCommand(o *Options) *cobra.Command {
	opts := &importOptions{Options: o}
	cmd := &cobra.Command{
		Use:   "import (KEY_ID | --from-file POLICY.json) --issuer KIND/NAME [--name NAME]",
		Short: "Print an AccessKey manifest with the restrictions of an existing Exoscale key",
		Long: `Import reads an existing Exoscale key through an issuer's credentials (a legacy
access key's operations, tags and resources, or an IAM v3 API key's role policy)
and prints an AccessKey manifest that asks for the same restrictions, ready to
apply. With --from-file it reads an IAM v3 policy (or a role holding one) as JSON
instead. A policy with a rule exokey does not compile to is refused, naming the
rule: nothing is widened or narrowed silently.

The imported key keeps working until it is revoked: exokey mints its own key.`,
		Example: `  # Start an AccessKey from an existing key, then apply it
  kubectl exokey import EXO1234567890abcdef12345678 --issuer ClusterKeyIssuer/exoscale -n backups --name backup-writer > ak.yaml
  kubectl apply -f ak.yaml

  # From a role's policy exported with the exo CLI
  exo iam role show backup-writer -O json > role.json
  kubectl exokey import --from-file role.json --issuer KeyIssuer/team-a -n team-a --name backup-writer`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return opts.run(cmd, args) },
	}
	cmd.Flags().StringVar(&opts.issuer, "issuer", "", "Issuer of the AccessKey and whose credentials read the key, as KIND/NAME")
	cmd.Flags().StringVar(&opts.name, "name", "", "Name of the AccessKey (default: the key's name, made a valid object name)")
	cmd.Flags().StringVar(&opts.fromFile, "from-file", "", "Read an IAM v3 policy, or a role with one, from this JSON file (- for stdin)")
	addOutputFlag(cmd, &opts.output)
	_ = cmd.MarkFlagRequired("issuer")
	return cmd
}

func (o *importOptions) run(cmd *cobra.Command, args []string) error {
	if err := outputFormat(o.output); err != nil {
		return err
	}
	if (len(args) == 1) == (o.fromFile != "") {
		return errors.New("give a KEY_ID or --from-file, not both nor neither")
	}
	if o.fromFile != "" && o.name == "" {
		return errors.New("--from-file needs --name: a policy carries no name")
	}
	ref, err := parseIssuer(o.issuer)
	if err != nil {
		return err
	}
	c, namespace, err := o.clientIn()
	if err != nil {
		return err
	}
	ctx := cmd.Context()

	var issuerSpec iamv1beta1.IssuerSpec
	var spec exoscale.KeySpec
	var source string
	if o.fromFile != "" {
		source = o.fromFile
		if issuerSpec, err = controller.LookupIssuer(ctx, c, ref, namespace); err != nil {
			return fmt.Errorf("%s %q: %w", ref.Kind, ref.Name, err)
		}
		p, err := readPolicy(o.In, o.fromFile)
		if err != nil {
			return err
		}
		if spec, err = exoscale.DecompilePolicy(p, o.catalog); err != nil {
			return importRefusal(source, err)
		}
	} else {
		source = "key " + args[0]
		var keys exoscale.Keys
		if issuerSpec, keys, err = o.issuers(c).IssuerKeys(ctx, ref, namespace); err != nil {
			return fmt.Errorf("%s %q: %w", ref.Kind, ref.Name, err)
		}
		if spec, err = keys.Describe(ctx, args[0]); err != nil {
			if errors.Is(err, exoscale.ErrNotFound) {
				return fmt.Errorf("key %s: not found through %s %q", args[0], ref.Kind, ref.Name)
			}
			return importRefusal(source, err)
		}
	}

	name := o.name
	if name == "" {
		name = objectName(spec.Name)
	}
	ak := &iamv1beta1.AccessKey{
		TypeMeta:   metav1.TypeMeta{APIVersion: iamv1beta1.GroupVersion.String(), Kind: "AccessKey"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: iamv1beta1.AccessKeySpec{IssuerRef: ref, Operations: spec.Operations, Tags: spec.Tags,
			Resources: spec.Resources},
	}
	if spec.Unrestricted {
		ak.Spec.Access = iamv1beta1.AccessUnrestricted
	}
	for _, warning := range o.wouldRefuse(ak, ref, issuerSpec) {
		fmt.Fprintln(o.ErrOut, "warning:", warning)
	}
	note := ""
	if len(args) == 1 {
		note = fmt.Sprintf("The imported key %[1]s keeps working until it is revoked. Once the AccessKey is Ready\n"+
			"and its workloads use the new Secret, revoke it with `exo iam api-key delete %[1]s` (IAM v3)\n"+
			"or `exo iam access-key revoke %[1]s` (a legacy access key).", args[0])
	}
	if vocabulary := o.vocabularyOf(spec.Operations); vocabulary != "" {
		note = strings.TrimPrefix(note+"\n"+vocabulary, "\n")
	}
	return o.print(ak, source, ref, note)
}

// vocabularyOf says which API's names the operations are in, when S3 is
// among them: the role of an IAM v3 key names S3 actions, a legacy key
// legacy names, and both are accepted by an IAMv3 issuer.
func (o *importOptions) vocabularyOf(operations []string) string {
	for _, name := range operations {
		switch op, _ := o.catalog.Lookup(name); op.Vocabulary {
		case catalog.V3:
			return "Operations are IAM v3 names, as the key's role policy has them (S3 actions such as get-object):\nan AccessKeyV2 issuer needs the legacy names (kubectl exokey operations --api AccessKeyV2)."
		case catalog.Legacy:
			return "Operations are legacy access-key names (get-sos-object): an IAMv3 issuer compiles them to S3 actions."
		}
	}
	return ""
}

// wouldRefuse lists why the issuer would refuse the manifest: its ceiling,
// or what its API cannot express.
func (o *importOptions) wouldRefuse(ak *iamv1beta1.AccessKey, ref iamv1beta1.IssuerReference, issuerSpec iamv1beta1.IssuerSpec) []string {
	var warnings []string
	if err := controller.CheckCeiling(ak.Spec, issuerSpec.Allowed, o.catalog); err != nil {
		warnings = append(warnings, fmt.Sprintf("%s %q would refuse this AccessKey (NotPermitted): beyond its ceiling: %v", ref.Kind, ref.Name, err))
	}
	if err := controller.CheckRestrictions(ak, issuerSpec.API, o.catalog); err != nil {
		warnings = append(warnings, fmt.Sprintf("%s %q (%s) would refuse this AccessKey: %v", ref.Kind, ref.Name, issuerSpec.API, err))
	}
	return warnings
}

// print writes the manifest; the note is a YAML comment, or goes to
// stderr beside JSON.
func (o *importOptions) print(ak *iamv1beta1.AccessKey, source string, ref iamv1beta1.IssuerReference, note string) error {
	if o.output == "json" {
		if note != "" {
			fmt.Fprintln(o.ErrOut, "note:", note)
		}
		return printData(o.Out, "json", ak)
	}
	raw, err := yaml.Marshal(ak)
	if err != nil {
		return err
	}
	fmt.Fprintf(o.Out, "# Imported from %s through %s/%s.\n# exokey mints its own key for this AccessKey: the imported key is not taken over.\n", source, ref.Kind, ref.Name)
	if note != "" {
		fmt.Fprintf(o.Out, "# %s\n", strings.ReplaceAll(note, "\n", "\n# "))
	}
	_, err = o.Out.Write(withoutEmptyStatus(raw))
	return err
}

// withoutEmptyStatus drops the zero status and creationTimestamp that a
// typed object marshals: a manifest to apply has neither.
func withoutEmptyStatus(raw []byte) []byte {
	var lines []string
	for _, line := range strings.Split(string(raw), "\n") {
		if line == "status: {}" || strings.TrimSpace(line) == "creationTimestamp: null" {
			continue
		}
		lines = append(lines, line)
	}
	return []byte(strings.Join(lines, "\n"))
}

// importRefusal turns a policy that cannot be expressed into a "no" (exit
// 1) that says so; other errors stay errors.
func importRefusal(source string, err error) error {
	var inexpressible *exoscale.InexpressibleError
	if errors.As(err, &inexpressible) {
		return &refusal{message: fmt.Sprintf("%s cannot be imported: %v", source, err)}
	}
	return fmt.Errorf("%s: %w", source, err)
}

// readPolicy reads a policy, or a role (as `exo iam role show -O json`
// prints it) holding one, from a file or stdin.
func readPolicy(stdin io.Reader, path string) (policy.Policy, error) {
	var raw []byte
	var err error
	if path == "-" {
		raw, err = io.ReadAll(stdin)
	} else {
		raw, err = os.ReadFile(path)
	}
	if err != nil {
		return policy.Policy{}, err
	}
	var role struct {
		Policy *policy.Policy `json:"policy"`
	}
	if err := json.Unmarshal(raw, &role); err != nil {
		return policy.Policy{}, fmt.Errorf("%s: not a JSON policy: %w", path, err)
	}
	if role.Policy != nil {
		return *role.Policy, nil
	}
	var p policy.Policy
	if err := json.Unmarshal(raw, &p); err != nil {
		return policy.Policy{}, fmt.Errorf("%s: not a JSON policy: %w", path, err)
	}
	if p.DefaultServiceStrategy == "" && len(p.Services) == 0 {
		return policy.Policy{}, fmt.Errorf("%s: no default-service-strategy or services: not an IAM v3 policy", path)
	}
	return p, nil
}

var notInName = regexp.MustCompile(`[^a-z0-9.-]+`)

// objectName makes a key name a valid object name: lower case, other
// characters dashes, at most 253 characters.
func objectName(keyName string) string {
	name := notInName.ReplaceAllString(strings.ToLower(keyName), "-")
	if len(name) > 253 {
		name = name[:253]
	}
	name = strings.Trim(name, "-.")
	if name == "" {
		return "imported-key"
	}
	return name
}
