package v1alpha1

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

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
	// A duration as people write them: 720h, 90s, 1h30m, 1.5s, or Go's own
	// spelling.
	duration := func(c randfill.Continue) *Duration {
		var text string
		switch c.Intn(4) {
		case 0: // a fraction of a second
			text = fmt.Sprintf("%dms", 1+c.Intn(5000))
		case 1:
			text = fmt.Sprintf("%dh", 1+c.Intn(1000))
		case 2:
			text = fmt.Sprintf("%ds", 1+c.Intn(100_000))
		default:
			text = (time.Duration(1+c.Intn(1_000_000)) * time.Second).String()
		}
		d, err := NewDuration(text)
		if err != nil {
			panic(err)
		}
		return d
	}
	optional := func(c randfill.Continue) *Duration {
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
				delete(in.(metav1.Object).GetAnnotations(), DurationsAnnotation)
				hub := kind.hub()
				if err := in.ConvertTo(hub); err != nil {
					t.Fatal(err)
				}
				out := kind.spoke()
				if err := out.ConvertFrom(hub); err != nil {
					t.Fatal(err)
				}
				sameJSON(t, seed, in, out)
			}
		})
		t.Run(kind.name+" v1beta1 to v1alpha1 and back", func(t *testing.T) {
			for seed := range int64(rounds) {
				in := kind.hub()
				filler(seed).Fill(in)
				delete(in.(metav1.Object).GetAnnotations(), DurationsAnnotation)
				spoke := kind.spoke()
				if err := spoke.ConvertFrom(in); err != nil {
					t.Fatal(err)
				}
				out := kind.hub()
				if err := spoke.ConvertTo(out); err != nil {
					t.Fatal(err)
				}
				sameJSON(t, seed, in, out)
			}
		})
	}
}

// sameJSON compares two objects as the API server sees them: as JSON.
func sameJSON(t *testing.T, seed int64, in, out any) {
	t.Helper()
	want, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != string(got) {
		t.Fatalf("seed %d changed on the way:\n%s", seed, diff.Diff(in, out))
	}
}

// A fraction of a second rounds up in v1beta1 and reads back exactly at
// v1alpha1, as does a spelling such as 90s; an annotation that no longer
// agrees with v1beta1 (the field was changed there) is ignored.
func TestDurationSpellings(t *testing.T) {
	ttl, err := NewDuration("1.5s")
	if err != nil {
		t.Fatal(err)
	}
	in := &AccessKey{Spec: AccessKeySpec{TTL: ttl}}
	hub := &v1beta1.AccessKey{}
	if err := in.ConvertTo(hub); err != nil {
		t.Fatal(err)
	}
	if hub.Spec.TTLSeconds != 2 {
		t.Fatalf("ttl 1.5s is %d seconds in v1beta1, want 2", hub.Spec.TTLSeconds)
	}
	if got := hub.Annotations[DurationsAnnotation]; got != `{"spec.ttl":"1.5s"}` {
		t.Fatalf("annotation %q", got)
	}
	back := &AccessKey{}
	if err := back.ConvertFrom(hub); err != nil {
		t.Fatal(err)
	}
	if back.Spec.TTL.String() != "1.5s" || back.Annotations != nil {
		t.Fatalf("read back as %v with annotations %v", back.Spec.TTL, back.Annotations)
	}

	hub.Spec.TTLSeconds = 60 // edited at v1beta1
	if err := back.ConvertFrom(hub); err != nil {
		t.Fatal(err)
	}
	if back.Spec.TTL.Duration != time.Minute {
		t.Fatalf("a stale annotation was used: ttl %v, want 1m", back.Spec.TTL.Duration)
	}

	// Anyone who can write the object can write the annotation: what does
	// not parse, or does not agree with the seconds, changes nothing.
	for _, forged := range []string{`{"spec.ttl":"1h"}`, `{"spec.ttl":"not a duration"}`, `not json`, `{"spec.ttl":5}`} {
		hub.Annotations = map[string]string{DurationsAnnotation: forged}
		if err := back.ConvertFrom(hub); err != nil {
			t.Fatalf("annotation %s: %v", forged, err)
		}
		if back.Spec.TTL.Duration != time.Minute || back.Spec.TTL.String() != "1m0s" {
			t.Fatalf("annotation %s made ttl read %s, want 1m0s", forged, back.Spec.TTL)
		}
		if _, kept := back.Annotations[DurationsAnnotation]; kept {
			t.Fatalf("annotation %s reads back at v1alpha1", forged)
		}
	}

	every, err := NewDuration("720h")
	if err != nil {
		t.Fatal(err)
	}
	in = &AccessKey{Spec: AccessKeySpec{Rotation: &RotationSpec{Every: every}}}
	if err := in.ConvertTo(hub); err != nil {
		t.Fatal(err)
	}
	if err := back.ConvertFrom(hub); err != nil {
		t.Fatal(err)
	}
	if raw, _ := json.Marshal(back.Spec.Rotation); string(raw) != `{"every":"720h"}` {
		t.Fatalf("720h reads back as %s", raw)
	}
}
