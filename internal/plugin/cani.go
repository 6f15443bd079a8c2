package plugin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/controller"
	"github.com/exokey/exokey/internal/exoscale"
	"github.com/exokey/exokey/internal/exoscale/catalog"
	"github.com/exokey/exokey/internal/exoscale/policy"
)

type canIOptions struct {
	*Options
	bucket string
	quiet  bool
	output string
}

// verdict is what can-i answers.
type verdict struct {
	AccessKey string `json:"accessKey"`
	Operation string `json:"operation"`
	Bucket    string `json:"bucket,omitempty"`
	Allowed   bool   `json:"allowed"`
	// Reason is the rule or restriction that decides.
	Reason string `json:"reason"`
	// API is the issuer's API the restrictions were evaluated for.
	API iamv1beta1.IssuerAPI `json:"api"`
	// Note says when no live key holds these restrictions yet.
	Note string `json:"note,omitempty"`
	// AskedAs are the names the operation was evaluated under, when the
	// issuer's API calls it otherwise (get-sos-object on IAMv3 is
	// get-object and head-object).
	AskedAs []string `json:"askedAs,omitempty"`
	// DependsOn names the facts of the request the answer depends on
	// (source_ip, now, resources): the call may or may not be allowed.
	DependsOn []string `json:"dependsOn,omitempty"`
}

func newCanICommand(o *Options) *cobra.Command {
	opts := &canIOptions{Options: o}
	cmd := &cobra.Command{
		Use:   "can-i OPERATION ACCESSKEY [--bucket BUCKET]",
		Short: "Say whether an AccessKey's key may call an operation, and which rule or restriction decides",
		Long: `can-i evaluates an AccessKey's restrictions for one call with the compiler and
policy evaluator exokey mints with: on an IAMv3 issuer the role policy compiled
from the spec, on an AccessKeyV2 issuer the legacy key's operations, tags and
resources. It prints yes or no and why, and exits 0 for yes and 1 for no.

The answer is about the restrictions in the AccessKey's spec; when its key was
not yet minted from them (not Ready, or a change not yet applied), it says so.`,
		Example: `  kubectl exokey can-i put-sos-object backup-writer --bucket backups-prod -n backups
  kubectl exokey can-i list-instances backup-writer -n backups -q && echo allowed`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error { return opts.run(cmd.Context(), args[0], args[1]) },
	}
	cmd.Flags().StringVar(&opts.bucket, "bucket", "", "The SOS bucket the call names")
	cmd.Flags().BoolVarP(&opts.quiet, "quiet", "q", false, "Print nothing; the exit code answers")
	addOutputFlag(cmd, &opts.output)
	return cmd
}

func (o *canIOptions) run(ctx context.Context, operation, name string) error {
	if err := outputFormat(o.output); err != nil {
		return err
	}
	op, known := o.catalog.Lookup(operation)
	if !known {
		message := fmt.Sprintf("unknown operation %q", operation)
		if suggestion := o.catalog.Suggest(operation); suggestion != "" {
			message += fmt.Sprintf(": did you mean %q?", suggestion)
		}
		return fmt.Errorf("%s (kubectl exokey operations lists them)", message)
	}
	c, namespace, err := o.clientIn()
	if err != nil {
		return err
	}
	ak := &iamv1beta1.AccessKey{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, ak); err != nil {
		return err
	}
	api, err := o.apiOf(ctx, c, ak)
	if err != nil {
		return err
	}
	v := verdict{AccessKey: namespace + "/" + name, Operation: operation, Bucket: o.bucket, API: api}
	spec := controller.KeySpecOf(ak, "")
	if api == iamv1beta1.IssuerAPIAccessKeyV2 {
		restrictions, err := exoscale.Resolve(spec, o.catalog)
		if err != nil {
			return fmt.Errorf("the AccessKey's restrictions: %w", err)
		}
		if op.Vocabulary == catalog.V3 {
			legacy, ok := o.catalog.Lookup(o.catalog.LegacyName(op.Name))
			if !ok {
				return fmt.Errorf("%s is an IAM v3 S3 action that legacy access keys have no name for", op.Name)
			}
			v.AskedAs = []string{legacy.Name}
			op = legacy
		}
		v.Allowed, v.Reason = restrictions.Decide(op, o.bucket)
	} else {
		p, err := exoscale.CompilePolicy(spec, o.catalog)
		if err != nil {
			return fmt.Errorf("the AccessKey's restrictions: %w", err)
		}
		compiled, err := policy.Compile(p)
		if err != nil {
			return fmt.Errorf("the AccessKey's policy: %w", err)
		}
		params := map[string]any{}
		if o.bucket != "" {
			params["bucket"] = o.bucket
		}
		if op.Vocabulary == catalog.Legacy {
			v.AskedAs = op.S3Actions
		}
		levels := policy.Levels{Role: compiled}
		if levels.Organization, err = o.organizationPolicy(ctx, c, ak); err != nil {
			v.Note = "the organisation policy, a second gate, was not read (" + err.Error() + "): the answer is the role's"
		}
		v.Allowed, v.Reason, v.DependsOn = decideAll(levels, o.catalog, o.catalog.V3Actions(op.Name), ak.Status.KeyID, params)
	}
	if note := mintedNote(ak); note != "" {
		v.Note = strings.TrimPrefix(v.Note+"; "+note, "; ")
	}

	switch {
	case o.quiet:
	case o.output != "":
		if err := printData(o.Out, o.output, v); err != nil {
			return err
		}
	default:
		answer := "no"
		if v.Allowed {
			answer = "yes"
		}
		if len(v.DependsOn) > 0 {
			answer = "depends on " + strings.Join(v.DependsOn, ", ")
		}
		fmt.Fprintf(o.Out, "%s\n", answer)
		if len(v.AskedAs) > 0 {
			fmt.Fprintf(o.Out, "  asked as %s, in the %s vocabulary\n", strings.Join(v.AskedAs, ", "), vocabularyOf(v.API))
		}
		fmt.Fprintf(o.Out, "  %s (%s)\n", v.Reason, v.API)
		if v.Note != "" {
			fmt.Fprintf(o.Out, "  note: %s\n", v.Note)
		}
	}
	if !v.Allowed {
		return &refusal{}
	}
	return nil
}

// apiOf is the API of the key: the minting issuer's as status records it,
// else the issuer's the spec names.
func (o *canIOptions) apiOf(ctx context.Context, c client.Reader, ak *iamv1beta1.AccessKey) (iamv1beta1.IssuerAPI, error) {
	if !ak.Status.Issuer.IsZero() && ak.Status.Issuer.API != "" &&
		ak.Status.Issuer.Kind == ak.Spec.IssuerRef.Kind && ak.Status.Issuer.Name == ak.Spec.IssuerRef.Name {
		return ak.Status.Issuer.API, nil
	}
	spec, err := controller.LookupIssuer(ctx, c, ak.Spec.IssuerRef, ak.Namespace)
	if err != nil {
		return "", fmt.Errorf("the AccessKey's issuer %s %q: %w", ak.Spec.IssuerRef.Kind, ak.Spec.IssuerRef.Name, err)
	}
	if spec.API == "" {
		return iamv1beta1.IssuerAPIIAMv3, nil
	}
	return spec.API, nil
}

// mintedNote says when no live key holds the spec's restrictions.
func mintedNote(ak *iamv1beta1.AccessKey) string {
	ready := meta.FindStatusCondition(ak.Status.Conditions, "Ready")
	switch {
	case ready == nil || ready.Status != "True":
		reason := "not yet reconciled"
		if ready != nil {
			reason = ready.Reason
		}
		return fmt.Sprintf("the AccessKey is not Ready (%s): no key holds these restrictions yet", reason)
	case ak.Status.ObservedGeneration == nil || *ak.Status.ObservedGeneration != ak.Generation:
		return "the spec changed since the current key was minted: its replacement is on its way"
	}
	return ""
}

// decideAll judges each IAM v3 action an operation is (get-sos-object is
// get-object and head-object): allowed when every one is. Facts of the
// request the key will make (its address, the time) are unknown, so a
// verdict that needs them depends on them.
func decideAll(compiled policy.Decider, cat *catalog.Catalog, actions []string, keyID string, params map[string]any) (bool, string, []string) {
	var reasons []string
	for _, action := range actions {
		op, _ := cat.Lookup(action)
		decision := compiled.Decide(policy.Request{Class: op.Class, Operation: action, Parameters: params,
			APIKey: keyID, Unknown: policy.RequestFacts})
		reason := decision.Reason
		if len(actions) > 1 {
			reason = action + ": " + reason
		}
		if !decision.Allowed {
			return false, reason, decision.DependsOn
		}
		if !slices.Contains(reasons, decision.Reason) {
			reasons = append(reasons, decision.Reason)
		}
	}
	return true, strings.Join(reasons, "; "), nil
}

// vocabularyOf names the vocabulary an API speaks.
func vocabularyOf(api iamv1beta1.IssuerAPI) string {
	if api == iamv1beta1.IssuerAPIAccessKeyV2 {
		return "legacy access-key"
	}
	return "IAM v3"
}

// organizationPolicy reads the organisation policy through the AccessKey's
// issuer, for those who may read its credentials (an admin; a tenant may
// not, and is told the answer is the role's alone).
func (o *canIOptions) organizationPolicy(ctx context.Context, c client.Reader, ak *iamv1beta1.AccessKey) (*policy.Compiled, error) {
	_, keys, err := o.issuers(c).IssuerKeys(ctx, ak.Spec.IssuerRef, ak.Namespace)
	if err != nil {
		return nil, errors.New("the issuer's credentials could not be read")
	}
	org, err := exoscale.OrganizationPolicy(ctx, keys)
	if err != nil {
		return nil, fmt.Errorf("get-iam-organization-policy: %w", err)
	}
	return org, nil
}
