package controller

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Key names that prove their owner. Legacy access keys carry no labels: a
// key's name is all Exoscale keeps of who it is for. exokey names a key
// <base>-k<nonce><mac>: 32 random bits, and 32 bits of an HMAC, keyed by a
// secret only the manager reads, of the AccessKey's UID and the rest of
// the name. A tenant who names another team's key in its status cannot
// make that key's name prove its own UID (docs/guides/tenancy.md).

// keyNameSuffix is the length of "-k" and the nonce and MAC in hex.
const keyNameSuffix = 2 + 8 + 8

// KeyNames mints and checks proving key names.
type KeyNames struct {
	secret []byte
}

// NewKeyNames proves names with secret (at least 32 bytes).
func NewKeyNames(secret []byte) (*KeyNames, error) {
	if len(secret) < 32 {
		return nil, fmt.Errorf("the key-name secret has %d bytes, want at least 32", len(secret))
	}
	return &KeyNames{secret: secret}, nil
}

// name is base-k<nonce><mac of uid and base-k<nonce>>.
func (n *KeyNames) name(base string, uid types.UID) string {
	nonce := make([]byte, 4)
	_, _ = rand.Read(nonce)
	head := base + "-k" + hex.EncodeToString(nonce)
	return head + n.mac(head, uid)
}

func (n *KeyNames) mac(head string, uid types.UID) string {
	m := hmac.New(sha256.New, n.secret)
	m.Write([]byte(uid))
	m.Write([]byte{0})
	m.Write([]byte(head))
	return hex.EncodeToString(m.Sum(nil)[:4])
}

// proves reports whether name was minted for uid: false for a name of the
// proving form whose MAC is another's. proving is false for a name of the
// earlier form (<base>-<12 hex>), which proves nothing either way.
func (n *KeyNames) proves(name string, uid types.UID) (owned, proving bool) {
	if n == nil || len(name) <= keyNameSuffix || !strings.HasPrefix(name[len(name)-keyNameSuffix:], "-k") {
		return false, false
	}
	head, mac := name[:len(name)-8], name[len(name)-8:]
	if _, err := hex.DecodeString(mac); err != nil {
		return false, false
	}
	return hmac.Equal([]byte(mac), []byte(n.mac(head, uid))), true
}

// LoadKeyNames reads the key-name secret from the Secret namespace/name,
// creating it with 32 random bytes when there is none; replicas racing to
// create it read the one that won.
func LoadKeyNames(ctx context.Context, c client.Client, namespace, name string) (*KeyNames, error) {
	key := types.NamespacedName{Namespace: namespace, Name: name}
	s := &corev1.Secret{}
	err := c.Get(ctx, key, s)
	if apierrors.IsNotFound(err) {
		value := make([]byte, 32)
		_, _ = rand.Read(value)
		s = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace,
			Labels: map[string]string{"app.kubernetes.io/name": "exokey"}},
			Data: map[string][]byte{"secret": value}}
		err = c.Create(ctx, s)
		if apierrors.IsAlreadyExists(err) {
			err = c.Get(ctx, key, s)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("the key-name secret %s: %w", key, err)
	}
	return NewKeyNames(s.Data["secret"])
}
