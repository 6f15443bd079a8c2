package v1alpha1

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/diff"
	"sigs.k8s.io/controller-runtime/pkg/conversion"
	"sigs.k8s.io/randfill"

	"github.com/exokey/exokey/api/v1beta1"
)

// Every valid object survives a round trip through the other version:
// v1alpha1 → v1beta1 → v1alpha1 and v1beta1 → v1alpha1 → v1beta1, for
// objects filled at random with what each version's schema accepts. The
// fill functions say what "valid" means where it matters to conversion.

const rounds = 2000

func filler(seed int64) *randfill.Filler {
	duration := func(c randfill.Continue) *metav1.Duration {
		if c.Intn(3) == 0 { // a fraction of a second now and then
			return &metav1.Duration{Duration: time.Duration(1+c.Intn(5000)) * time.Millisecond}
		}
		return &metav1.Duration{Duration: time.Duration(1+c.Intn(1_000_000)) * time.Second}
	}
	optional := func(c randfill.Continue) *metav1.Duration {
		if c.Bool() {
			return nil
		}
		return duration(c)
	}
	seconds := func(c randfill.Continue) int64 {
		if c.Bool() {
			return 0
		}
		return 1 + int64(c.Intn(1_000_000))
	}
	secondsPtr := func(c randfill.Continue) *int64 {
		if c.Bool() {
			return nil
		}
		s := int64(c.Intn(1_000_000))
		return &s
	}
	someTime := func(c randfill.Continue) metav1.Time {
		return metav1.NewTime(time.Unix(1_700_000_000+int64(c.Intn(100_000_000)), 0).UTC())
	}
	generation := func(c randfill.Continue) int64 {
		if c.Bool() {
			return -1
		}
		return 1 + int64(c.Intn(1000))
	}
	return randfill.NewWithSeed(seed).NilChance(0.3).NumElements(0, 3).Funcs(
		// v1alpha1
		func(s *RotationSpec, c randfill.Continue) {
			s.Every, s.GracePeriod, s.MinGracePeriod, s.RenewBefore = optional(c), optional(c), optional(c), optional(c)
		},
		func(s *AccessKeySpec, c randfill.Continue) {
			c.FillNoCustom(s)
			s.TTL = optional(c)
			if s.Secret.Template != nil && len(s.Secret.Template.Data) == 0 {
				s.Secret.Template.Data = map[string]string{"k": c.String(8)}
			}
		},
		func(l *IssuerLimits, c randfill.Continue) {
			c.FillNoCustom(l)
			l.MaxGracePeriod, l.MinRotationPeriod, l.MinSessionTTL, l.BeyondCeilingGrace = optional(c), optional(c), optional(c), optional(c)
		},
		func(m *MintingIssuer, c randfill.Continue) {
			c.FillNoCustom(m)
			m.Name = "issuer-" + c.String(5) // required
		},
		func(r *RetiringKey, c randfill.Continue) {
			c.FillNoCustom(r)
			r.RevokeAt = someTime(c) // required
		},
		func(p *PendingKey, c randfill.Continue) {
			c.FillNoCustom(p)
			p.StartedAt = someTime(c) // required
		},
		func(s *AccessKeyStatus, c randfill.Continue) {
			c.FillNoCustom(s)
			s.ObservedGeneration = generation(c)
		},
		func(s *IssuerStatus, c randfill.Continue) {
			c.FillNoCustom(s)
			s.ObservedGeneration = generation(c)
			s.Grantable = c.Intn(1000)
			if s.ObservedGeneration < 1 { // as no controller has written them yet
				s.Grantable, s.CanAssumeRoles = 0, false
			}
			if s.Ceiling != nil {
				s.Ceiling.Operations = c.Intn(1000)
			}
		},
		// v1beta1
		func(s *v1beta1.AccessKeySpec, c randfill.Continue) {
			c.FillNoCustom(s)
			s.Access = []v1beta1.Access{v1beta1.AccessRestricted, v1beta1.AccessUnrestricted}[c.Intn(2)]
			s.TTLSeconds = seconds(c)
		},
		func(s *v1beta1.RotationSpec, c randfill.Continue) {
			s.EverySeconds, s.GracePeriodSeconds, s.RenewBeforeSeconds = seconds(c), seconds(c), seconds(c)
			s.MinGracePeriodSeconds = secondsPtr(c)
		},
		func(s *v1beta1.IssuerSpec, c randfill.Continue) {
			c.FillNoCustom(s)
			s.InsecureEndpoint = permission(c)
			s.Allowed.Unrestricted = permission(c)
			s.Limits.MaxGracePeriodSeconds, s.Limits.MinRotationPeriodSeconds = secondsPtr(c), secondsPtr(c)
			s.Limits.MinSessionTTLSeconds, s.Limits.BeyondCeilingGraceSeconds = secondsPtr(c), secondsPtr(c)
		},
		func(m *v1beta1.MintingIssuer, c randfill.Continue) {
			c.FillNoCustom(m)
			m.Name = "issuer-" + c.String(5)
		},
		func(r *v1beta1.RetiringKey, c randfill.Continue) {
			c.FillNoCustom(r)
			r.RevokeAt = new(someTime(c))
		},
		func(p *v1beta1.PendingKey, c randfill.Continue) {
			if c.Bool() {
				*p = v1beta1.PendingKey{}
				return
			}
			c.FillNoCustom(p)
			p.KeyName = "key-" + c.String(5)
			p.StartedAt = new(someTime(c))
		},
		func(s *v1beta1.AccessKeyStatus, c randfill.Continue) {
			c.FillNoCustom(s)
			s.ObservedGeneration = new(generation(c))
		},
		func(s *v1beta1.IssuerStatus, c randfill.Continue) {
			c.FillNoCustom(s)
			s.ObservedGeneration = new(generation(c))
			s.Grantable, s.SessionCredentials = nil, ""
			if *s.ObservedGeneration >= 1 { // a controller sets both once it has served
				s.Grantable = new(int32(c.Intn(1000)))
				s.SessionCredentials = []v1beta1.Availability{v1beta1.Available, v1beta1.Unavailable}[c.Intn(2)]
			}
			if s.Ceiling != nil && s.Ceiling.Operations == nil {
				s.Ceiling.Operations = new(int32(0))
			}
		},
		func(m *metav1.ObjectMeta, c randfill.Continue) {
			m.Name, m.Namespace = c.String(10), c.String(10)
			c.Fill(&m.Labels)
			c.Fill(&m.Annotations)
		},
		func(t *metav1.Time, c randfill.Continue) { *t = someTime(c) },
		func(*metav1.TypeMeta, randfill.Continue) {}, // the webhook sets it
		func(cond *metav1.Condition, c randfill.Continue) {
			c.FillNoCustom(cond)
			cond.LastTransitionTime = someTime(c)
		},
	)
}

func permission(c randfill.Continue) v1beta1.Permission {
	return []v1beta1.Permission{v1beta1.PermissionAllow, v1beta1.PermissionDeny}[c.Intn(2)]
}

func TestRoundTrips(t *testing.T) {
	kinds := []struct {
		name  string
		spoke func() conversion.Convertible
		hub   func() conversion.Hub
	}{
		{"AccessKey", func() conversion.Convertible { return &AccessKey{} }, func() conversion.Hub { return &v1beta1.AccessKey{} }},
		{"KeyIssuer", func() conversion.Convertible { return &KeyIssuer{} }, func() conversion.Hub { return &v1beta1.KeyIssuer{} }},
		{"ClusterKeyIssuer", func() conversion.Convertible { return &ClusterKeyIssuer{} }, func() conversion.Hub { return &v1beta1.ClusterKeyIssuer{} }},
	}
	for _, kind := range kinds {
		t.Run(kind.name+" v1alpha1 to v1beta1 and back", func(t *testing.T) {
			for seed := range int64(rounds) {
				in := kind.spoke()
				filler(seed).Fill(in)
				delete(in.(metav1.Object).GetAnnotations(), FractionalDurationsAnnotation)
				hub := kind.hub()
				if err := in.ConvertTo(hub); err != nil {
					t.Fatal(err)
				}
				out := kind.spoke()
				if err := out.ConvertFrom(hub); err != nil {
					t.Fatal(err)
				}
				if !equality.Semantic.DeepEqual(in, out) {
					t.Fatalf("seed %d changed on the way:\n%s", seed, diff.Diff(in, out))
				}
			}
		})
		t.Run(kind.name+" v1beta1 to v1alpha1 and back", func(t *testing.T) {
			for seed := range int64(rounds) {
				in := kind.hub()
				filler(seed).Fill(in)
				delete(in.(metav1.Object).GetAnnotations(), FractionalDurationsAnnotation)
				spoke := kind.spoke()
				if err := spoke.ConvertFrom(in); err != nil {
					t.Fatal(err)
				}
				out := kind.hub()
				if err := spoke.ConvertTo(out); err != nil {
					t.Fatal(err)
				}
				if !equality.Semantic.DeepEqual(in, out) {
					t.Fatalf("seed %d changed on the way:\n%s", seed, diff.Diff(in, out))
				}
			}
		})
	}
}

// A fraction of a second rounds up in v1beta1 and reads back exactly at
// v1alpha1; an annotation that no longer agrees with v1beta1 (the field was
// changed there) is ignored.
func TestFractionalDurations(t *testing.T) {
	in := &AccessKey{Spec: AccessKeySpec{TTL: &metav1.Duration{Duration: 1500 * time.Millisecond}}}
	hub := &v1beta1.AccessKey{}
	if err := in.ConvertTo(hub); err != nil {
		t.Fatal(err)
	}
	if hub.Spec.TTLSeconds != 2 {
		t.Fatalf("ttl 1.5s is %d seconds in v1beta1, want 2", hub.Spec.TTLSeconds)
	}
	if got := hub.Annotations[FractionalDurationsAnnotation]; got != `{"spec.ttl":"1.5s"}` {
		t.Fatalf("annotation %q", got)
	}
	back := &AccessKey{}
	if err := back.ConvertFrom(hub); err != nil {
		t.Fatal(err)
	}
	if back.Spec.TTL.Duration != 1500*time.Millisecond || back.Annotations != nil {
		t.Fatalf("read back as %v with annotations %v", back.Spec.TTL.Duration, back.Annotations)
	}

	hub.Spec.TTLSeconds = 60 // edited at v1beta1
	if err := back.ConvertFrom(hub); err != nil {
		t.Fatal(err)
	}
	if back.Spec.TTL.Duration != time.Minute {
		t.Fatalf("a stale annotation was used: ttl %v, want 1m", back.Spec.TTL.Duration)
	}
}
