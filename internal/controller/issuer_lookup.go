package controller

import (
	"context"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/exoscale"
)

// LookupIssuer reads the issuer ref names for an AccessKey in namespace and
// returns its spec. Tools beside the manager (kubectl exokey) use it.
func LookupIssuer(ctx context.Context, c client.Reader, ref iamv1beta1.IssuerReference, namespace string) (iamv1beta1.IssuerSpec, error) {
	iss, err := getIssuer(ctx, c, ref, namespace)
	if err != nil {
		return iamv1beta1.IssuerSpec{}, err
	}
	return iss.Spec, nil
}

// IssuerKeys reads the issuer ref names and returns its spec and a backend
// built from its credentials Secret, with the endpoint checks the manager
// makes before it mints: a tool signs with the same credentials, at the
// same endpoint, or not at all.
func (c *IssuerClients) IssuerKeys(ctx context.Context, ref iamv1beta1.IssuerReference, namespace string) (iamv1beta1.IssuerSpec, exoscale.Keys, error) {
	iss, err := getIssuer(ctx, c.Reader, ref, namespace)
	if err != nil {
		return iamv1beta1.IssuerSpec{}, nil, err
	}
	if err := checkEndpoint(iss.Spec); err != nil {
		return iss.Spec, nil, fmt.Errorf("%s %q: %w", iss.Kind, iss.Key.Name, err)
	}
	keys, err := c.refresh(ctx, iss)
	return iss.Spec, keys, err
}
