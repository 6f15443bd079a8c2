package v1alpha1_test

import (
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/exokey/exokey/api/v1alpha1"
)

func validAccessKey(namespace string) *iamv1alpha1.AccessKey {
	return &iamv1alpha1.AccessKey{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "ak-", Namespace: namespace},
		Spec: iamv1alpha1.AccessKeySpec{
			IssuerRef:  iamv1alpha1.IssuerReference{Name: "exoscale"},
			Operations: []string{"get-sos-object", "list-sos-bucket"},
			Resources:  []string{"sos/bucket:backups"},
		},
	}
}

func validKeyIssuer(namespace string) *iamv1alpha1.KeyIssuer {
	return &iamv1alpha1.KeyIssuer{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "issuer-", Namespace: namespace},
		Spec: iamv1alpha1.IssuerSpec{
			CredentialsRef: iamv1alpha1.CredentialsReference{Name: "exoscale-root"},
		},
	}
}

func validClusterKeyIssuer() *iamv1alpha1.ClusterKeyIssuer {
	return &iamv1alpha1.ClusterKeyIssuer{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "cluster-issuer-"},
		Spec: iamv1alpha1.ClusterKeyIssuerSpec{IssuerSpec: iamv1alpha1.IssuerSpec{
			CredentialsRef: iamv1alpha1.CredentialsReference{Name: "exoscale-root", Namespace: "exokey-system"},
		}},
	}
}

func duration(s string) *iamv1alpha1.Duration {
	d, err := iamv1alpha1.NewDuration(s)
	Expect(err).NotTo(HaveOccurred())
	return d
}

// createInvalid asks the API server to create obj and expects a refusal
// whose message contains every one of wantMessages.
func expectRefused(obj client.Object, wantMessages ...string) {
	err := k8sClient.Create(ctx, obj, client.DryRunAll)
	Expect(err).To(HaveOccurred(), "the API server accepted an invalid %T", obj)
	Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want 422 Invalid, got: %v", err)
	for _, want := range wantMessages {
		Expect(err.Error()).To(ContainSubstring(want))
	}
}

var _ = Describe("AccessKey admission", func() {
	var namespace string
	BeforeEach(func() { namespace = newNamespace("validation") })

	It("accepts a valid AccessKey and fills in the defaults", func() {
		ak := validAccessKey(namespace)
		ak.Spec.Rotation = &iamv1alpha1.RotationSpec{Every: duration("720h")}
		Expect(k8sClient.Create(ctx, ak)).To(Succeed())

		got := &iamv1alpha1.AccessKey{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ak), got)).To(Succeed())
		Expect(got.Spec.IssuerRef.Kind).To(Equal(iamv1alpha1.ClusterKeyIssuerKind))
		Expect(got.Spec.Secret.Format).To(Equal(iamv1alpha1.SecretFormatExoscale))
		Expect(got.Spec.DeletionPolicy).To(Equal(iamv1alpha1.DeletionPolicyDelete))
		Expect(got.Spec.Rotation.GracePeriod).To(Equal(duration("10m")))
	})

	DescribeTable("accepts",
		func(mutate func(*iamv1alpha1.AccessKey)) {
			ak := validAccessKey(namespace)
			mutate(ak)
			Expect(k8sClient.Create(ctx, ak, client.DryRunAll)).To(Succeed())
		},
		Entry("tags alone", func(ak *iamv1alpha1.AccessKey) {
			ak.Spec.Operations, ak.Spec.Resources, ak.Spec.Tags = nil, nil, []string{"compute"}
		}),
		Entry("the older tag syntax compute/*", func(ak *iamv1alpha1.AccessKey) { ak.Spec.Tags = []string{"compute/*"} }),
		Entry("an explicit unrestricted key", func(ak *iamv1alpha1.AccessKey) {
			ak.Spec.Operations, ak.Spec.Resources, ak.Spec.Unrestricted = nil, nil, true
		}),
		Entry("a grace period shorter than the rotation", func(ak *iamv1alpha1.AccessKey) {
			ak.Spec.Rotation = &iamv1alpha1.RotationSpec{Every: duration("1h"), GracePeriod: duration("59m")}
		}),
		Entry("a grace period without a schedule", func(ak *iamv1alpha1.AccessKey) {
			ak.Spec.Rotation = &iamv1alpha1.RotationSpec{GracePeriod: duration("2h")}
		}),
		Entry("a template", func(ak *iamv1alpha1.AccessKey) {
			ak.Spec.Secret = iamv1alpha1.SecretSpec{Format: iamv1alpha1.SecretFormatTemplate,
				Template: &iamv1alpha1.SecretTemplate{Data: map[string]string{"KEY": "{{ .KeyID }}"}}}
		}),
		Entry("session credentials renewed at a chosen time", func(ak *iamv1alpha1.AccessKey) {
			ak.Spec.TTL = duration("1h")
			ak.Spec.Rotation = &iamv1alpha1.RotationSpec{RenewBefore: duration("15m")}
		}),
		Entry("a KeyIssuer reference and Orphan", func(ak *iamv1alpha1.AccessKey) {
			ak.Spec.IssuerRef.Kind = iamv1alpha1.KeyIssuerKind
			ak.Spec.DeletionPolicy = iamv1alpha1.DeletionPolicyOrphan
		}),
	)

	DescribeTable("refuses, saying what to change",
		func(mutate func(*iamv1alpha1.AccessKey), wantMessages ...string) {
			ak := validAccessKey(namespace)
			mutate(ak)
			expectRefused(ak, wantMessages...)
		},
		Entry("a resource without DOMAIN/TYPE:NAME", func(ak *iamv1alpha1.AccessKey) {
			ak.Spec.Resources = []string{"backups-prod"}
		}, "spec.resources[0]", `should match '^[a-z]+/[a-z]+:.+$'`),
		Entry("a resource with an empty name", func(ak *iamv1alpha1.AccessKey) {
			ak.Spec.Resources = []string{"sos/bucket:"}
		}, "spec.resources[0]"),
		Entry("unrestricted with operations", func(ak *iamv1alpha1.AccessKey) {
			ak.Spec.Unrestricted = true
		}, "an unrestricted key takes no operations, tags or resources"),
		Entry("unrestricted with tags", func(ak *iamv1alpha1.AccessKey) {
			ak.Spec.Operations, ak.Spec.Resources, ak.Spec.Unrestricted, ak.Spec.Tags = nil, nil, true, []string{"sos"}
		}, "an unrestricted key takes no operations, tags or resources"),
		Entry("neither operations nor tags", func(ak *iamv1alpha1.AccessKey) {
			ak.Spec.Operations = nil
		}, "a restricted key needs at least one operation or tag"),
		Entry("a grace period as long as the rotation", func(ak *iamv1alpha1.AccessKey) {
			ak.Spec.Rotation = &iamv1alpha1.RotationSpec{Every: duration("1h"), GracePeriod: duration("1h")}
		}, "rotation.gracePeriod must be shorter than rotation.every"),
		Entry("a ttl with a rotation schedule", func(ak *iamv1alpha1.AccessKey) {
			ak.Spec.TTL = duration("1h")
			ak.Spec.Rotation = &iamv1alpha1.RotationSpec{Every: duration("2h")}
		}, "a ttl credential is renewed before it expires: remove rotation.every"),
		Entry("renewBefore as long as the ttl", func(ak *iamv1alpha1.AccessKey) {
			ak.Spec.TTL = duration("1h")
			ak.Spec.Rotation = &iamv1alpha1.RotationSpec{RenewBefore: duration("1h")}
		}, "rotation.renewBefore needs a ttl, and must be shorter than it"),
		Entry("renewBefore without a ttl", func(ak *iamv1alpha1.AccessKey) {
			ak.Spec.Rotation = &iamv1alpha1.RotationSpec{RenewBefore: duration("10m")}
		}, "rotation.renewBefore needs a ttl"),
		Entry("a sub-second ttl", func(ak *iamv1alpha1.AccessKey) { ak.Spec.TTL = duration("500ms") }, "ttl must be between 1s and 168h"),
		Entry("a ttl with deletionPolicy Orphan", func(ak *iamv1alpha1.AccessKey) {
			ak.Spec.TTL = duration("1h")
			ak.Spec.DeletionPolicy = iamv1alpha1.DeletionPolicyOrphan
		}, "deletionPolicy Orphan does not apply"),
		Entry("a zero rotation period", func(ak *iamv1alpha1.AccessKey) {
			ak.Spec.Rotation = &iamv1alpha1.RotationSpec{Every: duration("0s"), GracePeriod: duration("1m")}
		}, "rotation.every must be a positive duration"),
		Entry("a negative grace period", func(ak *iamv1alpha1.AccessKey) {
			ak.Spec.Rotation = &iamv1alpha1.RotationSpec{GracePeriod: duration("-1m")}
		}, "rotation.gracePeriod must be a positive duration"),
		Entry("format Template without a template", func(ak *iamv1alpha1.AccessKey) {
			ak.Spec.Secret.Format = iamv1alpha1.SecretFormatTemplate
		}, "secret.format Template needs secret.template"),
		Entry("a template with another format", func(ak *iamv1alpha1.AccessKey) {
			ak.Spec.Secret = iamv1alpha1.SecretSpec{Format: iamv1alpha1.SecretFormatAWS,
				Template: &iamv1alpha1.SecretTemplate{Data: map[string]string{"K": "v"}}}
		}, "secret.template is only used with secret.format: Template"),
		Entry("an unknown format", func(ak *iamv1alpha1.AccessKey) {
			ak.Spec.Secret.Format = "Dotenv"
		}, "spec.secret.format", `supported values: "Exoscale", "AWS", "CredentialsFile", "Template"`),
		Entry("a key name with a dot", func(ak *iamv1alpha1.AccessKey) {
			ak.Spec.KeyName = "team.backup"
		}, "spec.keyName"),
		Entry("a key name with a slash", func(ak *iamv1alpha1.AccessKey) {
			ak.Spec.KeyName = "team/backup"
		}, "spec.keyName"),
		Entry("an operation name with capitals", func(ak *iamv1alpha1.AccessKey) {
			ak.Spec.Operations = []string{"GetSosObject"}
		}, "spec.operations[0]"),
		Entry("an unknown issuer kind", func(ak *iamv1alpha1.AccessKey) {
			ak.Spec.IssuerRef.Kind = "Issuer"
		}, "spec.issuerRef.kind", `supported values: "ClusterKeyIssuer", "KeyIssuer"`),
		Entry("no issuer name", func(ak *iamv1alpha1.AccessKey) {
			ak.Spec.IssuerRef.Name = ""
		}, "spec.issuerRef.name"),
		Entry("a restart target of an unsupported kind", func(ak *iamv1alpha1.AccessKey) {
			ak.Spec.RestartTargets = []iamv1alpha1.RestartTarget{{Kind: "Pod", Name: "x"}}
		}, "spec.restartTargets[0].kind", `supported values: "Deployment", "StatefulSet", "DaemonSet"`),
		Entry("an unknown deletion policy", func(ak *iamv1alpha1.AccessKey) {
			ak.Spec.DeletionPolicy = "Retain"
		}, "spec.deletionPolicy", `supported values: "Delete", "Orphan"`),
		Entry("a Secret name that is not a DNS name", func(ak *iamv1alpha1.AccessKey) {
			ak.Spec.Secret.Name = "Backup_Writer"
		}, "spec.secret.name"),
	)

	It("refuses a duration that is not one", func() {
		ak := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "iam.exokey.io/v1alpha1", "kind": "AccessKey",
			"metadata": map[string]any{"generateName": "ak-", "namespace": namespace},
			"spec": map[string]any{
				"issuerRef":  map[string]any{"name": "exoscale"},
				"operations": []any{"get-sos-object"},
				"rotation":   map[string]any{"every": "a month"},
			},
		}}
		expectRefused(ak, "spec.rotation.every")
	})
})

var _ = Describe("issuer admission", func() {
	var namespace string
	BeforeEach(func() { namespace = newNamespace("issuers") })

	It("accepts valid issuers and fills in the defaults", func() {
		ki := validKeyIssuer(namespace)
		Expect(k8sClient.Create(ctx, ki)).To(Succeed())
		Expect(ki.Spec.API).To(Equal(iamv1alpha1.IssuerAPIIAMv3))
		Expect(ki.Spec.Zone).To(Equal("ch-gva-2"))
		Expect(ki.Spec.KeyNamePrefix).To(Equal("k8s"))
		Expect(ki.Spec.CredentialsRef.KeyField).To(Equal("EXOSCALE_API_KEY"))
		Expect(ki.Spec.CredentialsRef.SecretField).To(Equal("EXOSCALE_API_SECRET"))

		cki := validClusterKeyIssuer()
		cki.Spec.Endpoint = "http://127.0.0.1:8080/v2"
		Expect(k8sClient.Create(ctx, cki, client.DryRunAll)).To(Succeed())
	})

	DescribeTable("refuses a KeyIssuer",
		func(mutate func(*iamv1alpha1.KeyIssuer), wantMessages ...string) {
			ki := validKeyIssuer(namespace)
			mutate(ki)
			expectRefused(ki, wantMessages...)
		},
		Entry("reading credentials from another namespace", func(ki *iamv1alpha1.KeyIssuer) {
			ki.Spec.CredentialsRef.Namespace = "kube-system"
		}, "a KeyIssuer reads credentials from its own namespace"),
		Entry("an unknown API", func(ki *iamv1alpha1.KeyIssuer) { ki.Spec.API = "IAMv4" },
			"spec.api", `supported values: "IAMv3", "AccessKeyV2"`),
		Entry("an unknown zone", func(ki *iamv1alpha1.KeyIssuer) { ki.Spec.Zone = "us-east-1" }, "spec.zone"),
		Entry("an endpoint that is not a URL", func(ki *iamv1alpha1.KeyIssuer) { ki.Spec.Endpoint = "api.exoscale.com" },
			"spec.endpoint"),
		Entry("no credentials Secret name", func(ki *iamv1alpha1.KeyIssuer) { ki.Spec.CredentialsRef.Name = "" },
			"spec.credentialsRef.name"),
	)

	It("refuses a ClusterKeyIssuer that does not say where its credentials are", func() {
		cki := validClusterKeyIssuer()
		cki.Spec.CredentialsRef.Namespace = ""
		expectRefused(cki, "a ClusterKeyIssuer needs credentialsRef.namespace")
	})
})

var _ = Describe("the samples in config/samples", func() {
	It("are accepted by a server-side dry run", func() {
		for _, ns := range []string{"backups", "team-a"} {
			namespace := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
			Expect(client.IgnoreAlreadyExists(k8sClient.Create(ctx, namespace))).To(Succeed())
		}
		files, err := filepath.Glob(filepath.Join("..", "..", "config", "samples", "iam_*.yaml"))
		Expect(err).NotTo(HaveOccurred())
		Expect(files).To(HaveLen(3), "one sample of each kind")
		for _, file := range files {
			raw, err := os.ReadFile(file)
			Expect(err).NotTo(HaveOccurred())
			obj := &unstructured.Unstructured{}
			Expect(utilyaml.Unmarshal(raw, &obj.Object)).To(Succeed(), file)
			Expect(k8sClient.Create(ctx, obj, client.DryRunAll)).To(Succeed(), file)
		}
	})
})
