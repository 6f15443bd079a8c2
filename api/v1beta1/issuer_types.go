package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// IssuerAPI is the Exoscale IAM API an issuer mints keys with.
// +kubebuilder:validation:Enum=IAMv3;AccessKeyV2
type IssuerAPI string

const (
	// IssuerAPIIAMv3 mints an IAM role with a policy and an API key bound to it.
	IssuerAPIIAMv3 IssuerAPI = "IAMv3"
	// IssuerAPIAccessKeyV2 mints a legacy restricted access key.
	IssuerAPIAccessKeyV2 IssuerAPI = "AccessKeyV2"
)

// CredentialsReference points at the Secret holding the issuer's own key.
type CredentialsReference struct {
	// name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name,omitempty"`
	// namespace of the Secret; ClusterKeyIssuer only (a KeyIssuer reads its own namespace).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// keyField is the Secret key holding the API key.
	// +kubebuilder:default=EXOSCALE_API_KEY
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +optional
	KeyField string `json:"keyField,omitempty"`
	// secretField is the Secret key holding the API secret.
	// +kubebuilder:default=EXOSCALE_API_SECRET
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +optional
	SecretField string `json:"secretField,omitempty"`
}

// Permission allows or denies something an issuer's admin decides.
// +kubebuilder:validation:Enum=Allow;Deny
type Permission string

const (
	// PermissionAllow allows it.
	PermissionAllow Permission = "Allow"
	// PermissionDeny denies it.
	PermissionDeny Permission = "Deny"
)

// Allowed is the ceiling of what an issuer may grant. Empty grants nothing.
// +kubebuilder:validation:MinProperties=1
type Allowed struct {
	// operations that may be granted, as glob patterns such as get-sos-*.
	// +kubebuilder:validation:MaxItems=512
	// +kubebuilder:validation:items:MaxLength=128
	// +listType=set
	// +optional
	Operations []string `json:"operations,omitempty"`
	// tags (services) that may be granted whole, as glob patterns.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=128
	// +listType=set
	// +optional
	Tags []string `json:"tags,omitempty"`
	// resources that may be named, as glob patterns such as sos/bucket:team-a-*.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=255
	// +listType=set
	// +optional
	Resources []string `json:"resources,omitempty"`
	// unrestricted is Allow to let AccessKeys ask for access: Unrestricted;
	// Deny (the default) refuses them.
	// +kubebuilder:default=Deny
	// +optional
	Unrestricted Permission `json:"unrestricted,omitempty"`
}

// IssuerLimits bound what one AccessKey may cost. They keep a tenant from
// holding many keys, or old keys for long.
// +kubebuilder:validation:MinProperties=1
type IssuerLimits struct {
	// maxGracePeriodSeconds caps rotation.gracePeriodSeconds of the AccessKeys.
	// +kubebuilder:default=3600
	// +kubebuilder:validation:Minimum=0
	// +optional
	MaxGracePeriodSeconds *int64 `json:"maxGracePeriodSeconds,omitempty"`
	// minRotationPeriodSeconds is the shortest rotation.everySeconds an
	// AccessKey may ask for.
	// +kubebuilder:default=3600
	// +kubebuilder:validation:Minimum=0
	// +optional
	MinRotationPeriodSeconds *int64 `json:"minRotationPeriodSeconds,omitempty"`
	// minSessionTTLSeconds is the shortest spec.ttlSeconds an AccessKey may
	// ask for: each renewal costs a call to Exoscale, a Secret write and a
	// roll of the restart targets, so a tenant cannot make them run every
	// second.
	// +kubebuilder:default=900
	// +kubebuilder:validation:Minimum=0
	// +optional
	MinSessionTTLSeconds *int64 `json:"minSessionTTLSeconds,omitempty"`
	// maxKeysPerAccessKey caps the live keys (current and retiring) of one
	// AccessKey; a replacement waits until a retiring key is revoked.
	// +kubebuilder:validation:Minimum=2
	// +kubebuilder:validation:Maximum=16
	// +kubebuilder:default=3
	// +optional
	MaxKeysPerAccessKey int32 `json:"maxKeysPerAccessKey,omitempty"`
	// beyondCeilingGraceSeconds is how long a key outlives a narrowed
	// ceiling or a namespace no longer selected (with keysBeyondCeiling
	// Revoke). The admin decides it, not the tenant: the AccessKey's
	// rotation.gracePeriodSeconds does not count. 0, the default, revokes
	// such a key at once.
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	// +optional
	BeyondCeilingGraceSeconds *int64 `json:"beyondCeilingGraceSeconds,omitempty"`
}

// BeyondCeilingPolicy says what happens to a key that an issuer's narrowed
// ceiling or namespace selection no longer allows.
// +kubebuilder:validation:Enum=Revoke;Keep
type BeyondCeilingPolicy string

const (
	// BeyondCeilingRevoke revokes such a key after limits.beyondCeilingGraceSeconds.
	BeyondCeilingRevoke BeyondCeilingPolicy = "Revoke"
	// BeyondCeilingKeep keeps it until the AccessKey changes or is deleted.
	BeyondCeilingKeep BeyondCeilingPolicy = "Keep"
)

// IssuerSpec is where keys come from and how far they may reach.
type IssuerSpec struct {
	// api is the Exoscale IAM API keys are minted with.
	// +kubebuilder:default=IAMv3
	// +optional
	API IssuerAPI `json:"api,omitempty"`

	// zone whose API endpoint is used; IAM is global, any zone serves it.
	// +kubebuilder:validation:Enum=at-vie-1;at-vie-2;bg-sof-1;ch-dk-2;ch-gva-2;de-fra-1;de-muc-1;hr-zag-1
	// +kubebuilder:default=ch-gva-2
	// +optional
	Zone string `json:"zone,omitempty"`

	// endpoint overrides the zone's API endpoint, e.g. an emulator's
	// http://127.0.0.1:8080/v2. Plain http is accepted for loopback only,
	// unless insecureEndpoint is Allow.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://[^\s]+$`
	// +optional
	Endpoint string `json:"endpoint,omitempty"`

	// sosEndpoint is the Object Storage (S3) endpoint the minted keys use,
	// written into the AWS format's AWS_ENDPOINT_URL_S3 and the Exoscale
	// format's EXOSCALE_SOS_ENDPOINT; default https://sos-<zone>.exo.io.
	// Plain http follows the same rule as endpoint.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://[^\s]+$`
	// +optional
	SOSEndpoint string `json:"sosEndpoint,omitempty"`

	// insecureEndpoint is Allow to accept an endpoint over plain http beyond
	// loopback, where the issuer's signed requests and the minted secrets
	// travel unencrypted; Deny (the default) refuses it.
	// +kubebuilder:default=Deny
	// +optional
	InsecureEndpoint Permission `json:"insecureEndpoint,omitempty"`

	// credentialsRef is the Secret holding the issuer's own key and secret.
	// +required
	CredentialsRef CredentialsReference `json:"credentialsRef,omitzero"`

	// keyNamePrefix starts the name of every key this issuer mints.
	// +kubebuilder:default=k8s
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?$`
	// +optional
	KeyNamePrefix string `json:"keyNamePrefix,omitempty"`

	// allowed is the ceiling of what AccessKeys may be granted; empty
	// grants nothing.
	// +kubebuilder:default={unrestricted: Deny}
	// +optional
	Allowed Allowed `json:"allowed,omitzero"`

	// limits bound what one AccessKey may cost.
	// +kubebuilder:default={maxKeysPerAccessKey: 3}
	// +optional
	Limits IssuerLimits `json:"limits,omitzero"`

	// allowedDeletionPolicies are the deletionPolicy values AccessKeys may
	// use. Orphan leaves a live key behind the AccessKey, so it must be
	// allowed explicitly.
	// +kubebuilder:default={Delete}
	// +kubebuilder:validation:MaxItems=2
	// +listType=set
	// +optional
	AllowedDeletionPolicies []DeletionPolicy `json:"allowedDeletionPolicies,omitempty"`

	// keysBeyondCeiling is Revoke (the default: revoke, after
	// limits.beyondCeilingGraceSeconds, a key that a narrowed ceiling or
	// namespace selection no longer allows) or Keep (leave it until the
	// AccessKey changes).
	// +kubebuilder:default=Revoke
	// +optional
	KeysBeyondCeiling BeyondCeilingPolicy `json:"keysBeyondCeiling,omitempty"`
}

// Ceiling is what an issuer's allowed patterns expand to in the catalogue.
type Ceiling struct {
	// operations is how many catalogue operations may be granted.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Operations *int32 `json:"operations,omitempty"`
	// services may be granted whole.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=64
	// +listType=set
	// +optional
	Services []string `json:"services,omitempty"`
	// iamOperations are the IAM administration operations that may be
	// granted: only those named explicitly, never through a wildcard.
	// +kubebuilder:validation:MaxItems=512
	// +kubebuilder:validation:items:MaxLength=64
	// +listType=set
	// +optional
	IAMOperations []string `json:"iamOperations,omitempty"`
}

// Availability says whether an issuer can do something.
// +kubebuilder:validation:Enum=Available;Unavailable
type Availability string

const (
	// Available: the issuer can.
	Available Availability = "Available"
	// Unavailable: the issuer cannot.
	Unavailable Availability = "Unavailable"
)

// IssuerStatus is the observed state of an issuer.
// +kubebuilder:validation:MinProperties=1
type IssuerStatus struct {
	// conditions are Ready, Reconciling and Stalled.
	// +patchStrategy=merge
	// +patchMergeKey=type
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
	// observedGeneration is the generation the conditions describe; -1
	// until a controller has served the issuer.
	// +kubebuilder:validation:Minimum=-1
	// +optional
	ObservedGeneration *int64 `json:"observedGeneration,omitempty"`
	// grantable is how many catalogue operations the issuer's key holds.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Grantable *int32 `json:"grantable,omitempty"`
	// ceiling is what spec.allowed expands to.
	// +optional
	Ceiling *Ceiling `json:"ceiling,omitempty"`
	// sessionCredentials is Available when the issuer's key holds
	// assume-iam-role, so it can hand out session credentials (AccessKeys
	// with spec.ttlSeconds).
	// +optional
	SessionCredentials Availability `json:"sessionCredentials,omitempty"`
}

// KeyIssuer mints keys for AccessKeys in its own namespace.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:storageversion
// +kubebuilder:resource:categories=exokey
// +kubebuilder:validation:XValidation:rule="!has(self.spec.credentialsRef.__namespace__)",message="a KeyIssuer reads credentials from its own namespace: remove credentialsRef.namespace"
// +kubebuilder:printcolumn:name="API",type=string,JSONPath=`.spec.api`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Grantable",type=integer,JSONPath=`.status.grantable`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type KeyIssuer struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the object's metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitzero"`

	// spec is where keys come from and how far they may reach.
	// +required
	Spec IssuerSpec `json:"spec,omitzero"`
	// status starts at observedGeneration -1: unserved reads as in progress.
	// +kubebuilder:default={observedGeneration:-1}
	// +optional
	Status IssuerStatus `json:"status,omitzero"`
}

// KeyIssuerList is a list of KeyIssuers.
// +kubebuilder:object:root=true
type KeyIssuerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitzero"`
	Items           []KeyIssuer `json:"items"`
}

// ClusterKeyIssuerSpec is an IssuerSpec that also says which namespaces may use it.
type ClusterKeyIssuerSpec struct {
	IssuerSpec `json:",inline"`

	// namespaceSelector selects the namespaces whose AccessKeys may use this
	// issuer; empty selects every namespace.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
}

// ClusterKeyIssuer mints keys for AccessKeys in the namespaces it selects.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:storageversion
// +kubebuilder:resource:scope=Cluster,categories=exokey
// +kubebuilder:validation:XValidation:rule="has(self.spec.credentialsRef.__namespace__) && size(self.spec.credentialsRef.__namespace__) > 0",message="a ClusterKeyIssuer needs credentialsRef.namespace: the namespace of its credentials Secret"
// +kubebuilder:printcolumn:name="API",type=string,JSONPath=`.spec.api`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Grantable",type=integer,JSONPath=`.status.grantable`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClusterKeyIssuer struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the object's metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitzero"`

	// spec is where keys come from, how far they may reach and which
	// namespaces may use them.
	// +required
	Spec ClusterKeyIssuerSpec `json:"spec,omitzero"`
	// status starts at observedGeneration -1: unserved reads as in progress.
	// +kubebuilder:default={observedGeneration:-1}
	// +optional
	Status IssuerStatus `json:"status,omitzero"`
}

// ClusterKeyIssuerList is a list of ClusterKeyIssuers.
// +kubebuilder:object:root=true
type ClusterKeyIssuerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitzero"`
	Items           []ClusterKeyIssuer `json:"items"`
}

func init() {
	SchemeBuilder.Register(&KeyIssuer{}, &KeyIssuerList{}, &ClusterKeyIssuer{}, &ClusterKeyIssuerList{})
}
