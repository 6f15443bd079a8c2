package v1alpha1

import (
	"encoding/json"
	"maps"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/conversion"

	"github.com/exokey/exokey/api/v1beta1"
)

// v1alpha1 is served and converted through the hub, v1beta1
// (docs/reference/api.md says what changed). Every valid object converts
// both ways without loss, with two remarks:
//   - v1beta1 counts whole seconds where v1alpha1 has durations. A duration
//     is rounded up to whole seconds in v1beta1 (1.5s is 2), and, when the
//     seconds would not spell it back the same (720h reads 720h0m0s from
//     2592000), its spelling is kept in the annotation DurationsAnnotation,
//     so it reads back at v1alpha1 as written and a v1alpha1 manifest
//     applied again is unchanged.
//   - status fields that v1alpha1 leaves at their zero value until a
//     controller has served the object (grantable, canAssumeRoles) read as
//     unset in v1beta1 until then.

// DurationsAnnotation keeps, on a v1beta1 object written at v1alpha1, the
// spelling of its durations, by their v1alpha1 field path. A spelling is
// used only while it agrees with the v1beta1 field, so writing the
// annotation changes nothing but how v1alpha1 reads.
const DurationsAnnotation = "iam.exokey.io/v1alpha1-durations"

// ConvertTo converts this AccessKey to the hub version.
func (src *AccessKey) ConvertTo(dstRaw conversion.Hub) error {
	dst := dstRaw.(*v1beta1.AccessKey)
	fractions := durations{}
	dst.ObjectMeta = *src.ObjectMeta.DeepCopy()
	dst.Spec = accessKeySpecTo(&src.Spec, fractions)
	dst.Status = accessKeyStatusTo(&src.Status)
	return fractions.store(&dst.ObjectMeta)
}

// ConvertFrom converts the hub version to this AccessKey.
func (dst *AccessKey) ConvertFrom(srcRaw conversion.Hub) error {
	src := srcRaw.(*v1beta1.AccessKey)
	dst.ObjectMeta = *src.ObjectMeta.DeepCopy()
	fractions := loadDurations(&dst.ObjectMeta)
	dst.Spec = accessKeySpecFrom(&src.Spec, fractions)
	dst.Status = accessKeyStatusFrom(&src.Status)
	return nil
}

// ConvertTo converts this KeyIssuer to the hub version.
func (src *KeyIssuer) ConvertTo(dstRaw conversion.Hub) error {
	dst := dstRaw.(*v1beta1.KeyIssuer)
	fractions := durations{}
	dst.ObjectMeta = *src.ObjectMeta.DeepCopy()
	dst.Spec = issuerSpecTo(&src.Spec, fractions)
	dst.Status = issuerStatusTo(&src.Status)
	return fractions.store(&dst.ObjectMeta)
}

// ConvertFrom converts the hub version to this KeyIssuer.
func (dst *KeyIssuer) ConvertFrom(srcRaw conversion.Hub) error {
	src := srcRaw.(*v1beta1.KeyIssuer)
	dst.ObjectMeta = *src.ObjectMeta.DeepCopy()
	fractions := loadDurations(&dst.ObjectMeta)
	dst.Spec = issuerSpecFrom(&src.Spec, fractions)
	dst.Status = issuerStatusFrom(&src.Status)
	return nil
}

// ConvertTo converts this ClusterKeyIssuer to the hub version.
func (src *ClusterKeyIssuer) ConvertTo(dstRaw conversion.Hub) error {
	dst := dstRaw.(*v1beta1.ClusterKeyIssuer)
	fractions := durations{}
	dst.ObjectMeta = *src.ObjectMeta.DeepCopy()
	dst.Spec = v1beta1.ClusterKeyIssuerSpec{
		IssuerSpec:        issuerSpecTo(&src.Spec.IssuerSpec, fractions),
		NamespaceSelector: src.Spec.NamespaceSelector.DeepCopy(),
	}
	dst.Status = issuerStatusTo(&src.Status)
	return fractions.store(&dst.ObjectMeta)
}

// ConvertFrom converts the hub version to this ClusterKeyIssuer.
func (dst *ClusterKeyIssuer) ConvertFrom(srcRaw conversion.Hub) error {
	src := srcRaw.(*v1beta1.ClusterKeyIssuer)
	dst.ObjectMeta = *src.ObjectMeta.DeepCopy()
	fractions := loadDurations(&dst.ObjectMeta)
	dst.Spec = ClusterKeyIssuerSpec{
		IssuerSpec:        issuerSpecFrom(&src.Spec.IssuerSpec, fractions),
		NamespaceSelector: src.Spec.NamespaceSelector.DeepCopy(),
	}
	dst.Status = issuerStatusFrom(&src.Status)
	return nil
}

// durations are the spellings of one object's durations that v1beta1's
// whole seconds do not give back, by field path.
type durations map[string]string

// roundedUp is a duration in whole seconds, rounded up.
func roundedUp(d time.Duration) int64 { return int64((d + time.Second - 1) / time.Second) }

// seconds converts a duration to whole seconds, rounded up, recording its
// spelling under path unless the seconds spell it back the same.
func (f durations) seconds(path string, d *Duration) int64 {
	if d == nil {
		return 0
	}
	s := roundedUp(d.Duration)
	if d.String() != (time.Duration(s) * time.Second).String() {
		f[path] = d.String()
	}
	return s
}

// secondsPtr is seconds for an optional v1beta1 field.
func (f durations) secondsPtr(path string, d *Duration) *int64 {
	if d == nil {
		return nil
	}
	s := f.seconds(path, d)
	return &s
}

// duration converts whole seconds back, in the recorded spelling when it
// still rounds up to them (the field was not changed at v1beta1).
func (f durations) duration(path string, s int64) *Duration {
	if text, ok := f[path]; ok {
		if d, err := NewDuration(text); err == nil && roundedUp(d.Duration) == s {
			return d
		}
	}
	return &Duration{Duration: time.Duration(s) * time.Second}
}

// durationOrNil is duration for a v1beta1 field where 0 means unset.
func (f durations) durationOrNil(path string, s int64) *Duration {
	if s == 0 {
		return nil
	}
	return f.duration(path, s)
}

// durationPtr is duration for an optional v1beta1 field.
func (f durations) durationPtr(path string, s *int64) *Duration {
	if s == nil {
		return nil
	}
	return f.duration(path, *s)
}

// store writes the spellings into the annotation, or removes it.
func (f durations) store(meta *metav1.ObjectMeta) error {
	delete(meta.Annotations, DurationsAnnotation)
	if len(f) == 0 {
		if len(meta.Annotations) == 0 {
			meta.Annotations = nil
		}
		return nil
	}
	raw, err := json.Marshal(map[string]string(f))
	if err != nil {
		return err
	}
	if meta.Annotations == nil {
		meta.Annotations = map[string]string{}
	}
	meta.Annotations[DurationsAnnotation] = string(raw)
	return nil
}

// loadDurations reads and removes the annotation; what does not parse is
// ignored (anyone who can write the object can write it, and it changes
// nothing but a spelling).
func loadDurations(meta *metav1.ObjectMeta) durations {
	raw, ok := meta.Annotations[DurationsAnnotation]
	if !ok {
		return nil
	}
	delete(meta.Annotations, DurationsAnnotation)
	if len(meta.Annotations) == 0 {
		meta.Annotations = nil
	}
	var f durations
	if json.Unmarshal([]byte(raw), &f) != nil {
		return nil
	}
	return f
}

func accessKeySpecTo(in *AccessKeySpec, f durations) v1beta1.AccessKeySpec {
	out := v1beta1.AccessKeySpec{
		IssuerRef:      v1beta1.IssuerReference{Kind: v1beta1.IssuerKind(in.IssuerRef.Kind), Name: in.IssuerRef.Name},
		Operations:     slices.Clone(in.Operations),
		Tags:           slices.Clone(in.Tags),
		Resources:      slices.Clone(in.Resources),
		Access:         v1beta1.AccessRestricted,
		KeyName:        in.KeyName,
		Secret:         secretSpecTo(&in.Secret),
		TTLSeconds:     f.seconds("spec.ttl", in.TTL),
		DeletionPolicy: v1beta1.DeletionPolicy(in.DeletionPolicy),
	}
	if in.Unrestricted {
		out.Access = v1beta1.AccessUnrestricted
	}
	if r := in.Rotation; r != nil {
		out.Rotation = &v1beta1.RotationSpec{
			EverySeconds:          f.seconds("spec.rotation.every", r.Every),
			GracePeriodSeconds:    f.seconds("spec.rotation.gracePeriod", r.GracePeriod),
			MinGracePeriodSeconds: f.secondsPtr("spec.rotation.minGracePeriod", r.MinGracePeriod),
			RenewBeforeSeconds:    f.seconds("spec.rotation.renewBefore", r.RenewBefore),
		}
	}
	for _, t := range in.RestartTargets {
		out.RestartTargets = append(out.RestartTargets, v1beta1.RestartTarget{Kind: v1beta1.RestartTargetKind(t.Kind), Name: t.Name})
	}
	return out
}

func accessKeySpecFrom(in *v1beta1.AccessKeySpec, f durations) AccessKeySpec {
	out := AccessKeySpec{
		IssuerRef:      IssuerReference{Kind: IssuerKind(in.IssuerRef.Kind), Name: in.IssuerRef.Name},
		Operations:     slices.Clone(in.Operations),
		Tags:           slices.Clone(in.Tags),
		Resources:      slices.Clone(in.Resources),
		Unrestricted:   in.Access == v1beta1.AccessUnrestricted,
		KeyName:        in.KeyName,
		Secret:         secretSpecFrom(&in.Secret),
		TTL:            f.durationOrNil("spec.ttl", in.TTLSeconds),
		DeletionPolicy: DeletionPolicy(in.DeletionPolicy),
	}
	if r := in.Rotation; r != nil {
		out.Rotation = &RotationSpec{
			Every:          f.durationOrNil("spec.rotation.every", r.EverySeconds),
			GracePeriod:    f.durationOrNil("spec.rotation.gracePeriod", r.GracePeriodSeconds),
			MinGracePeriod: f.durationPtr("spec.rotation.minGracePeriod", r.MinGracePeriodSeconds),
			RenewBefore:    f.durationOrNil("spec.rotation.renewBefore", r.RenewBeforeSeconds),
		}
	}
	for _, t := range in.RestartTargets {
		out.RestartTargets = append(out.RestartTargets, RestartTarget{Kind: RestartTargetKind(t.Kind), Name: t.Name})
	}
	return out
}

func secretSpecTo(in *SecretSpec) v1beta1.SecretSpec {
	out := v1beta1.SecretSpec{
		Name:        in.Name,
		Format:      v1beta1.SecretFormat(in.Format),
		Labels:      maps.Clone(in.Labels),
		Annotations: maps.Clone(in.Annotations),
	}
	if t := in.Template; t != nil {
		out.Template = v1beta1.SecretTemplate{Data: maps.Clone(t.Data), Labels: maps.Clone(t.Labels), Annotations: maps.Clone(t.Annotations)}
	}
	return out
}

func secretSpecFrom(in *v1beta1.SecretSpec) SecretSpec {
	out := SecretSpec{
		Name:        in.Name,
		Format:      SecretFormat(in.Format),
		Labels:      maps.Clone(in.Labels),
		Annotations: maps.Clone(in.Annotations),
	}
	if t := in.Template; t.Data != nil || t.Labels != nil || t.Annotations != nil {
		out.Template = &SecretTemplate{Data: maps.Clone(t.Data), Labels: maps.Clone(t.Labels), Annotations: maps.Clone(t.Annotations)}
	}
	return out
}

func mintingIssuerTo(in *MintingIssuer) v1beta1.MintingIssuer {
	if in == nil {
		return v1beta1.MintingIssuer{}
	}
	return v1beta1.MintingIssuer{Kind: v1beta1.IssuerKind(in.Kind), Name: in.Name, UID: in.UID, API: v1beta1.IssuerAPI(in.API)}
}

func mintingIssuerFrom(in *v1beta1.MintingIssuer) *MintingIssuer {
	if *in == (v1beta1.MintingIssuer{}) {
		return nil
	}
	return &MintingIssuer{Kind: IssuerKind(in.Kind), Name: in.Name, UID: in.UID, API: IssuerAPI(in.API)}
}

// timeTo keeps a required v1alpha1 time; the zero time is unset in v1beta1.
func timeTo(t metav1.Time) *metav1.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func timeFrom(t *metav1.Time) metav1.Time {
	if t == nil {
		return metav1.Time{}
	}
	return *t
}

func accessKeyStatusTo(in *AccessKeyStatus) v1beta1.AccessKeyStatus {
	out := v1beta1.AccessKeyStatus{
		Conditions:         cloneConditions(in.Conditions),
		ObservedGeneration: generationTo(in.ObservedGeneration),
		KeyID:              in.KeyID,
		KeyName:            in.KeyName,
		RoleID:             in.RoleID,
		CreatedAt:          in.CreatedAt.DeepCopy(),
		NextRotationAt:     in.NextRotationAt.DeepCopy(),
		ExpiresAt:          in.ExpiresAt.DeepCopy(),
		SecretName:         in.SecretName,
		Issuer:             mintingIssuerTo(in.Issuer),
		RestrictionHash:    in.RestrictionHash,
		CeilingHash:        in.CeilingHash,
		RotateRequest:      in.RotateRequest,
	}
	if p := in.Pending; p != nil {
		out.Pending = v1beta1.PendingKey{
			KeyName: p.KeyName, StartedAt: timeTo(p.StartedAt), Issuer: mintingIssuerTo(&p.Issuer),
			RestrictionHash: p.RestrictionHash, RotateRequest: p.RotateRequest, CeilingHash: p.CeilingHash,
		}
	}
	for i := range in.Retiring {
		r := &in.Retiring[i]
		retiring := v1beta1.RetiringKey{
			KeyID: r.KeyID, KeyName: r.KeyName, RoleID: r.RoleID, RevokeAt: timeTo(r.RevokeAt),
			Issuer: mintingIssuerTo(r.Issuer), RevokeAfter: r.RevokeAfter.DeepCopy(), WaitingFor: r.WaitingFor,
		}
		for _, c := range r.Consumers {
			retiring.Consumers = append(retiring.Consumers, v1beta1.RolledConsumer{Kind: c.Kind, Name: c.Name, Generation: c.Generation})
		}
		out.Retiring = append(out.Retiring, retiring)
	}
	return out
}

func accessKeyStatusFrom(in *v1beta1.AccessKeyStatus) AccessKeyStatus {
	out := AccessKeyStatus{
		Conditions:         cloneConditions(in.Conditions),
		ObservedGeneration: generationFrom(in.ObservedGeneration),
		KeyID:              in.KeyID,
		KeyName:            in.KeyName,
		RoleID:             in.RoleID,
		CreatedAt:          in.CreatedAt.DeepCopy(),
		NextRotationAt:     in.NextRotationAt.DeepCopy(),
		ExpiresAt:          in.ExpiresAt.DeepCopy(),
		SecretName:         in.SecretName,
		Issuer:             mintingIssuerFrom(&in.Issuer),
		RestrictionHash:    in.RestrictionHash,
		CeilingHash:        in.CeilingHash,
		RotateRequest:      in.RotateRequest,
	}
	if p := &in.Pending; *p != (v1beta1.PendingKey{}) {
		issuer := mintingIssuerFrom(&p.Issuer)
		out.Pending = &PendingKey{
			KeyName: p.KeyName, StartedAt: timeFrom(p.StartedAt),
			RestrictionHash: p.RestrictionHash, RotateRequest: p.RotateRequest, CeilingHash: p.CeilingHash,
		}
		if issuer != nil {
			out.Pending.Issuer = *issuer
		}
	}
	for i := range in.Retiring {
		r := &in.Retiring[i]
		retiring := RetiringKey{
			KeyID: r.KeyID, KeyName: r.KeyName, RoleID: r.RoleID, RevokeAt: timeFrom(r.RevokeAt),
			Issuer: mintingIssuerFrom(&r.Issuer), RevokeAfter: r.RevokeAfter.DeepCopy(), WaitingFor: r.WaitingFor,
		}
		for _, c := range r.Consumers {
			retiring.Consumers = append(retiring.Consumers, RolledConsumer{Kind: c.Kind, Name: c.Name, Generation: c.Generation})
		}
		out.Retiring = append(out.Retiring, retiring)
	}
	return out
}

func issuerSpecTo(in *IssuerSpec, f durations) v1beta1.IssuerSpec {
	out := v1beta1.IssuerSpec{
		API:              v1beta1.IssuerAPI(in.API),
		Zone:             in.Zone,
		Endpoint:         in.Endpoint,
		SOSEndpoint:      in.SOSEndpoint,
		InsecureEndpoint: permissionTo(in.AllowInsecureEndpoint),
		CredentialsRef: v1beta1.CredentialsReference{
			Name: in.CredentialsRef.Name, Namespace: in.CredentialsRef.Namespace,
			KeyField: in.CredentialsRef.KeyField, SecretField: in.CredentialsRef.SecretField,
		},
		KeyNamePrefix: in.KeyNamePrefix,
		Allowed: v1beta1.Allowed{
			Operations: slices.Clone(in.Allowed.Operations), Tags: slices.Clone(in.Allowed.Tags), Resources: slices.Clone(in.Allowed.Resources),
			Unrestricted: permissionTo(in.Allowed.Unrestricted),
		},
		Limits: v1beta1.IssuerLimits{
			MaxGracePeriodSeconds:     f.secondsPtr("spec.limits.maxGracePeriod", in.Limits.MaxGracePeriod),
			MinRotationPeriodSeconds:  f.secondsPtr("spec.limits.minRotationPeriod", in.Limits.MinRotationPeriod),
			MinSessionTTLSeconds:      f.secondsPtr("spec.limits.minSessionTTL", in.Limits.MinSessionTTL),
			MaxKeysPerAccessKey:       in.Limits.MaxKeysPerAccessKey,
			BeyondCeilingGraceSeconds: f.secondsPtr("spec.limits.beyondCeilingGrace", in.Limits.BeyondCeilingGrace),
		},
		KeysBeyondCeiling: v1beta1.BeyondCeilingPolicy(in.KeysBeyondCeiling),
	}
	for _, p := range in.AllowedDeletionPolicies {
		out.AllowedDeletionPolicies = append(out.AllowedDeletionPolicies, v1beta1.DeletionPolicy(p))
	}
	return out
}

func issuerSpecFrom(in *v1beta1.IssuerSpec, f durations) IssuerSpec {
	out := IssuerSpec{
		API:                   IssuerAPI(in.API),
		Zone:                  in.Zone,
		Endpoint:              in.Endpoint,
		SOSEndpoint:           in.SOSEndpoint,
		AllowInsecureEndpoint: in.InsecureEndpoint == v1beta1.PermissionAllow,
		CredentialsRef: CredentialsReference{
			Name: in.CredentialsRef.Name, Namespace: in.CredentialsRef.Namespace,
			KeyField: in.CredentialsRef.KeyField, SecretField: in.CredentialsRef.SecretField,
		},
		KeyNamePrefix: in.KeyNamePrefix,
		Allowed: Allowed{
			Operations: slices.Clone(in.Allowed.Operations), Tags: slices.Clone(in.Allowed.Tags), Resources: slices.Clone(in.Allowed.Resources),
			Unrestricted: in.Allowed.Unrestricted == v1beta1.PermissionAllow,
		},
		Limits: IssuerLimits{
			MaxGracePeriod:      f.durationPtr("spec.limits.maxGracePeriod", in.Limits.MaxGracePeriodSeconds),
			MinRotationPeriod:   f.durationPtr("spec.limits.minRotationPeriod", in.Limits.MinRotationPeriodSeconds),
			MinSessionTTL:       f.durationPtr("spec.limits.minSessionTTL", in.Limits.MinSessionTTLSeconds),
			MaxKeysPerAccessKey: in.Limits.MaxKeysPerAccessKey,
			BeyondCeilingGrace:  f.durationPtr("spec.limits.beyondCeilingGrace", in.Limits.BeyondCeilingGraceSeconds),
		},
		KeysBeyondCeiling: BeyondCeilingPolicy(in.KeysBeyondCeiling),
	}
	for _, p := range in.AllowedDeletionPolicies {
		out.AllowedDeletionPolicies = append(out.AllowedDeletionPolicies, DeletionPolicy(p))
	}
	return out
}

// permissionTo reads a v1alpha1 bool, false by default, as the v1beta1
// enum, Deny by default.
func permissionTo(allow bool) v1beta1.Permission {
	if allow {
		return v1beta1.PermissionAllow
	}
	return v1beta1.PermissionDeny
}

// The issuer's status in v1alpha1 holds 0 and false until a controller has
// served it; v1beta1 holds them as unset then, and as values after.
func issuerStatusTo(in *IssuerStatus) v1beta1.IssuerStatus {
	out := v1beta1.IssuerStatus{
		Conditions:         cloneConditions(in.Conditions),
		ObservedGeneration: generationTo(in.ObservedGeneration),
	}
	if in.ObservedGeneration > 0 {
		grantable := int32(in.Grantable)
		out.Grantable = &grantable
		out.SessionCredentials = v1beta1.Unavailable
		if in.CanAssumeRoles {
			out.SessionCredentials = v1beta1.Available
		}
	}
	if c := in.Ceiling; c != nil {
		operations := int32(c.Operations)
		out.Ceiling = &v1beta1.Ceiling{Operations: &operations, Services: slices.Clone(c.Services), IAMOperations: slices.Clone(c.IAMOperations)}
	}
	return out
}

func issuerStatusFrom(in *v1beta1.IssuerStatus) IssuerStatus {
	out := IssuerStatus{
		Conditions:         cloneConditions(in.Conditions),
		ObservedGeneration: generationFrom(in.ObservedGeneration),
		CanAssumeRoles:     in.SessionCredentials == v1beta1.Available,
	}
	if in.Grantable != nil {
		out.Grantable = int(*in.Grantable)
	}
	if c := in.Ceiling; c != nil {
		out.Ceiling = &Ceiling{Services: slices.Clone(c.Services), IAMOperations: slices.Clone(c.IAMOperations)}
		if c.Operations != nil {
			out.Ceiling.Operations = int(*c.Operations)
		}
	}
	return out
}

// generationTo: v1alpha1's 0 is unset (it is never a generation).
func generationTo(g int64) *int64 {
	if g == 0 {
		return nil
	}
	return &g
}

func generationFrom(g *int64) int64 {
	if g == nil {
		return 0
	}
	return *g
}

func cloneConditions(in []metav1.Condition) []metav1.Condition {
	if in == nil {
		return nil
	}
	out := make([]metav1.Condition, len(in))
	for i := range in {
		in[i].DeepCopyInto(&out[i])
	}
	return out
}
