//go:build e2e

package e2e

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
)

// tenantClient is a client with the token of a ServiceAccount of namespace,
// bound there to role (a Role of that namespace, or a ClusterRole).
func tenantClient(namespace, name string, role rbacv1.RoleRef) client.Client {
	GinkgoHelper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}}
	Expect(k8sClient.Create(ctx, sa)).To(Succeed())
	Expect(k8sClient.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}, RoleRef: role,
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: namespace}}})).To(Succeed())
	request := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptrTo(int64(3600))}}
	Expect(k8sClient.SubResource("token").Create(ctx, sa, request)).To(Succeed())
	cfg := rest.AnonymousClientConfig(adminCfg)
	cfg.BearerToken = request.Status.Token
	c, err := client.New(cfg, client.Options{Scheme: k8sClient.Scheme()})
	Expect(err).NotTo(HaveOccurred())
	return c
}

// The chart's admission policy keeps the status of exokey's kinds the
// manager's alone, and its aggregated roles give tenants no status.
var _ = Describe("Status written by exokey alone", Ordered, func() {
	var m *manager
	BeforeAll(func() { m = startManager("manager-status-policy") })
	AfterAll(func() { m.kill() })

	It("refuses a tenant admin's status writes, and the manager still writes status", func() {
		By("a team admin whose Role grants iam.exokey.io resources [\"*\"] in its namespace, which includes accesskeys/status")
		namespace := newNamespace()
		Expect(k8sClient.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "team-admin", Namespace: namespace},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{"iam.exokey.io"}, Resources: []string{"*"}, Verbs: []string{"*"}}}})).To(Succeed())
		tenant := tenantClient(namespace, "team-admin", rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "team-admin"})

		ak := newAccessKey(namespace, "mine")
		Eventually(func() bool { return ready(ak) }, timeout, poll).Should(BeTrue(), "the manager writes status through the policy: %s", describe(m))
		Eventually(func() error {
			got := &iamv1beta1.AccessKey{}
			if err := tenant.Get(ctx, client.ObjectKeyFromObject(ak), got); err != nil {
				return err
			}
			got.Status.Retiring = append(got.Status.Retiring, iamv1beta1.RetiringKey{KeyID: "EXO000000000000000000000000",
				RevokeAt: ptr.To(metav1.NewTime(time.Now()))})
			return tenant.Status().Update(ctx, got)
		}, timeout, poll).Should(MatchError(ContainSubstring("written by the exokey manager alone")))

		By("the tenant still edits its AccessKey's spec")
		got := &iamv1beta1.AccessKey{}
		Expect(tenant.Get(ctx, client.ObjectKeyFromObject(ak), got)).To(Succeed())
		got.Spec.Operations = append(got.Spec.Operations, "list-sos-bucket")
		Expect(tenant.Update(ctx, got)).To(Succeed())
	})

	It("gives the aggregated edit role AccessKeys and no status", func() {
		namespace := newNamespace()
		editor := tenantClient(namespace, "editor", rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "edit"})
		ak := &iamv1beta1.AccessKey{ObjectMeta: metav1.ObjectMeta{Name: "edited", Namespace: namespace}, Spec: iamv1beta1.AccessKeySpec{
			IssuerRef: iamv1beta1.IssuerReference{Name: "exoscale"}, Operations: []string{"get-sos-object"}, Resources: []string{"sos/bucket:e2e"}}}
		Eventually(func() error { return editor.Create(ctx, ak) }, timeout, poll).Should(Succeed(), "edit aggregates exokey-edit")
		ak.Status.ObservedGeneration = ptr.To[int64](42)
		err := editor.Status().Update(ctx, ak)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("forbidden"))
	})
})
