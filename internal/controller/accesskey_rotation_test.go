package controller

import (
	"encoding/json"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/emulator"
)

var _ = Describe("Rotation", func() {
	var namespace string
	BeforeEach(func() { namespace = newNamespace(nil) })
	api := iamv1beta1.IssuerAPIIAMv3

	It("replaces a key older than rotation.everySeconds and revokes the old one after the grace period", func() {
		ak := waitReady(newAccessKey(namespace, "scheduled", api, func(ak *iamv1beta1.AccessKey) {
			ak.Spec.Rotation = &iamv1beta1.RotationSpec{EverySeconds: iamv1beta1.SecondsOf(time.Hour), GracePeriodSeconds: iamv1beta1.SecondsOf(10 * time.Minute)}
		}))
		first := secretOf(ak)
		firstKey, firstSecret := string(first.Data["EXOSCALE_API_KEY"]), string(first.Data["EXOSCALE_API_SECRET"])
		Expect(ak.Status.NextRotationAt).NotTo(BeNil())
		Expect(ak.Status.NextRotationAt.Sub(ak.Status.CreatedAt.Time)).To(Equal(time.Hour))
		// The per-key gauges are read from the cache: this namespace holds
		// this AccessKey alone; it is overdue every plus the grace after
		// its creation.
		Eventually(func() float64 { return counter("exokey_key_created_timestamp_seconds", "namespace", namespace) }, timeout, poll).
			Should(Equal(float64(ak.Status.CreatedAt.Unix())))
		Expect(counter("exokey_key_overdue_timestamp_seconds", "namespace", namespace)).
			To(Equal(float64(ak.Status.CreatedAt.Add(70 * time.Minute).Unix())))
		Consistently(func() string { return fetch(ak).Status.KeyID }, 3*time.Second, poll).Should(Equal(firstKey), "not due yet")

		testClock.advance(time.Hour)
		Eventually(func() string { return fetch(ak).Status.KeyID }, timeout, poll).ShouldNot(Equal(firstKey))
		ak = waitReady(ak)
		Expect(ak.Status.Retiring).To(HaveLen(1))
		Expect(ak.Status.Retiring[0].RevokeAt.Sub(ak.Status.CreatedAt.Time)).To(BeNumerically("~", 10*time.Minute, time.Second),
			"the grace period counts from the publish, a moment after the key was made (status times are whole seconds)")
		Expect(authenticates(firstKey, firstSecret)).To(BeTrue(), "the old key works during the grace period")
		Consistently(func() bool { return authenticates(firstKey, firstSecret) }, 3*time.Second, poll).Should(BeTrue())

		testClock.advance(10 * time.Minute)
		Eventually(func() bool { return authenticates(firstKey, firstSecret) }, timeout, poll).Should(BeFalse())
		Eventually(func() []string { return liveKeysOf(ak) }, timeout, poll).Should(ConsistOf(fetch(ak).Status.KeyID))
		Expect(counter("exokey_rotations_total", "reason", RotationDue)).To(BeNumerically(">=", 1))
	})

	It("rotates exactly once per new value of the rotate annotation", func() {
		ak := waitReady(newAccessKey(namespace, "on-demand", api, func(ak *iamv1beta1.AccessKey) {
			ak.Spec.Rotation.GracePeriodSeconds = iamv1beta1.SecondsOf(time.Hour) // the replaced keys stay pending revocation
		}))
		keys := []string{ak.Status.KeyID}
		annotate := func(value string) {
			edit(ak, func(ak *iamv1beta1.AccessKey) {
				if ak.Annotations == nil {
					ak.Annotations = map[string]string{}
				}
				ak.Annotations[iamv1beta1.RotateAnnotation] = value
			})
		}
		for _, value := range []string{"2026-11-22", "again"} {
			before := counter("exokey_rotations_total", "reason", RotationRequested)
			annotate(value)
			Eventually(func() string { return fetch(ak).Status.RotateRequest }, timeout, poll).Should(Equal(value))
			ak = waitReady(ak)
			Expect(keys).NotTo(ContainElement(ak.Status.KeyID))
			keys = append(keys, ak.Status.KeyID)
			Expect(ak.Status.Retiring).NotTo(BeEmpty(), "the old key retires with its grace period")

			// Other edits of the AccessKey do not rotate again.
			edit(ak, func(ak *iamv1beta1.AccessKey) { ak.Annotations["unrelated"] = value })
			Consistently(func() string { return fetch(ak).Status.KeyID }, 3*time.Second, poll).Should(Equal(ak.Status.KeyID))
			Expect(counter("exokey_rotations_total", "reason", RotationRequested)).To(Equal(before + 1))
		}
		Expect(counter("exokey_revocations_pending", "", "")).To(BeNumerically(">=", 2))
		Expect(counter("exokey_access_keys", "ready", "true")).To(BeNumerically(">=", 1))
	})

	It("rolls a Deployment target on every publish and not otherwise", func() {
		deployment := deployment(namespace, "backup", "rolled") // its pods read the Secret through envFrom
		stamp := func() string {
			d := &appsv1.Deployment{}
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(deployment), d)).To(Succeed())
			return d.Spec.Template.Annotations[RestartAnnotation]
		}
		ak := waitReady(newAccessKey(namespace, "rolled", api, func(ak *iamv1beta1.AccessKey) {
			ak.Spec.RestartTargets = []iamv1beta1.RestartTarget{{Kind: "Deployment", Name: "backup"}, {Kind: "StatefulSet", Name: "absent"}}
		}))
		first := secretOf(ak).Annotations[iamv1beta1.ChecksumAnnotation]
		Eventually(stamp, timeout, poll).Should(Equal(first), "rolled within the batch window")
		Eventually(func() []string { return eventReasons(namespace) }, timeout, poll).Should(ContainElement("RestartTargetMissing"))

		edit(ak, func(ak *iamv1beta1.AccessKey) { ak.Labels = map[string]string{"touched": "yes"} })
		Consistently(stamp, 2*time.Second, poll).Should(Equal(first), "no publish, no roll")

		edit(ak, func(ak *iamv1beta1.AccessKey) { ak.Spec.Operations = []string{"get-sos-object"} })
		Eventually(stamp, timeout, poll).ShouldNot(Equal(first))
		Expect(stamp()).To(Equal(secretOf(waitReady(ak)).Annotations[iamv1beta1.ChecksumAnnotation]))
	})
})

var _ = Describe("Secret formats", func() {
	var namespace string
	BeforeEach(func() { namespace = newNamespace(nil) })
	api := iamv1beta1.IssuerAPIAccessKeyV2

	It("writes the AWS variables, and the credential authenticates", func() {
		ak := waitReady(newAccessKey(namespace, "aws", api, func(ak *iamv1beta1.AccessKey) {
			ak.Spec.Secret.Format = iamv1beta1.SecretFormatAWS
		}))
		s := secretOf(ak)
		Expect(s.Data).To(HaveLen(4))
		Expect(string(s.Data["AWS_REGION"])).To(Equal("ch-gva-2"))
		Expect(string(s.Data["AWS_ENDPOINT_URL_S3"])).To(Equal("https://sos-ch-gva-2.exo.io"))
		ok, err := emulator.Authorize(ctx, endpoint, string(s.Data["AWS_ACCESS_KEY_ID"]), string(s.Data["AWS_SECRET_ACCESS_KEY"]),
			"get-sos-object", map[string]string{"bucket": "backups"})
		Expect(err).NotTo(HaveOccurred())
		Expect(ok).To(BeTrue())
	})

	It("writes a JSON credentials file, and the credential authenticates", func() {
		ak := waitReady(newAccessKey(namespace, "file", iamv1beta1.IssuerAPIIAMv3, func(ak *iamv1beta1.AccessKey) {
			ak.Spec.Secret.Format = iamv1beta1.SecretFormatCredentialsFile
		}))
		s := secretOf(ak)
		Expect(s.Data).To(HaveLen(1))
		var file struct {
			APIKey    string `json:"api_key"`
			APISecret string `json:"api_secret"`
		}
		Expect(json.Unmarshal(s.Data["credentials.json"], &file)).To(Succeed())
		Expect(file.APIKey).To(Equal(ak.Status.KeyID))
		ok, err := emulator.Authorize(ctx, endpoint, file.APIKey, file.APISecret, "get-sos-object", map[string]string{"bucket": "backups"})
		Expect(err).NotTo(HaveOccurred())
		Expect(ok).To(BeTrue())
	})

	It("renders a template, with labels and annotations", func() {
		ak := waitReady(newAccessKey(namespace, "templated", api, func(ak *iamv1beta1.AccessKey) {
			ak.Spec.Secret = iamv1beta1.SecretSpec{Format: iamv1beta1.SecretFormatTemplate, Template: iamv1beta1.SecretTemplate{
				Data:        map[string]string{"rclone.conf": "[sos]\naccess_key_id = {{ .KeyID }}\nsecret_access_key = {{ .Secret }}\nendpoint = {{ .SOSEndpoint }}\n"},
				Labels:      map[string]string{"owner": "{{ .Namespace }}"},
				Annotations: map[string]string{"key-name": "{{ .KeyName | upper }}"},
			}}
		}))
		s := secretOf(ak)
		Expect(string(s.Data["rclone.conf"])).To(ContainSubstring("access_key_id = " + ak.Status.KeyID))
		Expect(string(s.Data["rclone.conf"])).To(ContainSubstring("endpoint = https://sos-ch-gva-2.exo.io"))
		Expect(s.Labels).To(HaveKeyWithValue("owner", namespace))
		Expect(s.Annotations).To(HaveKey("key-name"))
	})

	It("reports a broken template before minting anything", func() {
		ak := newAccessKey(namespace, "broken", api, func(ak *iamv1beta1.AccessKey) {
			ak.Spec.Secret = iamv1beta1.SecretSpec{Format: iamv1beta1.SecretFormatTemplate, Template: iamv1beta1.SecretTemplate{
				Data: map[string]string{"k": "{{ .NoSuchField }}"},
			}}
		})
		Expect(waitRefused(ak, ReasonInvalidSpec)).To(ContainSubstring("secret.template.data[k]"))
		Consistently(func() []string { return liveKeysOf(ak) }, time.Second, poll).Should(BeEmpty())
	})
})

func eventReasons(namespace string) []string {
	events := &corev1.EventList{}
	Expect(k8sClient.List(ctx, events, client.InNamespace(namespace))).To(Succeed())
	var reasons []string
	for _, e := range events.Items {
		reasons = append(reasons, e.Reason)
	}
	return reasons
}

// counter reads a metric from the suite's registry, summed over the series
// whose label has value (all series when label is empty).
func counter(name, label, value string) float64 {
	families, err := testRegistry.Gather()
	Expect(err).NotTo(HaveOccurred())
	total := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			match := label == ""
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					match = true
				}
			}
			if match {
				total += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return total
}
