package plugin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/controller"
	"github.com/exokey/exokey/internal/exoscale"
	"github.com/exokey/exokey/internal/exoscale/catalog"
)

type operationsOptions struct {
	*Options
	issuer string
	tag    string
	mine   bool
	api    string
	output string
}

// serviceOperations is one tag's part of the answer.
type serviceOperations struct {
	Service string `json:"service"`
	// Whole: the tag itself may be granted (with --issuer), or is held
	// whole (with --mine); always true for the plain catalogue.
	Whole      bool     `json:"whole"`
	Operations []string `json:"operations"`
}

// operationsAnswer is what `operations` prints with -o.
type operationsAnswer struct {
	// Source is the catalogue, an issuer or the key of the environment.
	Source string `json:"source"`
	// Resources are the issuer's allowed resource patterns.
	Resources []string `json:"resources,omitempty"`
	// Vocabulary names the operations' vocabulary: IAM v3 (classes, S3
	// actions) or legacy access-key (tags, legacy S3 names).
	Vocabulary string              `json:"vocabulary"`
	Services   []serviceOperations `json:"services"`
}

func newOperationsCommand(o *Options) *cobra.Command {
	opts := &operationsOptions{Options: o}
	cmd := &cobra.Command{
		Use:   "operations [--tag TAG] [--issuer KIND/NAME | --mine]",
		Short: "List Exoscale operations by tag: the catalogue, what an issuer may grant, or what your key holds",
		Long: `Operations lists the operation catalogue grouped by tag (service).

With --issuer it lists what the issuer may grant: the operations its ceiling
(spec.allowed) allows and its own key holds, read with its credentials.
With --mine it lists what the key in EXOSCALE_API_KEY and EXOSCALE_API_SECRET
holds (endpoint from EXOSCALE_API_ENDPOINT or EXOSCALE_ZONE), like
exo iam access-key list-operations --mine.`,
		Example: `  kubectl exokey operations --tag sos
  kubectl exokey operations --issuer ClusterKeyIssuer/exoscale
  kubectl exokey operations --issuer KeyIssuer/team-a -n team-a -o json
  EXOSCALE_API_KEY=EXO... EXOSCALE_API_SECRET=... kubectl exokey operations --mine`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return opts.run(cmd.Context()) },
	}
	cmd.Flags().StringVar(&opts.issuer, "issuer", "", "List what this issuer may grant, as KIND/NAME")
	cmd.Flags().StringVar(&opts.tag, "tag", "", "Only this tag (service), e.g. sos or compute")
	cmd.Flags().BoolVar(&opts.mine, "mine", false, "List what the key in EXOSCALE_API_KEY/EXOSCALE_API_SECRET holds")
	cmd.Flags().StringVar(&opts.api, "api", exoscale.APIIAMv3, "The vocabulary of the answer (IAMv3: classes and S3 actions; AccessKeyV2: tags and legacy names), and with --mine the API of the key")
	cmd.MarkFlagsMutuallyExclusive("issuer", "mine")
	_ = cmd.RegisterFlagCompletionFunc("tag", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return append(o.catalog.Classes(), o.catalog.Tags()...), cobra.ShellCompDirectiveNoFileComp
	})
	addOutputFlag(cmd, &opts.output)
	return cmd
}

func (o *operationsOptions) run(ctx context.Context) error {
	if err := outputFormat(o.output); err != nil {
		return err
	}
	api := o.api
	var issuerHeld map[string]bool
	var issuerAllowed iamv1beta1.Allowed
	if o.issuer != "" {
		var err error
		if issuerHeld, issuerAllowed, api, err = o.issuerGrants(ctx); err != nil {
			return err
		}
	}
	// IAM v3 groups operations by the class the server judges them under,
	// and names S3 by its actions; legacy keys by tags, with legacy names.
	v3 := api != exoscale.APIAccessKeyV2
	services, members := o.catalog.Classes(), o.catalog.ClassOperations
	if !v3 {
		services, members = o.catalog.Tags(), o.catalog.TagOperations
	}
	if o.tag != "" {
		tag := catalog.NormalizeTag(strings.ToLower(o.tag))
		if !slices.Contains(services, tag) {
			return fmt.Errorf("unknown tag %q: in the %s vocabulary the tags are %s", o.tag, vocabularyOf(iamv1beta1.IssuerAPI(api)), strings.Join(services, ", "))
		}
		services = []string{tag}
	}

	answer := operationsAnswer{Source: "the catalogue", Vocabulary: vocabularyOf(iamv1beta1.IssuerAPI(api))}
	grantable := func(string) bool { return true }
	wholeGrantable := func(string) bool { return true }
	switch {
	case o.issuer != "":
		held, allowed := issuerHeld, issuerAllowed
		answer.Source, answer.Resources = o.issuer, allowed.Resources
		grantable = func(name string) bool {
			spec := iamv1beta1.AccessKeySpec{Operations: []string{name}}
			return held[name] && controller.CheckCeiling(spec, iamv1beta1.Allowed{Operations: allowed.Operations, Tags: allowed.Tags}, o.catalog) == nil
		}
		wholeGrantable = func(service string) bool {
			spec := iamv1beta1.AccessKeySpec{Tags: []string{service}}
			return holdsAll(held, members(service)) &&
				controller.CheckCeiling(spec, iamv1beta1.Allowed{Tags: allowed.Tags}, o.catalog) == nil
		}
	case o.mine:
		held, err := o.heldByMine(ctx)
		if err != nil {
			return err
		}
		answer.Source = "the key in EXOSCALE_API_KEY"
		grantable = func(name string) bool { return held[name] }
		wholeGrantable = func(service string) bool { return holdsAll(held, members(service)) }
	}

	for _, service := range services {
		group := serviceOperations{Service: service, Whole: wholeGrantable(service), Operations: []string{}}
		for _, name := range members(service) {
			if grantable(name) {
				group.Operations = append(group.Operations, name)
			}
		}
		if len(group.Operations) > 0 {
			answer.Services = append(answer.Services, group)
		}
	}
	if o.output != "" {
		return printData(o.Out, o.output, answer)
	}
	return o.printText(answer)
}

func (o *operationsOptions) printText(answer operationsAnswer) error {
	total := 0
	for _, group := range answer.Services {
		total += len(group.Operations)
	}
	fmt.Fprintf(o.Out, "# in the %s vocabulary\n", answer.Vocabulary)
	switch {
	case o.issuer != "":
		fmt.Fprintf(o.Out, "# %s may grant %d operations (its ceiling, and what its key holds)\n", answer.Source, total)
		if len(answer.Resources) > 0 {
			fmt.Fprintf(o.Out, "# sos operations only on buckets matching %s\n", strings.Join(answer.Resources, ", "))
		}
	case o.mine:
		fmt.Fprintf(o.Out, "# %s holds %d operations\n", answer.Source, total)
	}
	for _, group := range answer.Services {
		whole := ""
		if group.Whole && (o.issuer != "" || o.mine) {
			whole = ", the whole tag"
		}
		fmt.Fprintf(o.Out, "%s (%d operations%s)\n", group.Service, len(group.Operations), whole)
		for _, name := range group.Operations {
			fmt.Fprintf(o.Out, "  %s\n", name)
		}
	}
	return nil
}

// issuerGrants reads what the issuer's key holds, with its credentials,
// and its ceiling.
func (o *operationsOptions) issuerGrants(ctx context.Context) (map[string]bool, iamv1beta1.Allowed, string, error) {
	ref, err := parseIssuer(o.issuer)
	if err != nil {
		return nil, iamv1beta1.Allowed{}, "", err
	}
	c, namespace, err := o.clientIn()
	if err != nil {
		return nil, iamv1beta1.Allowed{}, "", err
	}
	spec, keys, err := o.issuers(c).IssuerKeys(ctx, ref, namespace)
	if err != nil {
		return nil, iamv1beta1.Allowed{}, "", fmt.Errorf("%s %q: %w", ref.Kind, ref.Name, err)
	}
	held, err := keys.Grantable(ctx)
	if err != nil {
		return nil, iamv1beta1.Allowed{}, "", fmt.Errorf("%s %q: what its key holds: %w", ref.Kind, ref.Name, err)
	}
	api := string(spec.API)
	if api == "" {
		api = exoscale.APIIAMv3
	}
	return asSet(held.Operations), spec.Allowed, api, nil
}

// heldByMine asks what the key of the environment holds.
func (o *operationsOptions) heldByMine(ctx context.Context) (map[string]bool, error) {
	getenv := o.Getenv
	cfg := o.Exoscale
	cfg.API, cfg.Key, cfg.Secret = o.api, getenv("EXOSCALE_API_KEY"), exoscale.Secret(getenv("EXOSCALE_API_SECRET"))
	cfg.Endpoint, cfg.Zone = getenv("EXOSCALE_API_ENDPOINT"), getenv("EXOSCALE_ZONE")
	if cfg.Key == "" || cfg.Secret == "" {
		return nil, errors.New("--mine reads the key from EXOSCALE_API_KEY and EXOSCALE_API_SECRET: set both")
	}
	if cfg.API != exoscale.APIIAMv3 && cfg.API != exoscale.APIAccessKeyV2 {
		return nil, fmt.Errorf("--api %q: want IAMv3 or AccessKeyV2", cfg.API)
	}
	keys, err := exoscale.New(cfg)
	if err != nil {
		return nil, err
	}
	held, err := keys.Grantable(ctx)
	if err != nil {
		return nil, fmt.Errorf("what the key %s holds: %w", cfg.Key, err)
	}
	return asSet(held.Operations), nil
}

func asSet(names []string) map[string]bool {
	set := make(map[string]bool, len(names))
	for _, name := range names {
		set[name] = true
	}
	return set
}

func holdsAll(held map[string]bool, names []string) bool {
	return !slices.ContainsFunc(names, func(name string) bool { return !held[name] })
}
