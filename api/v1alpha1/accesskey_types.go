package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Finalizer, annotations and labels exokey puts on the objects it manages.
const (
	// RevokeFinalizer holds an AccessKey until the keys it minted are revoked.
	RevokeFinalizer = "iam.exokey.io/revoke"
	// InUseFinalizer holds an issuer while AccessKeys refer to it or hold
	// keys it minted, so those keys can still be revoked through it.
	InUseFinalizer = "iam.exokey.io/in-use"
	// CredentialsFinalizer holds an issuer's credentials Secret, deleted
	// with its namespace or its issuer, until the keys minted with it are
	// revoked: what revocation needs outlives any manager process.
	CredentialsFinalizer = "iam.exokey.io/revoke-with"
	// RotateAnnotation asks for a rotation now whenever its value changes.
	RotateAnnotation = "iam.exokey.io/rotate"
	// KeyIDAnnotation, KeyNameAnnotation and ChecksumAnnotation on a Secret
	// record which key it holds and the checksum of the data exokey wrote.
	// They are for people and tools: the tenant can write them, so exokey
	// takes no key identity from them.
	KeyIDAnnotation    = "iam.exokey.io/key-id"
	KeyNameAnnotation  = "iam.exokey.io/key-name"
	ChecksumAnnotation = "iam.exokey.io/checksum"

	// ManagedByLabel with the value ManagedByValue marks the Secrets exokey
	// writes; the manager caches only those.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "exokey"
)

// IssuerKind names the kind of issuer an AccessKey refers to.
// +kubebuilder:validation:Enum=ClusterKeyIssuer;KeyIssuer
type IssuerKind string

const (
	ClusterKeyIssuerKind IssuerKind = "ClusterKeyIssuer"
	KeyIssuerKind        IssuerKind = "KeyIssuer"
)

// IssuerReference points an AccessKey at the issuer that mints its key.
type IssuerReference struct {
	// Kind is ClusterKeyIssuer (the default) or KeyIssuer, which must be in
	// the AccessKey's namespace.
	// +kubebuilder:default=ClusterKeyIssuer
	// +optional
	Kind IssuerKind `json:"kind,omitempty"`

	// Name of the issuer.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// SecretFormat is how a credential is laid out in the Secret.
// +kubebuilder:validation:Enum=Exoscale;AWS;CredentialsFile;Template
type SecretFormat string

const (
	// SecretFormatExoscale writes EXOSCALE_API_KEY and EXOSCALE_API_SECRET.
	SecretFormatExoscale SecretFormat = "Exoscale"
	// SecretFormatAWS writes AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for S3 clients of SOS.
	SecretFormatAWS SecretFormat = "AWS"
	// SecretFormatCredentialsFile writes credentials.json, a JSON file
	// {"api_key", "api_secret"} for programs that read their credentials
	// from a file (EXOSCALE_API_CREDENTIALS_FILE) and re-read it when it
	// changes, as Exoscale's cloud-controller-manager does.
	SecretFormatCredentialsFile SecretFormat = "CredentialsFile"
	// SecretFormatTemplate renders spec.secret.template.
	SecretFormatTemplate SecretFormat = "Template"
)

// SecretTemplate renders the Secret's data, labels and annotations with Go
// text/template. Templates are sandboxed: no define, template or block,
// bounded nesting, bounded output; .Secret may be used in data only.
type SecretTemplate struct {
	// Data maps each Secret key to a template of its value.
	// +kubebuilder:validation:MinProperties=1
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(k) <= 253 && size(self[k]) <= 4096)",message="secret.template.data: keys are at most 253 characters and templates at most 4096"
	Data map[string]string `json:"data"`
	// Labels maps label keys to templates of their values.
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(k) <= 317 && size(self[k]) <= 1024)",message="secret.template.labels: keys are at most 317 characters and templates at most 1024"
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// Annotations maps annotation keys to templates of their values.
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(k) <= 317 && size(self[k]) <= 4096)",message="secret.template.annotations: keys are at most 317 characters and templates at most 4096"
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// SecretSpec describes the Secret the credential is written to.
// +kubebuilder:validation:XValidation:rule="!has(self.format) || self.format != 'Template' || has(self.template)",message="secret.format Template needs secret.template with at least one data entry"
// +kubebuilder:validation:XValidation:rule="!has(self.template) || (has(self.format) && self.format == 'Template')",message="secret.template is only used with secret.format: Template"
type SecretSpec struct {
	// Name of the Secret; defaults to the AccessKey's name.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +optional
	Name string `json:"name,omitempty"`

	// Format of the Secret's data.
	// +kubebuilder:default=Exoscale
	// +optional
	Format SecretFormat `json:"format,omitempty"`

	// Template of the Secret when format is Template.
	// +optional
	Template *SecretTemplate `json:"template,omitempty"`

	// Labels added to the Secret.
	// +kubebuilder:validation:MaxProperties=32
	// +optional
	Labels map[string]string `json:"labels,omitempty"`

	// Annotations added to the Secret.
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(self[k]) <= 4096)",message="secret.annotations: values are at most 4096 characters"
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// RotationSpec says when a key is replaced and how long the old one lives on.
// +kubebuilder:validation:XValidation:rule="!has(self.every) || !has(self.gracePeriod) || duration(self.gracePeriod) < duration(self.every)",message="rotation.gracePeriod must be shorter than rotation.every"
// +kubebuilder:validation:XValidation:rule="!has(self.minGracePeriod) || duration(self.minGracePeriod) <= (has(self.gracePeriod) ? duration(self.gracePeriod) : duration('10m'))",message="rotation.minGracePeriod must not exceed rotation.gracePeriod"
type RotationSpec struct {
	// Every replaces keys older than this, e.g. 720h.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=duration
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="rotation.every must be a positive duration such as 720h"
	// +optional
	Every *Duration `json:"every,omitempty"`

	// GracePeriod is the longest a replaced key stays valid after its
	// successor is published. When the AccessKey has consumers (restart
	// targets, workloads the webhook injected), the old key is revoked as
	// soon as every one of them has rolled onto the new key, and at the
	// latest after GracePeriod (with a Warning naming a consumer that had
	// not finished); without consumers, after GracePeriod.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=duration
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="rotation.gracePeriod must be a positive duration such as 10m"
	// +kubebuilder:default="10m"
	// +optional
	GracePeriod *Duration `json:"gracePeriod,omitempty"`

	// MinGracePeriod keeps a replaced key valid at least this long after
	// its successor is published, even once every consumer has rolled
	// (for consumers exokey cannot see, such as a process outside the
	// cluster). It is at most GracePeriod.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=duration
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="rotation.minGracePeriod must be a duration such as 30s"
	// +optional
	MinGracePeriod *Duration `json:"minGracePeriod,omitempty"`

	// RenewBefore, with spec.ttl, publishes a fresh session credential this
	// long before the current one expires; by default a third of the ttl.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=duration
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="rotation.renewBefore must be a positive duration such as 20m"
	// +optional
	RenewBefore *Duration `json:"renewBefore,omitempty"`
}

// RestartTargetKind is a kind of workload exokey can roll: the apps/v1
// kinds (their pod template is stamped with the Secret's checksum) and Argo
// Rollouts' Rollout (argoproj.io/v1alpha1, restarted through
// spec.restartAt).
// +kubebuilder:validation:Enum=Deployment;StatefulSet;DaemonSet;Rollout
type RestartTargetKind string

// RestartTarget is a workload in the AccessKey's namespace that is rolled
// when the Secret changes.
type RestartTarget struct {
	Kind RestartTargetKind `json:"kind"`
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// DeletionPolicy says what happens to the key when the AccessKey is deleted.
// +kubebuilder:validation:Enum=Delete;Orphan
type DeletionPolicy string

const (
	// DeletionPolicyDelete revokes every key the AccessKey holds.
	DeletionPolicyDelete DeletionPolicy = "Delete"
	// DeletionPolicyOrphan keeps the key and the Secret.
	DeletionPolicyOrphan DeletionPolicy = "Orphan"
)

// AccessKeySpec is what a workload may do on Exoscale.
// +kubebuilder:validation:XValidation:rule="!(has(self.unrestricted) && self.unrestricted) || ((!has(self.operations) || size(self.operations) == 0) && (!has(self.tags) || size(self.tags) == 0) && (!has(self.resources) || size(self.resources) == 0))",message="an unrestricted key takes no operations, tags or resources: remove them or set unrestricted: false"
// +kubebuilder:validation:XValidation:rule="(has(self.unrestricted) && self.unrestricted) || (has(self.operations) && size(self.operations) > 0) || (has(self.tags) && size(self.tags) > 0)",message="a restricted key needs at least one operation or tag (or ask for unrestricted: true explicitly)"
// +kubebuilder:validation:XValidation:rule="!has(self.ttl) || !has(self.rotation) || !has(self.rotation.every)",message="a ttl credential is renewed before it expires: remove rotation.every"
// +kubebuilder:validation:XValidation:rule="!has(self.rotation) || !has(self.rotation.renewBefore) || (has(self.ttl) && duration(self.rotation.renewBefore) < duration(self.ttl))",message="rotation.renewBefore needs a ttl, and must be shorter than it"
// +kubebuilder:validation:XValidation:rule="!has(self.ttl) || !has(self.deletionPolicy) || self.deletionPolicy != 'Orphan'",message="a ttl credential's role is deleted with the AccessKey: deletionPolicy Orphan does not apply"
type AccessKeySpec struct {
	// IssuerRef names the issuer whose credentials mint the key.
	IssuerRef IssuerReference `json:"issuerRef"`

	// Operations the key may call, by Exoscale operation id, e.g. get-sos-object.
	// +kubebuilder:validation:MaxItems=512
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]+(-[a-z0-9]+)*$`
	// +kubebuilder:validation:items:MaxLength=64
	// +listType=set
	// +optional
	Operations []string `json:"operations,omitempty"`

	// Tags grant whole services, e.g. compute or sos; "compute/*" is read as compute.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]+(-[a-z0-9]+)*(/\*)?$`
	// +kubebuilder:validation:items:MaxLength=64
	// +listType=set
	// +optional
	Tags []string `json:"tags,omitempty"`

	// Resources narrow the key to named resources, as DOMAIN/TYPE:NAME,
	// e.g. sos/bucket:backups-prod.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:Pattern=`^[a-z]+/[a-z]+:.+$`
	// +kubebuilder:validation:items:MaxLength=255
	// +listType=set
	// +optional
	Resources []string `json:"resources,omitempty"`

	// Unrestricted asks for a key with every right of the issuer. It must be
	// asked for explicitly and excludes operations, tags and resources.
	// +kubebuilder:default=false
	// +optional
	Unrestricted bool `json:"unrestricted,omitempty"`

	// KeyName is the start of the minted key's name; defaults to
	// <issuer prefix>-<namespace>-<name>. A short random suffix is appended.
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?$`
	// +optional
	KeyName string `json:"keyName,omitempty"`

	// Secret the credential is written to.
	// +kubebuilder:default={}
	// +optional
	Secret SecretSpec `json:"secret,omitempty"`

	// TTL asks for short-lived credentials (IAMv3 issuers only): the
	// AccessKey's role is created once, and instead of a permanent API key
	// the Secret holds a session credential of that role which expires by
	// itself after this long, renewed before it does (rotation.renewBefore).
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=duration
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('168h')",message="ttl must be between 1s and 168h, e.g. 1h"
	// +optional
	TTL *Duration `json:"ttl,omitempty"`

	// Rotation replaces keys on a schedule and sets the grace period of a replaced key.
	// +optional
	Rotation *RotationSpec `json:"rotation,omitempty"`

	// RestartTargets are workloads rolled when the Secret changes.
	// +kubebuilder:validation:MaxItems=32
	// +listType=map
	// +listMapKey=kind
	// +listMapKey=name
	// +optional
	RestartTargets []RestartTarget `json:"restartTargets,omitempty"`

	// DeletionPolicy: Delete revokes the keys with the AccessKey, Orphan keeps
	// the key and the Secret.
	// +kubebuilder:default=Delete
	// +optional
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`
}

// MintingIssuer identifies the issuer that minted a key: keys are revoked
// through it and no other, and only while it is the same object (UID).
type MintingIssuer struct {
	Kind IssuerKind `json:"kind"`
	Name string     `json:"name"`
	UID  types.UID  `json:"uid"`
	API  IssuerAPI  `json:"api"`
}

// RetiringKey is a replaced key kept valid until RevokeAt.
type RetiringKey struct {
	KeyID string `json:"keyID"`
	// +optional
	KeyName string `json:"keyName,omitempty"`
	// +optional
	RoleID   string      `json:"roleID,omitempty"`
	RevokeAt metav1.Time `json:"revokeAt"`
	// Issuer minted the key and revokes it.
	// +optional
	Issuer *MintingIssuer `json:"issuer,omitempty"`
	// Consumers are the workloads rolled onto the key's successor: the key
	// is revoked once each has finished rolling (and not before
	// RevokeAfter), or at RevokeAt.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +optional
	Consumers []RolledConsumer `json:"consumers,omitempty"`
	// RevokeAfter is the earliest the key is revoked: minGracePeriod after
	// its successor was published.
	// +optional
	RevokeAfter *metav1.Time `json:"revokeAfter,omitempty"`
	// WaitingFor says which consumer the key still waits for, and how far
	// its rollout is.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	WaitingFor string `json:"waitingFor,omitempty"`
}

// RolledConsumer is a workload rolled onto a new key, at the generation the
// roll gave it.
type RolledConsumer struct {
	// +kubebuilder:validation:MaxLength=64
	Kind string `json:"kind"`
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Generation is the workload's metadata.generation after the roll.
	Generation int64 `json:"generation"`
}

// PendingKey is the intent record of a create in flight, written before the
// create call so that an interrupted create is recovered, not leaked. It
// lives in status, where a tenant cannot write.
type PendingKey struct {
	// KeyName is the unique name the key is created with.
	KeyName   string      `json:"keyName"`
	StartedAt metav1.Time `json:"startedAt"`
	// Issuer the key is created through.
	Issuer MintingIssuer `json:"issuer"`
	// RestrictionHash and RotateRequest are what the key is minted for.
	// +optional
	RestrictionHash string `json:"restrictionHash,omitempty"`
	// +optional
	RotateRequest string `json:"rotateRequest,omitempty"`
	// CeilingHash is the issuer's ceiling the key was checked against.
	// +optional
	CeilingHash string `json:"ceilingHash,omitempty"`
}

// AccessKeyStatus is what exokey observed and did. It never holds a secret.
type AccessKeyStatus struct {
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// KeyID of the current key (never its secret).
	// +optional
	KeyID string `json:"keyID,omitempty"`
	// +optional
	KeyName string `json:"keyName,omitempty"`
	// RoleID of the current key's role (IAMv3 only).
	// +optional
	RoleID string `json:"roleID,omitempty"`
	// CreatedAt is when the current key was minted.
	// +optional
	CreatedAt *metav1.Time `json:"createdAt,omitempty"`
	// NextRotationAt is when the current key is due for replacement (with
	// spec.ttl, when the session credential is renewed).
	// +optional
	NextRotationAt *metav1.Time `json:"nextRotationAt,omitempty"`
	// ExpiresAt is when the current session credential expires (spec.ttl).
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`
	// +optional
	SecretName string `json:"secretName,omitempty"`
	// Issuer minted the current key and revokes it.
	// +optional
	Issuer *MintingIssuer `json:"issuer,omitempty"`
	// RestrictionHash identifies the restrictions the current key was minted with.
	// +optional
	RestrictionHash string `json:"restrictionHash,omitempty"`
	// CeilingHash identifies the issuer's ceiling the current key was checked against.
	// +optional
	CeilingHash string `json:"ceilingHash,omitempty"`
	// Pending is a key create in flight.
	// +optional
	Pending *PendingKey `json:"pending,omitempty"`
	// RotateRequest is the last value of the rotate annotation that was handled.
	// +optional
	RotateRequest string `json:"rotateRequest,omitempty"`
	// Retiring keys are revoked at their revokeAt.
	// +optional
	Retiring []RetiringKey `json:"retiring,omitempty"`
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// AccessKey asks for a restricted Exoscale IAM key, published in a Secret.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ak,categories=exokey
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Key",type=string,JSONPath=`.status.keyID`
// +kubebuilder:printcolumn:name="Issuer",type=string,JSONPath=`.spec.issuerRef.name`
// +kubebuilder:printcolumn:name="Secret",type=string,JSONPath=`.status.secretName`
// +kubebuilder:printcolumn:name="Next rotation",type=date,JSONPath=`.status.nextRotationAt`
// +kubebuilder:printcolumn:name="Expires",type=date,JSONPath=`.status.expiresAt`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type AccessKey struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec AccessKeySpec `json:"spec"`
	// Status starts at observedGeneration -1, so an AccessKey no controller
	// has served yet reads as in progress to kstatus (Helm, Flux).
	// +kubebuilder:default={observedGeneration:-1}
	Status AccessKeyStatus `json:"status,omitempty"`
}

// AccessKeyList is a list of AccessKeys.
// +kubebuilder:object:root=true
type AccessKeyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AccessKey `json:"items"`
}

func init() {
	SchemeBuilder.Register(&AccessKey{}, &AccessKeyList{})
}
