package v1beta1

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
	// kind is ClusterKeyIssuer (the default) or KeyIssuer, which must be in
	// the AccessKey's namespace.
	// +kubebuilder:default=ClusterKeyIssuer
	// +optional
	Kind IssuerKind `json:"kind,omitempty"`

	// name of the issuer.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name,omitempty"`
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
	// data maps each Secret key to a template of its value.
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(k) <= 253 && size(self[k]) <= 4096)",message="secret.template.data: keys are at most 253 characters and templates at most 4096"
	// +required
	Data map[string]string `json:"data,omitempty"`
	// labels maps label keys to templates of their values.
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(k) <= 317 && size(self[k]) <= 1024)",message="secret.template.labels: keys are at most 317 characters and templates at most 1024"
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// annotations maps annotation keys to templates of their values.
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(k) <= 317 && size(self[k]) <= 4096)",message="secret.template.annotations: keys are at most 317 characters and templates at most 4096"
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// SecretSpec describes the Secret the credential is written to.
// +kubebuilder:validation:XValidation:rule="!has(self.format) || self.format != 'Template' || has(self.template)",message="secret.format Template needs secret.template with at least one data entry"
// +kubebuilder:validation:XValidation:rule="!has(self.template) || (has(self.format) && self.format == 'Template')",message="secret.template is only used with secret.format: Template"
// +kubebuilder:validation:MinProperties=1
type SecretSpec struct {
	// name of the Secret; defaults to the AccessKey's name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +optional
	Name string `json:"name,omitempty"`

	// format of the Secret's data.
	// +kubebuilder:default=Exoscale
	// +optional
	Format SecretFormat `json:"format,omitempty"`

	// template of the Secret when format is Template.
	// +optional
	Template SecretTemplate `json:"template,omitzero"`

	// labels added to the Secret.
	// +kubebuilder:validation:MaxProperties=32
	// +optional
	Labels map[string]string `json:"labels,omitempty"`

	// annotations added to the Secret.
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(self[k]) <= 4096)",message="secret.annotations: values are at most 4096 characters"
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// RotationSpec says when a key is replaced and how long the old one lives on.
// +kubebuilder:validation:XValidation:rule="!has(self.everySeconds) || !has(self.gracePeriodSeconds) || self.gracePeriodSeconds < self.everySeconds",message="rotation.gracePeriodSeconds must be shorter than rotation.everySeconds"
// +kubebuilder:validation:XValidation:rule="!has(self.minGracePeriodSeconds) || self.minGracePeriodSeconds <= (has(self.gracePeriodSeconds) ? self.gracePeriodSeconds : 600)",message="rotation.minGracePeriodSeconds must not exceed rotation.gracePeriodSeconds"
type RotationSpec struct {
	// everySeconds replaces keys older than this many seconds, e.g. 2592000 (30 days).
	// +kubebuilder:validation:Minimum=1
	// +optional
	EverySeconds int64 `json:"everySeconds,omitempty"`

	// gracePeriodSeconds is the longest a replaced key stays valid after its
	// successor is published. When the AccessKey has consumers (restart
	// targets, workloads the webhook injected), the old key is revoked as
	// soon as every one of them has rolled onto the new key, and at the
	// latest after gracePeriodSeconds (with a Warning naming a consumer that
	// had not finished); without consumers, after gracePeriodSeconds.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:default=600
	// +optional
	GracePeriodSeconds int64 `json:"gracePeriodSeconds,omitempty"`

	// minGracePeriodSeconds keeps a replaced key valid at least this long
	// after its successor is published, even once every consumer has rolled
	// (for consumers exokey cannot see, such as a process outside the
	// cluster). It is at most gracePeriodSeconds.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MinGracePeriodSeconds *int64 `json:"minGracePeriodSeconds,omitempty"`

	// renewBeforeSeconds publishes, with spec.ttlSeconds, a fresh session
	// credential this long before the current one expires; by default a
	// third of the ttl.
	// +kubebuilder:validation:Minimum=1
	// +optional
	RenewBeforeSeconds int64 `json:"renewBeforeSeconds,omitempty"`
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
	// kind of the workload.
	// +required
	Kind RestartTargetKind `json:"kind,omitempty"`
	// name of the workload.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name,omitempty"`
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

// Access says whether a key is narrowed to what its AccessKey lists.
// +kubebuilder:validation:Enum=Restricted;Unrestricted
type Access string

const (
	// AccessRestricted narrows the key to the listed operations, tags and
	// resources.
	AccessRestricted Access = "Restricted"
	// AccessUnrestricted gives the key every right of its issuer.
	AccessUnrestricted Access = "Unrestricted"
)

// AccessKeySpec is what a workload may do on Exoscale.
// +kubebuilder:validation:XValidation:rule="!has(self.access) || self.access != 'Unrestricted' || ((!has(self.operations) || size(self.operations) == 0) && (!has(self.tags) || size(self.tags) == 0) && (!has(self.resources) || size(self.resources) == 0))",message="an unrestricted key takes no operations, tags or resources: remove them or set access: Restricted"
// +kubebuilder:validation:XValidation:rule="(has(self.access) && self.access == 'Unrestricted') || (has(self.operations) && size(self.operations) > 0) || (has(self.tags) && size(self.tags) > 0)",message="a restricted key needs at least one operation or tag (or ask for access: Unrestricted explicitly)"
// +kubebuilder:validation:XValidation:rule="!has(self.ttlSeconds) || !has(self.rotation) || !has(self.rotation.everySeconds)",message="a ttl credential is renewed before it expires: remove rotation.everySeconds"
// +kubebuilder:validation:XValidation:rule="!has(self.rotation) || !has(self.rotation.renewBeforeSeconds) || (has(self.ttlSeconds) && self.rotation.renewBeforeSeconds < self.ttlSeconds)",message="rotation.renewBeforeSeconds needs a ttlSeconds, and must be shorter than it"
// +kubebuilder:validation:XValidation:rule="!has(self.ttlSeconds) || !has(self.deletionPolicy) || self.deletionPolicy != 'Orphan'",message="a ttl credential's role is deleted with the AccessKey: deletionPolicy Orphan does not apply"
type AccessKeySpec struct {
	// issuerRef names the issuer whose credentials mint the key.
	// +required
	IssuerRef IssuerReference `json:"issuerRef,omitzero"`

	// operations the key may call, by Exoscale operation id, e.g. get-sos-object.
	// +kubebuilder:validation:MaxItems=512
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]+(-[a-z0-9]+)*$`
	// +kubebuilder:validation:items:MaxLength=64
	// +listType=set
	// +optional
	Operations []string `json:"operations,omitempty"`

	// tags grant whole services, e.g. compute or sos; "compute/*" is read as compute.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]+(-[a-z0-9]+)*(/\*)?$`
	// +kubebuilder:validation:items:MaxLength=64
	// +listType=set
	// +optional
	Tags []string `json:"tags,omitempty"`

	// resources narrow the key to named resources, as DOMAIN/TYPE:NAME,
	// e.g. sos/bucket:backups-prod.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:Pattern=`^[a-z]+/[a-z]+:.+$`
	// +kubebuilder:validation:items:MaxLength=255
	// +listType=set
	// +optional
	Resources []string `json:"resources,omitempty"`

	// access is Restricted (the default: the key may do what operations,
	// tags and resources say) or Unrestricted: every right of the issuer,
	// which must be asked for explicitly and excludes operations, tags and
	// resources.
	// +kubebuilder:default=Restricted
	// +optional
	Access Access `json:"access,omitempty"`

	// keyName is the start of the minted key's name; defaults to
	// <issuer prefix>-<namespace>-<name>. A short random suffix is appended.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?$`
	// +optional
	KeyName string `json:"keyName,omitempty"`

	// secret the credential is written to.
	// +kubebuilder:default={format: Exoscale}
	// +optional
	Secret SecretSpec `json:"secret,omitzero"`

	// ttlSeconds asks for short-lived credentials (IAMv3 issuers only): the
	// AccessKey's role is created once, and instead of a permanent API key
	// the Secret holds a session credential of that role which expires by
	// itself after this many seconds, renewed before it does
	// (rotation.renewBeforeSeconds).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=604800
	// +optional
	TTLSeconds int64 `json:"ttlSeconds,omitempty"`

	// rotation replaces keys on a schedule and sets the grace period of a replaced key.
	// +optional
	Rotation *RotationSpec `json:"rotation,omitempty"`

	// restartTargets are workloads rolled when the Secret changes.
	// +kubebuilder:validation:MaxItems=32
	// +listType=map
	// +listMapKey=kind
	// +listMapKey=name
	// +optional
	RestartTargets []RestartTarget `json:"restartTargets,omitempty"`

	// deletionPolicy is Delete (revoke the keys with the AccessKey) or
	// Orphan (keep the key and the Secret).
	// +kubebuilder:default=Delete
	// +optional
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`
}

// MintingIssuer identifies the issuer that minted a key: keys are revoked
// through it and no other, and only while it is the same object (UID).
type MintingIssuer struct {
	// kind of the issuer.
	// +required
	Kind IssuerKind `json:"kind,omitempty"`
	// name of the issuer.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name,omitempty"`
	// uid of the issuer.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=36
	// +required
	UID types.UID `json:"uid,omitempty"`
	// api the key was minted with.
	// +required
	API IssuerAPI `json:"api,omitempty"`
}

// RetiringKey is a replaced key kept valid until revokeAt.
type RetiringKey struct {
	// keyID of the replaced key (never its secret).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +required
	KeyID string `json:"keyID,omitempty"`
	// keyName of the replaced key.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +optional
	KeyName string `json:"keyName,omitempty"`
	// roleID of the replaced key's role (IAMv3 only).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +optional
	RoleID string `json:"roleID,omitempty"`
	// revokeAt is the latest the key is revoked.
	// +required
	RevokeAt *metav1.Time `json:"revokeAt,omitempty"`
	// issuer minted the key and revokes it.
	// +optional
	Issuer MintingIssuer `json:"issuer,omitzero"`
	// consumers are the workloads rolled onto the key's successor: the key
	// is revoked once each has finished rolling (and not before
	// revokeAfter), or at revokeAt.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +optional
	Consumers []RolledConsumer `json:"consumers,omitempty"`
	// revokeAfter is the earliest the key is revoked: minGracePeriodSeconds
	// after its successor was published.
	// +optional
	RevokeAfter *metav1.Time `json:"revokeAfter,omitempty"`
	// waitingFor says which consumer the key still waits for, and how far
	// its rollout is.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	WaitingFor string `json:"waitingFor,omitempty"`
}

// RolledConsumer is a workload rolled onto a new key, at the generation the
// roll gave it.
type RolledConsumer struct {
	// kind of the workload.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +required
	Kind string `json:"kind,omitempty"`
	// name of the workload.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name,omitempty"`
	// generation is the workload's metadata.generation after the roll.
	// +kubebuilder:validation:Minimum=1
	// +required
	Generation int64 `json:"generation,omitempty"`
}

// PendingKey is the intent record of a create in flight, written before the
// create call so that an interrupted create is recovered, not leaked. It
// lives in status, where a tenant cannot write.
type PendingKey struct {
	// keyName is the unique name the key is created with.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +required
	KeyName string `json:"keyName,omitempty"`
	// startedAt is when the create started.
	// +required
	StartedAt *metav1.Time `json:"startedAt,omitempty"`
	// issuer the key is created through.
	// +required
	Issuer MintingIssuer `json:"issuer,omitzero"`
	// restrictionHash is what the key is minted for.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +optional
	RestrictionHash string `json:"restrictionHash,omitempty"`
	// rotateRequest is the rotate annotation's value the key is minted for.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +optional
	RotateRequest string `json:"rotateRequest,omitempty"`
	// ceilingHash is the issuer's ceiling the key was checked against.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +optional
	CeilingHash string `json:"ceilingHash,omitempty"`
}

// AccessKeyStatus is what exokey observed and did. It never holds a secret.
// +kubebuilder:validation:MinProperties=1
type AccessKeyStatus struct {
	// conditions are Ready, Synced, Reconciling and Stalled.
	// +patchStrategy=merge
	// +patchMergeKey=type
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
	// observedGeneration is the generation the conditions describe; -1
	// until a controller has served the AccessKey.
	// +kubebuilder:validation:Minimum=-1
	// +optional
	ObservedGeneration *int64 `json:"observedGeneration,omitempty"`
	// keyID of the current key (never its secret).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +optional
	KeyID string `json:"keyID,omitempty"`
	// keyName of the current key.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +optional
	KeyName string `json:"keyName,omitempty"`
	// roleID of the current key's role (IAMv3 only).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +optional
	RoleID string `json:"roleID,omitempty"`
	// createdAt is when the current key was minted.
	// +optional
	CreatedAt *metav1.Time `json:"createdAt,omitempty"`
	// nextRotationAt is when the current key is due for replacement (with
	// spec.ttlSeconds, when the session credential is renewed).
	// +optional
	NextRotationAt *metav1.Time `json:"nextRotationAt,omitempty"`
	// expiresAt is when the current session credential expires (spec.ttlSeconds).
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`
	// secretName is the Secret the current key is published in.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +optional
	SecretName string `json:"secretName,omitempty"`
	// issuer minted the current key and revokes it.
	// +optional
	Issuer MintingIssuer `json:"issuer,omitzero"`
	// restrictionHash identifies the restrictions the current key was minted with.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +optional
	RestrictionHash string `json:"restrictionHash,omitempty"`
	// ceilingHash identifies the issuer's ceiling the current key was checked against.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +optional
	CeilingHash string `json:"ceilingHash,omitempty"`
	// pending is a key create in flight.
	// +optional
	Pending PendingKey `json:"pending,omitzero"`
	// rotateRequest is the last value of the rotate annotation that was handled.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +optional
	RotateRequest string `json:"rotateRequest,omitempty"`
	// retiring keys are revoked once their consumers have rolled, at the
	// latest at their revokeAt. There are at most
	// limits.maxKeysPerAccessKey keys in all.
	// +listType=map
	// +listMapKey=keyID
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Retiring []RetiringKey `json:"retiring,omitempty"`
}

// AccessKey asks for a restricted Exoscale IAM key, published in a Secret.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:storageversion
// +kubebuilder:resource:shortName=ak,categories=exokey
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Key",type=string,JSONPath=`.status.keyID`
// +kubebuilder:printcolumn:name="Issuer",type=string,JSONPath=`.spec.issuerRef.name`
// +kubebuilder:printcolumn:name="Secret",type=string,JSONPath=`.status.secretName`
// +kubebuilder:printcolumn:name="Next rotation",type=date,JSONPath=`.status.nextRotationAt`
// +kubebuilder:printcolumn:name="Expires",type=date,JSONPath=`.status.expiresAt`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type AccessKey struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the object's metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitzero"`

	// spec is what the workload may do on Exoscale.
	// +required
	Spec AccessKeySpec `json:"spec,omitzero"`
	// status starts at observedGeneration -1, so an AccessKey no controller
	// has served yet reads as in progress to kstatus (Helm, Flux).
	// +kubebuilder:default={observedGeneration:-1}
	// +optional
	Status AccessKeyStatus `json:"status,omitzero"`
}

// AccessKeyList is a list of AccessKeys.
// +kubebuilder:object:root=true
type AccessKeyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitzero"`
	Items           []AccessKey `json:"items"`
}

func init() {
	SchemeBuilder.Register(&AccessKey{}, &AccessKeyList{})
}
