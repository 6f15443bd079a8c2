package v1alpha1

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
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Namespace of the Secret; ClusterKeyIssuer only (a KeyIssuer reads its own namespace).
	// +kubebuilder:validation:MaxLength=63
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// KeyField is the Secret key holding the API key.
	// +kubebuilder:default=EXOSCALE_API_KEY
	// +optional
	KeyField string `json:"keyField,omitempty"`
	// SecretField is the Secret key holding the API secret.
	// +kubebuilder:default=EXOSCALE_API_SECRET
	// +optional
	SecretField string `json:"secretField,omitempty"`
}

// Allowed is the ceiling of what an issuer may grant. Empty grants nothing.
type Allowed struct {
	// Operations that may be granted, as glob patterns such as get-sos-*.
	// +kubebuilder:validation:MaxItems=512
	// +listType=set
	// +optional
	Operations []string `json:"operations,omitempty"`
	// Tags (services) that may be granted whole, as glob patterns.
	// +kubebuilder:validation:MaxItems=64
	// +listType=set
	// +optional
	Tags []string `json:"tags,omitempty"`
	// Resources that may be named, as glob patterns such as sos/bucket:team-a-*.
	// +kubebuilder:validation:MaxItems=64
	// +listType=set
	// +optional
	Resources []string `json:"resources,omitempty"`
	// Unrestricted allows AccessKeys to ask for an unrestricted key.
	// +optional
	Unrestricted bool `json:"unrestricted,omitempty"`
}

// IssuerLimits bound what one AccessKey may cost. They keep a tenant from
// holding many keys, or old keys for long.
type IssuerLimits struct {
	// MaxGracePeriod caps rotation.gracePeriod of the AccessKeys.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=duration
	// +kubebuilder:default="1h"
	// +optional
	MaxGracePeriod *Duration `json:"maxGracePeriod,omitempty"`
	// MinRotationPeriod is the shortest rotation.every an AccessKey may ask for.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=duration
	// +kubebuilder:default="1h"
	// +optional
	MinRotationPeriod *Duration `json:"minRotationPeriod,omitempty"`
	// MinSessionTTL is the shortest spec.ttl an AccessKey may ask for: each
	// renewal costs a call to Exoscale, a Secret write and a roll of the
	// restart targets, so a tenant cannot make them run every second.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=duration
	// +kubebuilder:default="15m"
	// +optional
	MinSessionTTL *Duration `json:"minSessionTTL,omitempty"`
	// MaxKeysPerAccessKey caps the live keys (current and retiring) of one
	// AccessKey; a replacement waits until a retiring key is revoked.
	// +kubebuilder:validation:Minimum=2
	// +kubebuilder:validation:Maximum=16
	// +kubebuilder:default=3
	// +optional
	MaxKeysPerAccessKey int32 `json:"maxKeysPerAccessKey,omitempty"`
	// BeyondCeilingGrace is how long a key outlives a narrowed ceiling or a
	// namespace no longer selected (with keysBeyondCeiling Revoke). The
	// admin decides it, not the tenant: the AccessKey's rotation.gracePeriod
	// does not count. 0, the default, revokes such a key at once.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=duration
	// +kubebuilder:default="0s"
	// +optional
	BeyondCeilingGrace *Duration `json:"beyondCeilingGrace,omitempty"`
}

// BeyondCeilingPolicy says what happens to a key that an issuer's narrowed
// ceiling or namespace selection no longer allows.
// +kubebuilder:validation:Enum=Revoke;Keep
type BeyondCeilingPolicy string

const (
	// BeyondCeilingRevoke revokes such a key after limits.beyondCeilingGrace.
	BeyondCeilingRevoke BeyondCeilingPolicy = "Revoke"
	// BeyondCeilingKeep keeps it until the AccessKey changes or is deleted.
	BeyondCeilingKeep BeyondCeilingPolicy = "Keep"
)

// IssuerSpec is where keys come from and how far they may reach.
type IssuerSpec struct {
	// API is the Exoscale IAM API keys are minted with.
	// +kubebuilder:default=IAMv3
	// +optional
	API IssuerAPI `json:"api,omitempty"`

	// Zone whose API endpoint is used; IAM is global, any zone serves it.
	// +kubebuilder:validation:Enum=at-vie-1;at-vie-2;bg-sof-1;ch-dk-2;ch-gva-2;de-fra-1;de-muc-1;hr-zag-1
	// +kubebuilder:default=ch-gva-2
	// +optional
	Zone string `json:"zone,omitempty"`

	// Endpoint overrides the zone's API endpoint, e.g. an emulator's
	// http://127.0.0.1:8080/v2. Plain http is accepted for loopback only,
	// unless allowInsecureEndpoint is set.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://[^\s]+$`
	// +optional
	Endpoint string `json:"endpoint,omitempty"`

	// SOSEndpoint is the Object Storage (S3) endpoint the minted keys use,
	// written into the AWS format's AWS_ENDPOINT_URL_S3 and the Exoscale
	// format's EXOSCALE_SOS_ENDPOINT; default https://sos-<zone>.exo.io.
	// Plain http follows the same rule as endpoint.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://[^\s]+$`
	// +optional
	SOSEndpoint string `json:"sosEndpoint,omitempty"`

	// AllowInsecureEndpoint accepts an endpoint over plain http beyond
	// loopback, where the issuer's signed requests and the minted secrets
	// travel unencrypted.
	// +optional
	AllowInsecureEndpoint bool `json:"allowInsecureEndpoint,omitempty"`

	// CredentialsRef is the Secret holding the issuer's own key and secret.
	CredentialsRef CredentialsReference `json:"credentialsRef"`

	// KeyNamePrefix starts the name of every key this issuer mints.
	// +kubebuilder:default=k8s
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?$`
	// +optional
	KeyNamePrefix string `json:"keyNamePrefix,omitempty"`

	// Allowed is the ceiling of what AccessKeys may be granted.
	// +optional
	Allowed Allowed `json:"allowed,omitempty"`

	// Limits bound what one AccessKey may cost.
	// +kubebuilder:default={}
	// +optional
	Limits IssuerLimits `json:"limits,omitempty"`

	// AllowedDeletionPolicies are the deletionPolicy values AccessKeys may
	// use. Orphan leaves a live key behind the AccessKey, so it must be
	// allowed explicitly.
	// +kubebuilder:default={Delete}
	// +kubebuilder:validation:MaxItems=2
	// +listType=set
	// +optional
	AllowedDeletionPolicies []DeletionPolicy `json:"allowedDeletionPolicies,omitempty"`

	// KeysBeyondCeiling: Revoke (the default) revokes, after
	// limits.beyondCeilingGrace (default at once), a key that a narrowed
	// ceiling or namespace selection no longer allows; Keep leaves it until
	// the AccessKey changes.
	// +kubebuilder:default=Revoke
	// +optional
	KeysBeyondCeiling BeyondCeilingPolicy `json:"keysBeyondCeiling,omitempty"`
}

// Ceiling is what an issuer's allowed patterns expand to in the catalogue.
type Ceiling struct {
	// Operations is how many catalogue operations may be granted.
	Operations int `json:"operations"`
	// Services may be granted whole.
	// +optional
	Services []string `json:"services,omitempty"`
	// IAMOperations are the IAM administration operations that may be
	// granted: only those named explicitly, never through a wildcard.
	// +optional
	IAMOperations []string `json:"iamOperations,omitempty"`
}

// IssuerStatus is the observed state of an issuer.
type IssuerStatus struct {
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Grantable is how many catalogue operations the issuer's key holds.
	// +optional
	Grantable int `json:"grantable,omitempty"`
	// Ceiling is what spec.allowed expands to.
	// +optional
	Ceiling *Ceiling `json:"ceiling,omitempty"`
	// CanAssumeRoles: the issuer's key holds assume-iam-role, so it can
	// hand out session credentials (AccessKeys with spec.ttl).
	// +optional
	CanAssumeRoles bool `json:"canAssumeRoles,omitempty"`
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// KeyIssuer mints keys for AccessKeys in its own namespace.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=exokey
// +kubebuilder:validation:XValidation:rule="!has(self.spec.credentialsRef.__namespace__)",message="a KeyIssuer reads credentials from its own namespace: remove credentialsRef.namespace"
// +kubebuilder:printcolumn:name="API",type=string,JSONPath=`.spec.api`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Grantable",type=integer,JSONPath=`.status.grantable`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type KeyIssuer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec IssuerSpec `json:"spec"`
	// Status starts at observedGeneration -1: unserved reads as in progress.
	// +kubebuilder:default={observedGeneration:-1}
	Status IssuerStatus `json:"status,omitempty"`
}

// KeyIssuerList is a list of KeyIssuers.
// +kubebuilder:object:root=true
type KeyIssuerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []KeyIssuer `json:"items"`
}

// ClusterKeyIssuerSpec is an IssuerSpec that also says which namespaces may use it.
type ClusterKeyIssuerSpec struct {
	IssuerSpec `json:",inline"`

	// NamespaceSelector selects the namespaces whose AccessKeys may use this
	// issuer; empty selects every namespace.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
}

// ClusterKeyIssuer mints keys for AccessKeys in the namespaces it selects.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,categories=exokey
// +kubebuilder:validation:XValidation:rule="has(self.spec.credentialsRef.__namespace__) && size(self.spec.credentialsRef.__namespace__) > 0",message="a ClusterKeyIssuer needs credentialsRef.namespace: the namespace of its credentials Secret"
// +kubebuilder:printcolumn:name="API",type=string,JSONPath=`.spec.api`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Grantable",type=integer,JSONPath=`.status.grantable`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClusterKeyIssuer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec ClusterKeyIssuerSpec `json:"spec"`
	// Status starts at observedGeneration -1: unserved reads as in progress.
	// +kubebuilder:default={observedGeneration:-1}
	Status IssuerStatus `json:"status,omitempty"`
}

// ClusterKeyIssuerList is a list of ClusterKeyIssuers.
// +kubebuilder:object:root=true
type ClusterKeyIssuerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterKeyIssuer `json:"items"`
}

func init() {
	SchemeBuilder.Register(&KeyIssuer{}, &KeyIssuerList{}, &ClusterKeyIssuer{}, &ClusterKeyIssuerList{})
}
