package inject

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"time"

	"github.com/open-policy-agent/cert-controller/pkg/rotator"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/controller-runtime/pkg/webhook/conversion"

	"github.com/exokey/exokey/internal/servingcert"
)

// The rights of the certificate's issuer on the webhook configuration are
// not markers: they name the configuration (resourceNames), whose name the
// installer chooses (config/rbac/webhook_certificates_role.yaml, the chart's
// templates/webhook-rbac.yaml).

// ServeOptions say how the manager serves the webhook.
type ServeOptions struct {
	// Port the webhook server listens on (9443).
	Port int
	// CertDir holds tls.crt and tls.key: the webhook Secret, mounted.
	CertDir string
	// Namespace of the manager, its Service and the certificate Secret.
	Namespace, ServiceName, SecretName string
	// DNSNames are more names for the certificate, for a webhook reached
	// by URL rather than through its Service (a manager run outside the
	// cluster).
	DNSNames []string
	// ConfigurationName is the MutatingWebhookConfiguration whose caBundle
	// is kept current.
	ConfigurationName string
	// CertManager: cert-manager issues the certificate and injects the CA;
	// otherwise the manager does (cert-controller's rotator).
	CertManager bool
	// CertValidity is how long a serving certificate the manager issues is
	// valid (its CA: ten times as long); it is renewed a fifth of it
	// before it expires.
	CertValidity time.Duration
	// TLSOpts apply to the server's TLS configuration (HTTP/2 off).
	TLSOpts []func(*tls.Config)
	// Injection serves the pod injection webhook, whose configuration is
	// ConfigurationName.
	Injection bool
	// ConversionCRDs are the CRDs whose versions the server converts
	// (/convert) and whose caBundle the certificate's issuer keeps
	// current; none when empty.
	ConversionCRDs []string
}

// ConvertPath is where the CRDs' conversion webhook is served.
const ConvertPath = "/convert"

// Serve registers the webhook with the manager. The server answers once a
// valid certificate is in CertDir (mounted from the Secret the issuer of the
// certificate writes: IssueCertificate, or cert-manager); the readiness
// check "webhook" fails until then, so a Service sends no request to a
// replica that could not answer it. Serving needs read access to
// AccessKeys and ServiceAccounts and nothing else: the webhook's own
// Deployment runs with no other right (docs/guides/tenancy.md).
//
// The certificate's loader runs in early, a manager that does not wait for
// mgr's caches (which may need this very server to convert what they list).
func Serve(mgr, early ctrl.Manager, o ServeOptions) error {
	// Once a valid certificate is mounted, the server serves it, and
	// follows it as it is renewed. Every replica does this: the
	// certificate's issuer runs in the controllers (or is cert-manager),
	// so a replica serves the certificate written into the Secret as soon
	// as the kubelet has mounted it.
	certificate := servingcert.New(o.CertDir)
	certificate.OnServing = func(certFile string) {
		ctrl.Log.WithName("webhook").Info("serving the injection webhook", "certificate", certFile)
	}
	if err := early.Add(certificate); err != nil {
		return err
	}
	server := webhook.NewServer(webhook.Options{Port: o.Port, TLSOpts: append(o.TLSOpts, func(c *tls.Config) {
		c.GetCertificate = certificate.GetCertificate
		c.MinVersion = tls.VersionTLS12
	})})
	if err := mgr.Add(server); err != nil {
		return err
	}
	if len(o.ConversionCRDs) > 0 {
		// Every version of exokey's kinds converts through the hub,
		// v1beta1 (api/v1alpha1/conversion.go); converting reads nothing
		// from the cluster and needs no right.
		server.Register(ConvertPath, conversion.NewWebhookHandler(mgr.GetScheme(), mgr.GetConverterRegistry()))
	}
	if o.Injection {
		server.Register(Path, &webhook.Admission{Handler: &Injector{Reader: mgr.GetClient(), Decoder: admission.NewDecoder(mgr.GetScheme())}})
		// The ServiceAccounts' metadata is cached from the start, so the
		// first pod does not wait for the informer.
		sa := &metav1.PartialObjectMetadata{}
		sa.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ServiceAccount"))
		if _, err := mgr.GetCache().GetInformer(context.Background(), sa, cache.BlockUntilSynced(false)); err != nil {
			return err
		}
	}
	return mgr.AddReadyzCheck("webhook", func(*http.Request) error {
		if !certificate.Serving() {
			return errors.New("no serving certificate yet")
		}
		return nil
	})
}

// IssueCertificate has the manager issue and rotate the webhook's serving
// certificate and its CA (cert-controller's rotator, on every replica), write
// them into the Secret SecretName, and keep the caBundle of the
// configuration ConfigurationName (with Injection) and of the
// ConversionCRDs current. It needs the Secret mounted in
// CertDir, as the rotator waits to see it there.
func IssueCertificate(mgr ctrl.Manager, o ServeOptions) error {
	validity := o.CertValidity
	if validity <= 0 {
		validity = 90 * 24 * time.Hour
	}
	service := o.ServiceName + "." + o.Namespace + ".svc"
	var webhooks []rotator.WebhookInfo
	if o.Injection {
		webhooks = append(webhooks, rotator.WebhookInfo{Name: o.ConfigurationName, Type: rotator.Mutating})
	}
	for _, name := range o.ConversionCRDs {
		webhooks = append(webhooks, rotator.WebhookInfo{Name: name, Type: rotator.CRDConversion})
	}
	return rotator.AddRotator(mgr, &rotator.CertRotator{
		SecretKey: types.NamespacedName{Namespace: o.Namespace, Name: o.SecretName},
		CertDir:   o.CertDir, CAName: "exokey-webhook-ca", CAOrganization: "exokey",
		DNSName: service, ExtraDNSNames: append([]string{o.ServiceName, o.ServiceName + "." + o.Namespace, service + ".cluster.local"}, o.DNSNames...),
		IsReady:            make(chan struct{}),
		Webhooks:           webhooks,
		ServerCertDuration: validity, CaCertDuration: 10 * validity,
		LookaheadInterval: validity / 5, RotationCheckFrequency: max(min(validity/20, time.Hour), time.Second),
	})
}
