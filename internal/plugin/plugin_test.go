package plugin_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	v3 "github.com/exoscale/egoscale/v3"
	v3credentials "github.com/exoscale/egoscale/v3/credentials"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/emulator"
	"github.com/exokey/exokey/internal/exoscale"
	"github.com/exokey/exokey/internal/exoscale/catalog"
	"github.com/exokey/exokey/internal/exoscale/policy"
	"github.com/exokey/exokey/internal/plugin"
)

var apis = []iamv1beta1.IssuerAPI{iamv1beta1.IssuerAPIIAMv3, iamv1beta1.IssuerAPIAccessKeyV2}

// restrictionsOf is what a spec grants, in the compiler's canonical form.
func restrictionsOf(api iamv1beta1.IssuerAPI, spec iamv1beta1.AccessKeySpec) exoscale.Restrictions {
	GinkgoHelper()
	resolve := exoscale.ResolveV3
	if api == iamv1beta1.IssuerAPIAccessKeyV2 {
		resolve = exoscale.Resolve
	}
	r, err := resolve(exoscale.KeySpec{Operations: spec.Operations, Tags: spec.Tags, Resources: spec.Resources,
		Unrestricted: spec.Access == iamv1beta1.AccessUnrestricted}, catalog.Default())
	Expect(err).NotTo(HaveOccurred())
	return r
}

// handMadeRole makes a role and an API key through the SDK, behind exokey.
func handMadeRole(name string, p *v3.IAMPolicy) (keyID string) {
	GinkgoHelper()
	c, err := v3.NewClient(v3credentials.NewStaticCredentials(rootKey, rootSecret), v3.ClientOptWithEndpoint(v3.Endpoint(endpoint)))
	Expect(err).NotTo(HaveOccurred())
	op, err := c.CreateIAMRole(ctx, v3.CreateIAMRoleRequest{Name: name, Policy: p})
	Expect(err).NotTo(HaveOccurred())
	op, err = c.Wait(ctx, op, v3.OperationStateSuccess)
	Expect(err).NotTo(HaveOccurred())
	key, err := c.CreateAPIKey(ctx, v3.CreateAPIKeyRequest{Name: name, RoleID: op.Reference.ID})
	Expect(err).NotTo(HaveOccurred())
	return key.Key
}

var _ = Describe("kubectl exokey import", func() {
	for _, api := range apis {
		It(fmt.Sprintf("round-trips a key exokey minted (%s): the manifest asks for the same restrictions and applies", api), func() {
			ns := newNamespace()
			original := readyKey(accessKey(ns, "original", api, iamv1beta1.AccessKeySpec{
				Operations: []string{"get-sos-object", "put-sos-object", "list-instances"},
				Tags:       []string{"dns"},
				Resources:  []string{"sos/bucket:alpha", "sos/bucket:beta"},
			}))
			_, secret := credentials(original)

			r := kubectlExokey(nil, "import", original.Status.KeyID, "--issuer", "ClusterKeyIssuer/"+issuerName(api), "-n", ns, "--name", "copy")
			Expect(r.code).To(Equal(0), r.stderr)
			Expect(r.stdout).To(HavePrefix("# Imported from key " + original.Status.KeyID))
			Expect(r.stdout).To(ContainSubstring("# The imported key " + original.Status.KeyID + " keeps working until it is revoked"))
			Expect(r.stdout + r.stderr).NotTo(ContainSubstring(secret))

			imported := &iamv1beta1.AccessKey{}
			Expect(yaml.UnmarshalStrict([]byte(r.stdout), imported)).To(Succeed())
			Expect(imported.Name).To(Equal("copy"))
			Expect(imported.Namespace).To(Equal(ns))
			Expect(imported.Spec.IssuerRef).To(Equal(original.Spec.IssuerRef))
			Expect(restrictionsOf(api, imported.Spec)).To(Equal(restrictionsOf(api, original.Spec)))
			if api == iamv1beta1.IssuerAPIIAMv3 {
				Expect(r.stdout).To(ContainSubstring("# Operations are IAM v3 names"), "import says which vocabulary it used")
			}

			Expect(k8sClient.Create(ctx, imported)).To(Succeed())
			applied := waitReady(client.ObjectKeyFromObject(imported))
			Expect(applied.Status.KeyID).NotTo(Equal(original.Status.KeyID), "exokey mints its own key for the imported manifest")
		})
	}

	It("names the key after the imported one when --name is not given", func() {
		ns := newNamespace()
		original := readyKey(accessKey(ns, "named", iamv1beta1.IssuerAPIIAMv3, iamv1beta1.AccessKeySpec{Tags: []string{"compute"}}))
		r := kubectlExokey(nil, "import", original.Status.KeyID, "--issuer", issuerName(iamv1beta1.IssuerAPIIAMv3), "-n", ns, "-o", "json")
		Expect(r.code).To(Equal(0), r.stderr)
		imported := &iamv1beta1.AccessKey{}
		Expect(json.Unmarshal([]byte(r.stdout), imported)).To(Succeed())
		Expect(imported.Name).To(Equal(strings.ToLower(original.Status.KeyName)))
		Expect(imported.Spec.Tags).To(Equal([]string{"compute"}))
	})

	It("refuses a hand-made role whose rule exokey cannot express, naming the rule", func() {
		ns := newNamespace()
		keyID := handMadeRole("zoned-reader", &v3.IAMPolicy{DefaultServiceStrategy: "deny",
			Services: map[string]v3.IAMServicePolicy{"compute": {Type: "rules", Rules: []v3.IAMServicePolicyRule{
				{Action: "allow", Expression: "operation == 'list-instances' && parameters.zone == 'ch-gva-2'"},
			}}}})
		r := kubectlExokey(nil, "import", keyID, "--issuer", "ClusterKeyIssuer/"+issuerName(iamv1beta1.IssuerAPIIAMv3), "-n", ns)
		Expect(r.code).To(Equal(plugin.ExitNo))
		Expect(r.stdout).To(BeEmpty(), "no manifest that grants more or less than the role")
		Expect(r.stderr).To(ContainSubstring("cannot be imported"))
		Expect(r.stderr).To(ContainSubstring("services.compute.rules[0]"))
		Expect(r.stderr).To(ContainSubstring(`parameters.zone == "ch-gva-2"`))
	})

	It("reads a policy from a file, as exo iam role show -O json prints a role, and checks it against the issuer's ceiling", func() {
		ns := newNamespace()
		narrow := clusterIssuer("narrow-import", iamv1beta1.IssuerAPIIAMv3, iamv1beta1.Allowed{Operations: []string{"get-sos-*"}, Resources: []string{"sos/bucket:*"}})
		Expect(k8sClient.Create(ctx, narrow)).To(Succeed())
		role := map[string]any{"name": "reader", "policy": map[string]any{
			"default-service-strategy": "deny",
			"services": map[string]any{"sos": map[string]any{"type": "rules", "rules": []any{
				map[string]any{"action": "allow", "expression": "operation in ['get-sos-object', 'put-sos-object'] && parameters.bucket == 'alpha'"},
			}}},
		}}
		raw, _ := json.Marshal(role)
		path := filepath.Join(GinkgoT().TempDir(), "role.json")
		Expect(os.WriteFile(path, raw, 0o600)).To(Succeed())

		r := kubectlExokey(nil, "import", "--from-file", path, "--issuer", "ClusterKeyIssuer/narrow-import", "-n", ns, "--name", "reader")
		Expect(r.code).To(Equal(0), r.stderr)
		imported := &iamv1beta1.AccessKey{}
		Expect(yaml.UnmarshalStrict([]byte(r.stdout), imported)).To(Succeed())
		Expect(imported.Spec.Operations).To(Equal([]string{"get-sos-object", "put-sos-object"}))
		Expect(imported.Spec.Resources).To(Equal([]string{"sos/bucket:alpha"}))
		Expect(r.stderr).To(ContainSubstring("would refuse this AccessKey (NotPermitted): beyond its ceiling: operation put-sos-object"))

		Expect(kubectlExokey(nil, "import", "--from-file", path, "--issuer", "ClusterKeyIssuer/narrow-import", "-n", ns).code).
			To(Equal(plugin.ExitError), "a policy carries no name")
		Expect(kubectlExokey(nil, "import", "EXO0", "--from-file", path, "--issuer", "narrow-import", "--name", "x").code).
			To(Equal(plugin.ExitError), "a key and a file")
	})
})

var _ = Describe("kubectl exokey can-i", func() {
	for _, api := range apis {
		It(fmt.Sprintf("agrees with the emulator's authorization of the minted key (%s)", api), func() {
			ns := newNamespace()
			ak := readyKey(accessKey(ns, "app", api, iamv1beta1.AccessKeySpec{
				Operations: []string{"get-sos-object", "put-sos-object", "list-instances"},
				Tags:       []string{"dns"},
				Resources:  []string{"sos/bucket:alpha"},
			}))
			key, secret := credentials(ak)
			allowed, refused := 0, 0
			for _, operation := range []string{"get-sos-object", "put-sos-object", "delete-sos-object", "list-sos-bucket",
				"list-instances", "get-instance", "list-dns-domains", "create-dns-domain", "create-api-key"} {
				for _, bucket := range []string{"", "alpha", "beta"} {
					params := map[string]string{}
					args := []string{"can-i", operation, ak.Name, "-n", ns}
					if bucket != "" {
						params["bucket"] = bucket
						args = append(args, "--bucket", bucket)
					}
					want, err := emulator.Authorize(ctx, endpoint, key, secret, operation, params)
					Expect(err).NotTo(HaveOccurred())
					r := kubectlExokey(nil, args...)
					if want {
						allowed++
						Expect(r.code).To(Equal(0), "%s on %q: the emulator allows it", operation, bucket)
						Expect(r.stdout).To(HavePrefix("yes\n"))
					} else {
						refused++
						Expect(r.code).To(Equal(plugin.ExitNo), "%s on %q: the emulator refuses it", operation, bucket)
						Expect(r.stdout).To(HavePrefix("no\n"))
					}
					Expect(r.stdout).To(MatchRegexp(`\n  \S.+\(`+string(api)+`\)\n$`), "a reason")
				}
			}
			Expect(allowed).To(BeNumerically(">", 4))
			Expect(refused).To(BeNumerically(">", 4))
		})
	}

	It("reads the organisation policy as a second gate, and says when a verdict depends on the caller", func() {
		ns := newNamespace()
		ak := readyKey(accessKey(ns, "computer", iamv1beta1.IssuerAPIIAMv3, iamv1beta1.AccessKeySpec{Tags: []string{"compute"}}))
		Expect(kubectlExokey(nil, "can-i", "list-instances", ak.Name, "-n", ns).stdout).To(HavePrefix("yes\n"))

		Expect(emu.SetOrganizationPolicy(policy.Policy{DefaultServiceStrategy: "allow", Services: map[string]policy.ServicePolicy{
			"compute": {Type: "rules", Rules: []policy.PolicyRule{{Action: "allow", Expression: "source_ip.inIpRange('10.0.0.0/8')"}}},
			"dns":     {Type: "deny"},
		}})).To(Succeed())
		DeferCleanup(func() { Expect(emu.SetOrganizationPolicy(policy.Policy{})).To(Succeed()) })
		r := kubectlExokey(nil, "can-i", "list-instances", ak.Name, "-n", ns)
		Expect(r.code).To(Equal(plugin.ExitNo))
		Expect(r.stdout).To(HavePrefix("depends on source_ip\n"))
		Expect(r.stdout).To(ContainSubstring("organisation policy: services.compute.rules[0] (allow) depends on source_ip"))
	})

	It("says which rule decides, and when no key holds the restrictions yet", func() {
		ns := newNamespace()
		ak := readyKey(accessKey(ns, "reader", iamv1beta1.IssuerAPIIAMv3, iamv1beta1.AccessKeySpec{
			Operations: []string{"get-sos-object"}, Resources: []string{"sos/bucket:alpha"},
		}))
		r := kubectlExokey(nil, "can-i", "get-sos-object", ak.Name, "--bucket", "alpha", "-n", ns, "-o", "json")
		Expect(r.code).To(Equal(0))
		var v struct {
			Allowed bool   `json:"allowed"`
			Reason  string `json:"reason"`
			Note    string `json:"note"`
		}
		Expect(json.Unmarshal([]byte(r.stdout), &v)).To(Succeed())
		Expect(v.Allowed).To(BeTrue())
		Expect(v.Reason).To(ContainSubstring("services.sos.rules[0] (allow) matches"))
		Expect(v.Note).To(BeEmpty())

		Expect(kubectlExokey(nil, "can-i", "list-instances", ak.Name, "-n", ns).stdout).
			To(ContainSubstring("class compute is not in the policy: default-service-strategy is deny"))

		refused := &iamv1beta1.AccessKey{ObjectMeta: metav1.ObjectMeta{Name: "orphaned", Namespace: ns}, Spec: iamv1beta1.AccessKeySpec{
			IssuerRef: iamv1beta1.IssuerReference{Kind: iamv1beta1.KeyIssuerKind, Name: "missing"}, Tags: []string{"compute"}}}
		Expect(k8sClient.Create(ctx, refused)).To(Succeed())
		r = kubectlExokey(nil, "can-i", "list-instances", "orphaned", "-n", ns)
		Expect(r.code).To(Equal(plugin.ExitError), "the issuer says which API: without it there is no answer")
		Expect(r.stderr).To(ContainSubstring(`issuer KeyIssuer "missing"`))

		r = kubectlExokey(nil, "can-i", "get-sos-objekt", ak.Name, "-n", ns)
		Expect(r.code).To(Equal(plugin.ExitError))
		Expect(r.stderr).To(ContainSubstring(`did you mean "get-sos-object"?`))
	})
})

var _ = Describe("kubectl exokey status and rotate", func() {
	It("shows live AccessKeys, a refused one with its reason and last event, and a rotation's retiring key", func() {
		ns := newNamespace()
		ready := readyKey(accessKey(ns, "ready", iamv1beta1.IssuerAPIIAMv3, iamv1beta1.AccessKeySpec{
			Tags: []string{"compute"}, Rotation: &iamv1beta1.RotationSpec{EverySeconds: iamv1beta1.SecondsOf(48 * time.Hour)},
		}))
		refused := accessKey(ns, "refused", iamv1beta1.IssuerAPIIAMv3, iamv1beta1.AccessKeySpec{Tags: []string{"compute"}})
		refused.Spec.IssuerRef.Name = "no-such-issuer"
		Expect(k8sClient.Create(ctx, refused)).To(Succeed())
		Eventually(func(g Gomega) {
			r := kubectlExokey(nil, "status", "-n", ns)
			g.Expect(r.code).To(Equal(0))
			g.Expect(r.stdout).To(MatchRegexp(`(?m)^` + ns + `\s+refused\s+False \(IssuerNotFound\)\s+-\s+-\s+-\s+-\s+ClusterKeyIssuer "no-such-issuer" not found \(last event Warning IssuerNotFound \d+s ago\)$`))
		}).WithTimeout(20 * time.Second).Should(Succeed())

		r := kubectlExokey(nil, "status", "-n", ns)
		Expect(r.stdout).To(HavePrefix("NAMESPACE"))
		Expect(r.stdout).To(MatchRegexp(`(?m)^` + ns + `\s+ready\s+True\s+` + ready.Status.KeyID + `\s+\S+\s+in 4[78]h\s+-\s+-$`))

		r = kubectlExokey(nil, "rotate", "ready", "-n", ns, "--wait", "--timeout", "30s")
		Expect(r.code).To(Equal(0), r.stderr)
		rotated := &iamv1beta1.AccessKey{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ready), rotated)).To(Succeed())
		Expect(rotated.Status.KeyID).NotTo(Equal(ready.Status.KeyID))
		Expect(r.stdout).To(ContainSubstring("key " + rotated.Status.KeyID + " published in Secret ready; " + ready.Status.KeyID + " is revoked at"))
		newKey, newSecret := credentials(rotated)
		Expect(emulator.Authorize(ctx, endpoint, newKey, newSecret, "list-instances", nil)).To(BeTrue(), "the published key works")

		r = kubectlExokey(nil, "status", "ready", "-n", ns, "-o", "json")
		Expect(r.code).To(Equal(0))
		var rows []struct {
			Name     string `json:"name"`
			Ready    string `json:"ready"`
			KeyID    string `json:"keyID"`
			Retiring []struct {
				KeyID string `json:"keyID"`
			} `json:"retiring"`
		}
		Expect(json.Unmarshal([]byte(r.stdout), &rows)).To(Succeed())
		Expect(rows).To(HaveLen(1))
		Expect(rows[0].KeyID).To(Equal(rotated.Status.KeyID))
		Expect(rows[0].Retiring).To(HaveLen(1))
		Expect(rows[0].Retiring[0].KeyID).To(Equal(ready.Status.KeyID))
		Expect(kubectlExokey(nil, "status", "-n", ns).stdout).To(MatchRegexp(`(?m)^` + ns + `\s+ready\s+True\s+` + rotated.Status.KeyID + `\s+.*` + ready.Status.KeyID + ` revoked in \d+m`))

		other := newNamespace()
		elsewhere := accessKey(other, "elsewhere", iamv1beta1.IssuerAPIIAMv3, iamv1beta1.AccessKeySpec{Tags: []string{"dns"}})
		elsewhere.Spec.IssuerRef.Name = "no-such-issuer"
		Expect(k8sClient.Create(ctx, elsewhere)).To(Succeed())
		all := kubectlExokey(nil, "status", "-A")
		Expect(all.stdout).To(MatchRegexp(`(?m)^` + ns + `\s+ready\s`))
		Expect(all.stdout).To(MatchRegexp(`(?m)^` + other + `\s+elsewhere\s`))
		Expect(kubectlExokey(nil, "status", "-n", ns).stdout).NotTo(ContainSubstring(other))
		Expect(kubectlExokey(nil, "status", "nope", "-n", ns).code).To(Equal(plugin.ExitError))
	})

	It("shows when a session credential is renewed and when it expires", func() {
		ns := newNamespace()
		ak := readyKey(accessKey(ns, "short", iamv1beta1.IssuerAPIIAMv3, iamv1beta1.AccessKeySpec{
			Tags: []string{"dns"}, TTLSeconds: iamv1beta1.SecondsOf(time.Hour)}))
		r := kubectlExokey(nil, "status", "-n", ns)
		Expect(r.stdout).To(MatchRegexp(`(?m)^` + ns + `\s+short\s+True\s+` + ak.Status.KeyID + `\s+\S+\s+in 39m\d*s? \(expires in 59m\d*s?\)\s+-\s+-$`))
		r = kubectlExokey(nil, "status", "short", "-n", ns, "-o", "json")
		var rows []struct {
			ExpiresAt metav1.Time `json:"expiresAt"`
		}
		Expect(json.Unmarshal([]byte(r.stdout), &rows)).To(Succeed())
		Expect(rows[0].ExpiresAt.Time).To(BeTemporally("~", ak.Status.ExpiresAt.Time, time.Second))
	})

	It("fails rotate --wait with the reason when no new key can be published", func() {
		ns := newNamespace()
		ak := readyKey(accessKey(ns, "stuck", iamv1beta1.IssuerAPIIAMv3, iamv1beta1.AccessKeySpec{Tags: []string{"dns"}}))
		// Point it at an issuer that does not exist: the rotation is refused.
		patch := client.MergeFrom(ak.DeepCopy())
		ak.Spec.IssuerRef.Name = "gone"
		Expect(k8sClient.Patch(ctx, ak, patch)).To(Succeed())
		r := kubectlExokey(nil, "rotate", "stuck", "-n", ns, "--wait", "--timeout", "3s")
		Expect(r.code).To(Equal(plugin.ExitError))
		Expect(r.stderr).To(ContainSubstring("was not published within 3s (IssuerNotFound"))
	})
})

var _ = Describe("kubectl exokey operations", func() {
	It("lists what an issuer may grant: its ceiling and what its key holds", func() {
		ns := newNamespace()
		// A key that holds compute reads only, made the issuer of a KeyIssuer
		// whose ceiling is the whole compute tag and sos.
		holder := readyKey(accessKey(ns, "issuer-key", iamv1beta1.IssuerAPIIAMv3, iamv1beta1.AccessKeySpec{
			Operations: []string{"list-instances", "get-instance", "get-operation", "get-api-key", "get-iam-role"},
		}))
		key, secret := credentials(holder)
		Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "team-key", Namespace: ns},
			StringData: map[string]string{"EXOSCALE_API_KEY": key, "EXOSCALE_API_SECRET": secret}})).To(Succeed())
		Expect(k8sClient.Create(ctx, &iamv1beta1.KeyIssuer{ObjectMeta: metav1.ObjectMeta{Name: "team", Namespace: ns},
			Spec: iamv1beta1.IssuerSpec{API: iamv1beta1.IssuerAPIIAMv3, Endpoint: endpoint,
				CredentialsRef: iamv1beta1.CredentialsReference{Name: "team-key"},
				Allowed:        iamv1beta1.Allowed{Tags: []string{"compute", "sos"}, Resources: []string{"sos/bucket:team-*"}}}})).To(Succeed())

		r := kubectlExokey(nil, "operations", "--issuer", "KeyIssuer/team", "-n", ns)
		Expect(r.code).To(Equal(0), r.stderr)
		Expect(r.stdout).To(ContainSubstring("# KeyIssuer/team may grant 2 operations"))
		Expect(r.stdout).To(ContainSubstring("sos operations only on buckets matching sos/bucket:team-*"))
		Expect(r.stdout).To(ContainSubstring("compute (2 operations)\n  get-instance\n  list-instances\n"))
		Expect(r.stdout).NotTo(ContainSubstring("get-operation"), "beyond the ceiling though the key holds it")
		Expect(r.stdout).NotTo(ContainSubstring("sos ("), "within the ceiling but the key holds none")
		Expect(r.stdout).NotTo(ContainSubstring(secret))

		r = kubectlExokey(map[string]string{"EXOSCALE_API_KEY": key, "EXOSCALE_API_SECRET": secret, "EXOSCALE_API_ENDPOINT": endpoint},
			"operations", "--mine", "-o", "json")
		Expect(r.code).To(Equal(0), r.stderr)
		var answer struct {
			Services []struct {
				Service    string   `json:"service"`
				Operations []string `json:"operations"`
			} `json:"services"`
		}
		Expect(json.Unmarshal([]byte(r.stdout), &answer)).To(Succeed())
		held := map[string][]string{}
		for _, s := range answer.Services {
			held[s.Service] = s.Operations
		}
		Expect(held).To(HaveKeyWithValue("compute", []string{"get-instance", "list-instances"}))
		Expect(held).To(HaveKeyWithValue("iam", ConsistOf("get-api-key", "get-iam-role")))

		all := kubectlExokey(nil, "operations", "--tag", "sos/*")
		Expect(all.code).To(Equal(0))
		Expect(all.stdout).To(HavePrefix(fmt.Sprintf("# in the IAM v3 vocabulary\nsos (%d operations)", len(catalog.Default().ClassOperations("sos")))))
		Expect(all.stdout).To(ContainSubstring("\n  get-object\n"))
		legacy := kubectlExokey(nil, "operations", "--tag", "sos", "--api", "AccessKeyV2")
		Expect(legacy.stdout).To(HavePrefix(fmt.Sprintf("# in the legacy access-key vocabulary\nsos (%d operations)", len(catalog.Default().TagOperations("sos")))))
		Expect(legacy.stdout).To(ContainSubstring("\n  get-sos-object\n"))
		Expect(kubectlExokey(nil, "operations", "--tag", "nope").stderr).To(ContainSubstring(`unknown tag "nope": in the IAM v3 vocabulary the tags are`))
		Expect(kubectlExokey(nil, "operations", "--mine").stderr).To(ContainSubstring("set both"))
	})
})

var _ = Describe("kubectl exokey as a tenant", func() {
	It("has the user's rights and no more: status and can-i in their namespace, no issuer credentials to import with", func() {
		ns := newNamespace()
		ak := readyKey(accessKey(ns, "app", iamv1beta1.IssuerAPIIAMv3, iamv1beta1.AccessKeySpec{Tags: []string{"dns"}}))
		Expect(k8sClient.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "accesskey-reader", Namespace: ns},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{iamv1beta1.GroupVersion.Group}, Resources: []string{"accesskeys"}, Verbs: []string{"get", "list", "patch"}},
				{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"list"}},
			}})).To(Succeed())
		Expect(k8sClient.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "team", Namespace: ns},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "accesskey-reader"},
			Subjects: []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: "team-member"}}})).To(Succeed())
		tenant := userKubeconfig("team-member")

		Eventually(func() string { return kubectlExokeyAs(tenant, nil, "status", "-n", ns).stdout }).
			Should(MatchRegexp(`(?m)^` + ns + `\s+app\s+True\s+` + ak.Status.KeyID))
		Expect(kubectlExokeyAs(tenant, nil, "can-i", "list-dns-domains", "app", "-n", ns).code).To(Equal(0))

		// Even a tenant who may read the issuers signs nothing with their
		// credentials: the plugin reads the Secret with the user's rights.
		Expect(k8sClient.Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: ns + "-issuer-reader"},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{iamv1beta1.GroupVersion.Group}, Resources: []string{"clusterkeyissuers"}, Verbs: []string{"get"}}}})).To(Succeed())
		Expect(k8sClient.Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: ns + "-issuer-reader"},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: ns + "-issuer-reader"},
			Subjects: []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: "team-member"}}})).To(Succeed())
		Eventually(func() string {
			return kubectlExokeyAs(tenant, nil, "import", ak.Status.KeyID, "--issuer", "ClusterKeyIssuer/"+issuerName(iamv1beta1.IssuerAPIIAMv3), "-n", ns).stderr
		}).Should(ContainSubstring(`secrets "` + rootSecretName + `" is forbidden`))
		r := kubectlExokeyAs(tenant, nil, "import", ak.Status.KeyID, "--issuer", "ClusterKeyIssuer/"+issuerName(iamv1beta1.IssuerAPIIAMv3), "-n", ns)
		Expect(r.code).To(Equal(plugin.ExitError))
		Expect(r.stdout).To(BeEmpty())
		Expect(kubectlExokeyAs(tenant, nil, "status", "-A").stderr).To(ContainSubstring("forbidden"), "other namespaces stay closed")
		Expect(kubectlExokeyAs(tenant, nil, "operations", "--issuer", issuerName(iamv1beta1.IssuerAPIIAMv3)).stderr).To(ContainSubstring("forbidden"))
	})
})
