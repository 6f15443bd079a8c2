package v1beta1

// v1beta1 is the hub of the API's versions: it is stored, and every other
// version converts to and from it (api/v1alpha1/conversion.go).

// Hub marks AccessKey as the version others convert through.
func (*AccessKey) Hub() {}

// Hub marks KeyIssuer as the version others convert through.
func (*KeyIssuer) Hub() {}

// Hub marks ClusterKeyIssuer as the version others convert through.
func (*ClusterKeyIssuer) Hub() {}

// IsZero reports whether no issuer is recorded.
func (i MintingIssuer) IsZero() bool { return i == MintingIssuer{} }

// IsZero reports whether no create is in flight.
func (p PendingKey) IsZero() bool { return p == PendingKey{} }
