package controller

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/exoscale"
)

// A burst of AccessKeys shares one read of the credentials Secret; the
// issuer reconciler's refresh reads it again and picks up a change.
func TestIssuerClientsReuseTheBackend(t *testing.T) {
	ctx := context.Background()
	creds := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: "team"},
		Data:       map[string][]byte{"EXOSCALE_API_KEY": []byte("EXO1"), "EXOSCALE_API_SECRET": []byte("s1")},
	}
	reads := 0
	reader := fake.NewClientBuilder().WithObjects(creds).WithInterceptorFuncs(interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			reads++
			return c.Get(ctx, key, obj, opts...)
		},
	}).Build()
	var built []string
	clients := &IssuerClients{Reader: reader, ReuseFor: time.Hour, Factory: func(cfg exoscale.Config) (exoscale.Keys, error) {
		built = append(built, cfg.Key)
		return nil, nil
	}}
	iss := &issuer{Kind: iamv1beta1.KeyIssuerKind, Key: types.NamespacedName{Namespace: "team", Name: "iss"}, Generation: 1,
		Spec: iamv1beta1.IssuerSpec{CredentialsRef: iamv1beta1.CredentialsReference{Name: "creds"}}}

	for range 100 {
		if _, err := clients.Keys(ctx, iss); err != nil {
			t.Fatal(err)
		}
	}
	if reads != 1 || len(built) != 1 {
		t.Fatalf("100 AccessKey passes: %d Secret reads, %d backends built; want 1 and 1", reads, len(built))
	}

	creds.Data["EXOSCALE_API_KEY"] = []byte("EXO2")
	if err := reader.Update(ctx, creds); err != nil {
		t.Fatal(err)
	}
	if _, err := clients.refresh(ctx, iss); err != nil {
		t.Fatal(err)
	}
	if _, err := clients.Keys(ctx, iss); err != nil {
		t.Fatal(err)
	}
	if want := []string{"EXO1", "EXO2"}; len(built) != 2 || built[1] != want[1] {
		t.Fatalf("backends built for %v, want %v", built, want)
	}

	iss.Generation = 2 // an edited issuer is never served from the old backend
	if _, err := clients.Keys(ctx, iss); err != nil {
		t.Fatal(err)
	}
	if len(built) != 3 {
		t.Fatalf("after an issuer edit: %d backends built, want 3", len(built))
	}
}
