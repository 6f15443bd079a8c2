// Package servingcert serves a TLS certificate that arrives later: a Secret
// mounted into the pod, written by another replica (the leader's
// certificate rotator) or by cert-manager. A Loader waits until the
// directory holds a valid pair, then serves it and follows its renewals.
// Until then it serves a fallback, or refuses the handshake.
package servingcert

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"path/filepath"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	certutil "k8s.io/client-go/util/cert"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// Loader serves tls.crt and tls.key of a directory once they form a valid
// pair. Add it to the manager: it runs on every replica, leader or not.
type Loader struct {
	certFile, keyFile string
	fallback          *tls.Certificate
	watcher           atomic.Pointer[certwatcher.CertWatcher]
	// OnServing is called once the directory's certificate is served.
	OnServing func(certFile string)
}

var _ manager.LeaderElectionRunnable = (*Loader)(nil)

// New returns a Loader of dir that refuses handshakes until its
// certificate is there.
func New(dir string) *Loader {
	return &Loader{certFile: filepath.Join(dir, "tls.crt"), keyFile: filepath.Join(dir, "tls.key")}
}

// WithSelfSigned makes the Loader serve a self-signed certificate for host
// until the directory's is there (a client that verifies refuses it, as it
// should; one that does not, as Prometheus configured without a CA, reads
// on).
func (l *Loader) WithSelfSigned(host string) (*Loader, error) {
	certPEM, keyPEM, err := certutil.GenerateSelfSignedCertKey(host, nil, nil)
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	l.fallback = &pair
	return l, nil
}

// GetCertificate is the tls.Config's GetCertificate.
func (l *Loader) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if w := l.watcher.Load(); w != nil {
		return w.GetCertificate(hello)
	}
	if l.fallback != nil {
		return l.fallback, nil
	}
	return nil, errors.New("the serving certificate is not ready yet")
}

// Serving reports whether the directory's certificate is served.
func (l *Loader) Serving() bool { return l.watcher.Load() != nil }

// Start waits for a valid pair in the directory, then serves it and
// follows it as it is renewed, until ctx ends.
func (l *Loader) Start(ctx context.Context) error {
	if err := wait.PollUntilContextCancel(ctx, time.Second, true, func(context.Context) (bool, error) {
		return validNow(l.certFile, l.keyFile, time.Now()), nil
	}); err != nil {
		return nil // stopped before a certificate came
	}
	w, err := certwatcher.New(l.certFile, l.keyFile)
	if err != nil {
		return err
	}
	l.watcher.Store(w)
	if l.OnServing != nil {
		l.OnServing(l.certFile)
	}
	return w.Start(ctx)
}

// NeedLeaderElection says a Loader runs on every replica.
func (*Loader) NeedLeaderElection() bool { return false }

// validNow reports whether the certificate and key form a pair whose
// certificate is valid at now.
func validNow(certFile, keyFile string, now time.Time) bool {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil || len(pair.Certificate) == 0 {
		return false
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	return err == nil && now.After(leaf.NotBefore) && now.Before(leaf.NotAfter)
}
