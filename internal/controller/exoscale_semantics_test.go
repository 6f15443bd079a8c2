package controller

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	v3 "github.com/exoscale/egoscale/v3"
	v3creds "github.com/exoscale/egoscale/v3/credentials"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/emulator"
	"github.com/exokey/exokey/internal/exoscale/policy"
)

// s3As is an unmodified AWS SDK client signing with a credential.
func s3As(key, secret, endpoint string) *s3.Client {
	return emulator.NewS3Client(endpoint, "ch-gva-2", key, secret)
}

// s3Verdict reads an S3 call's error: nil allowed, AccessDenied denied.
func s3Verdict(err error) string {
	var apiErr smithy.APIError
	switch {
	case err == nil:
		return "allowed"
	case errors.As(err, &apiErr) && apiErr.ErrorCode() == "AccessDenied":
		return "denied"
	}
	return err.Error()
}

// buckets makes two buckets with an object each, as the root key.
func buckets(namespace string) (mine, other string) {
	root, rootSecret := emu.Root()
	c := s3As(root, rootSecret, sosEndpoint)
	mine, other = namespace+"-mine", namespace+"-other"
	for _, b := range []string{mine, other} {
		_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)})
		ExpectWithOffset(1, err).NotTo(HaveOccurred())
		_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String("o"), Body: strings.NewReader("x")})
		ExpectWithOffset(1, err).NotTo(HaveOccurred())
	}
	return mine, other
}

// s3Probes are what a key restricted to reading bucket mine may and may
// not do, asked with the AWS SDK.
func s3Probes(c *s3.Client, mine, other string) map[string]string {
	get := func(b string) error {
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b), Key: aws.String("o")})
		if err == nil {
			out.Body.Close()
		}
		return err
	}
	_, listErr := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(mine)})
	_, putErr := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(mine), Key: aws.String("new"), Body: strings.NewReader("y")})
	return map[string]string{
		"GetObject mine": s3Verdict(get(mine)), "ListObjectsV2 mine": s3Verdict(listErr),
		"PutObject mine": s3Verdict(putErr), "GetObject other": s3Verdict(get(other)),
	}
}

var readOnlyVerdicts = map[string]string{
	"GetObject mine": "allowed", "ListObjectsV2 mine": "allowed", "PutObject mine": "denied", "GetObject other": "denied",
}

var _ = Describe("Keys that Exoscale's S3 endpoint honours", func() {
	for _, tc := range []struct {
		api        iamv1beta1.IssuerAPI
		vocabulary string
		operations []string
	}{
		{iamv1beta1.IssuerAPIIAMv3, "legacy names", []string{"get-sos-object", "list-sos-bucket"}},
		{iamv1beta1.IssuerAPIIAMv3, "S3 action names", []string{"get-object", "head-object", "list-objects"}},
		{iamv1beta1.IssuerAPIAccessKeyV2, "legacy names", []string{"get-sos-object", "list-sos-bucket"}},
	} {
		It("mints a key an AWS SDK reads its bucket with and nothing more ("+string(tc.api)+", "+tc.vocabulary+", AWS format)", func() {
			ns := newNamespace(nil)
			mine, other := buckets(ns)
			iss := clusterIssuer("sos-"+ns, tc.api, nil)
			iss.Spec.SOSEndpoint = sosEndpoint
			Expect(k8sClient.Create(ctx, iss)).To(Succeed())
			DeferCleanup(func() { _ = k8sClient.Delete(context.Background(), iss) })
			ak := newAccessKey(ns, "reader", tc.api, func(ak *iamv1beta1.AccessKey) {
				ak.Spec.IssuerRef.Name = iss.Name
				ak.Spec.Operations, ak.Spec.Resources = tc.operations, []string{"sos/bucket:" + mine}
				ak.Spec.Secret.Format = iamv1beta1.SecretFormatAWS
			})
			ak = waitReady(ak)
			data := secretOf(ak).Data
			Expect(string(data["AWS_ENDPOINT_URL_S3"])).To(Equal(sosEndpoint), "the issuer's sosEndpoint reaches the workload")
			c := s3As(string(data["AWS_ACCESS_KEY_ID"]), string(data["AWS_SECRET_ACCESS_KEY"]), string(data["AWS_ENDPOINT_URL_S3"]))
			Expect(s3Probes(c, mine, other)).To(Equal(readOnlyVerdicts))

			if tc.api == iamv1beta1.IssuerAPIIAMv3 {
				rule := rolePolicy(ak.Status.RoleID).Services["sos"].Rules[0].Expression
				Expect(rule).To(ContainSubstring("'get-object'"))
				Expect(rule).To(ContainSubstring("'list-objects'"))
				Expect(rule).NotTo(ContainSubstring("-sos-"), "no legacy S3 name reaches a role")
			}
		})
	}

	It("refuses an S3 action name on an AccessKeyV2 issuer, naming the legacy equivalent", func() {
		ns := newNamespace(nil)
		ak := newAccessKey(ns, "v3-names", iamv1beta1.IssuerAPIAccessKeyV2, func(ak *iamv1beta1.AccessKey) {
			ak.Spec.Operations = []string{"get-object"}
		})
		Expect(waitRefused(ak, ReasonInvalidSpec)).To(ContainSubstring("on an AccessKeyV2 issuer ask for get-sos-object"))
	})
})

// issuerWithRole creates a ClusterKeyIssuer whose credentials are an IAM
// v3 key on a role of the given policy (nil: an empty one, as the Owner
// role), made behind exokey with the SDK.
func issuerWithRole(namespace, name string, rolePolicy *v3.IAMPolicy) (*iamv1beta1.ClusterKeyIssuer, string) {
	root, rootSecret := emu.Root()
	c, err := v3.NewClient(v3creds.NewStaticCredentials(root, rootSecret), v3.ClientOptWithEndpoint(v3.Endpoint(endpoint)))
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	op, err := c.CreateIAMRole(ctx, v3.CreateIAMRoleRequest{Name: name + "-" + namespace, Policy: rolePolicy})
	if err == nil {
		op, err = c.Wait(ctx, op, v3.OperationStateSuccess)
	}
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	key, err := c.CreateAPIKey(ctx, v3.CreateAPIKeyRequest{Name: name + "-" + namespace, RoleID: op.Reference.ID})
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	ExpectWithOffset(1, k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		StringData: map[string]string{"EXOSCALE_API_KEY": key.Key, "EXOSCALE_API_SECRET": key.Secret}})).To(Succeed())
	iss := clusterIssuer(name+"-"+namespace, iamv1beta1.IssuerAPIIAMv3, nil)
	iss.Spec.CredentialsRef = iamv1beta1.CredentialsReference{Name: name, Namespace: namespace}
	iss.Spec.SOSEndpoint = sosEndpoint
	ExpectWithOffset(1, k8sClient.Create(ctx, iss)).To(Succeed())
	DeferCleanup(func() { _ = k8sClient.Delete(context.Background(), iss) })
	return iss, key.Key
}

// waitIssuerReady waits for the issuer's Ready condition and returns its message.
func waitIssuerReady(iss *iamv1beta1.ClusterKeyIssuer) string {
	var message string
	EventuallyWithOffset(1, func(g Gomega) {
		got := &iamv1beta1.ClusterKeyIssuer{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(iss), got)).To(Succeed())
		ready := meta.FindStatusCondition(got.Status.Conditions, ConditionReady)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Status).To(Equal(metav1.ConditionTrue), "%s: %s", ready.Reason, ready.Message)
		message = ready.Message
	}, timeout, poll).Should(Succeed())
	return message
}

var _ = Describe("Issuers on roles as Exoscale writes them", Serial, func() {
	It("grants from the Owner role's empty policy, and not what the organisation policy denies", func() {
		ns := newNamespace(nil)
		mine, other := buckets(ns)
		iss, _ := issuerWithRole(ns, "owner", nil)
		Expect(waitIssuerReady(iss)).To(ContainSubstring("the issuer's key holds"))
		first := waitReady(newAccessKey(ns, "first", iamv1beta1.IssuerAPIIAMv3, func(ak *iamv1beta1.AccessKey) {
			ak.Spec.IssuerRef.Name = iss.Name
			ak.Spec.Operations, ak.Spec.Resources = []string{"get-sos-object", "list-sos-bucket"}, []string{"sos/bucket:" + mine}
		}))
		data := secretOf(first).Data
		minted := s3As(string(data["EXOSCALE_API_KEY"]), string(data["EXOSCALE_API_SECRET"]), sosEndpoint)
		Expect(s3Probes(minted, mine, other)).To(Equal(readOnlyVerdicts))

		By("an organisation policy that denies sos")
		Expect(emu.SetOrganizationPolicy(policy.Policy{DefaultServiceStrategy: "allow",
			Services: map[string]policy.ServicePolicy{"sos": {Type: "deny"}}})).To(Succeed())
		DeferCleanup(func() { Expect(emu.SetOrganizationPolicy(policy.Policy{})).To(Succeed()) })
		Expect(s3Probes(minted, mine, other)["GetObject mine"]).To(Equal("denied"), "a key already minted is denied by the second gate")
		touchCredentials(ns, "owner") // the issuer reads what its key holds again
		second := newAccessKey(ns, "second", iamv1beta1.IssuerAPIIAMv3, func(ak *iamv1beta1.AccessKey) {
			ak.Spec.IssuerRef.Name = iss.Name
			ak.Spec.Operations, ak.Spec.Resources = []string{"get-object"}, []string{"sos/bucket:" + mine}
		})
		message := waitRefused(second, ReasonIssuerCannotGrant)
		Expect(message).To(ContainSubstring("may not grant get-object"))
		Expect(message).To(ContainSubstring("organisation policy"))
		Expect(condition(fetch(second), ConditionStalled)).To(BeNil(), "it heals when the organisation policy changes: not Stalled")

		By("the organisation policy reset: the refusal heals")
		Expect(emu.SetOrganizationPolicy(policy.Policy{})).To(Succeed())
		touchCredentials(ns, "owner")
		waitReady(second)
		Expect(s3Probes(minted, mine, other)).To(Equal(readOnlyVerdicts))
	})

	It("is Ready on a role with rules on the request, and says which grants depend on it", func() {
		ns := newNamespace(nil)
		iss, _ := issuerWithRole(ns, "ruled", &v3.IAMPolicy{
			DefaultServiceStrategy: v3.IAMPolicyDefaultServiceStrategyDeny,
			Services: map[string]v3.IAMServicePolicy{
				"iam":            {Type: v3.IAMServicePolicyTypeAllow},
				"compute-legacy": {Type: v3.IAMServicePolicyTypeAllow},
				"compute": {Type: v3.IAMServicePolicyTypeRules, Rules: []v3.IAMServicePolicyRule{
					{Action: v3.IAMServicePolicyRuleActionAllow, Expression: "source_ip.inIpRange('127.0.0.0/8')"}}},
				"dbaas": {Type: v3.IAMServicePolicyTypeRules, Rules: []v3.IAMServicePolicyRule{
					{Action: v3.IAMServicePolicyRuleActionDeny, Expression: "resources.dbaas_service.name == 'prod'"},
					{Action: v3.IAMServicePolicyRuleActionAllow, Expression: "true"}}},
			},
		})
		message := waitIssuerReady(iss)
		Expect(message).To(MatchRegexp(`\d+ operations are not counted because its policy grants them only for some requests \(by resources, source_ip\)`))
		Expect(message).To(ContainSubstring("kubectl exokey can-i says which"))
	})
})

// touchCredentials changes the credentials Secret's metadata, as rotating
// it would: the issuer checks its key again.
func touchCredentials(namespace, name string) {
	s := &corev1.Secret{}
	ExpectWithOffset(1, k8sClient.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, s)).To(Succeed())
	if s.Labels == nil {
		s.Labels = map[string]string{}
	}
	s.Labels["touched"] = strconv.FormatInt(time.Now().UnixNano(), 10)
	ExpectWithOffset(1, k8sClient.Update(ctx, s)).To(Succeed())
}

var _ = Describe("The legacy async caveat", func() {
	It("warns when a legacy key may start asynchronous operations it cannot follow, and not once get-operation is granted", func() {
		ns := newNamespace(nil)
		ak := waitReady(newAccessKey(ns, "starter", iamv1beta1.IssuerAPIAccessKeyV2, func(ak *iamv1beta1.AccessKey) {
			ak.Spec.Operations, ak.Spec.Resources = []string{"create-instance", "list-instances"}, nil
		}))
		ready := condition(ak, ConditionReady)
		Expect(ready.Message).To(ContainSubstring("warning: the key cannot follow the asynchronous operations it starts (create-instance)"))
		Expect(ready.Message).NotTo(ContainSubstring("list-instances"), "a read answers directly")
		Eventually(func() string { return eventsOf(ak, EventAsyncUnfollowable) }, timeout, poll).Should(ContainSubstring("add get-operation"))

		ak = waitReady(edit(ak, func(ak *iamv1beta1.AccessKey) {
			ak.Spec.Operations = []string{"create-instance", "list-instances", "get-operation"}
		}))
		Expect(condition(ak, ConditionReady).Message).NotTo(ContainSubstring("warning"))
	})

	It("does not warn on IAMv3, where polling needs no grant", func() {
		ns := newNamespace(nil)
		ak := waitReady(newAccessKey(ns, "starter", iamv1beta1.IssuerAPIIAMv3, func(ak *iamv1beta1.AccessKey) {
			ak.Spec.Operations, ak.Spec.Resources = []string{"create-instance"}, nil
		}))
		Expect(condition(ak, ConditionReady).Message).NotTo(ContainSubstring("warning"))
	})
})

var _ = Describe("Gauges read off the cache", func() {
	It("are reported by the leader alone", func() {
		waitReady(newAccessKey(newNamespace(nil), "gauged", iamv1beta1.IssuerAPIIAMv3))
		registry := prometheus.NewRegistry()
		leading := make(chan struct{})
		m := NewMetrics(registry, managerCache.(cache.Cache))
		m.LeaderOnly(leading)
		series := func() []string {
			families, err := registry.Gather()
			Expect(err).NotTo(HaveOccurred())
			var names []string
			for _, f := range families {
				names = append(names, f.GetName())
			}
			return names
		}
		Expect(series()).NotTo(ContainElements("exokey_key_created_timestamp_seconds", "exokey_access_keys"), "a standby reports none")
		close(leading)
		Expect(series()).To(ContainElements("exokey_key_created_timestamp_seconds", "exokey_access_keys", "exokey_revocations_pending"))
	})
})
