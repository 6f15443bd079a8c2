// Package secret renders a credential into the data, labels and annotations
// of the Kubernetes Secret a workload consumes.
package secret

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
)

// Values are what a Secret is rendered from.
type Values struct {
	KeyID   string
	Secret  string
	KeyName string
	Zone    string
	// APIEndpoint is the issuer's endpoint override, empty for Exoscale's own.
	APIEndpoint string
	// SOS is the issuer's S3 endpoint override, empty for the zone's.
	SOS string
	// Name, Namespace, Labels and Annotations are the AccessKey's.
	Name        string
	Namespace   string
	Labels      map[string]string
	Annotations map[string]string
}

// SOSEndpoint is the S3 endpoint: the issuer's, or the zone's.
func (v Values) SOSEndpoint() string {
	if v.SOS != "" {
		return v.SOS
	}
	return "https://sos-" + v.Zone + ".exo.io"
}

// Endpoint is the API endpoint: the override, or the zone's.
func (v Values) Endpoint() string {
	if v.APIEndpoint != "" {
		return v.APIEndpoint
	}
	return "https://api-" + v.Zone + ".exoscale.com/v2"
}

// Rendered is the content exokey owns in a Secret.
type Rendered struct {
	Data        map[string][]byte
	Labels      map[string]string
	Annotations map[string]string
}

// Render lays a credential out in the spec's format.
func Render(spec iamv1beta1.SecretSpec, v Values) (Rendered, error) {
	out := Rendered{Data: map[string][]byte{}, Labels: maps.Clone(spec.Labels), Annotations: maps.Clone(spec.Annotations)}
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	switch spec.Format {
	case iamv1beta1.SecretFormatExoscale, "":
		out.Data["EXOSCALE_API_KEY"] = []byte(v.KeyID)
		out.Data["EXOSCALE_API_SECRET"] = []byte(v.Secret)
		out.Data["EXOSCALE_ZONE"] = []byte(v.Zone)
		if v.APIEndpoint != "" {
			out.Data["EXOSCALE_API_ENDPOINT"] = []byte(v.APIEndpoint)
		}
		if v.SOS != "" {
			out.Data["EXOSCALE_SOS_ENDPOINT"] = []byte(v.SOS)
		}
	case iamv1beta1.SecretFormatAWS:
		out.Data["AWS_ACCESS_KEY_ID"] = []byte(v.KeyID)
		out.Data["AWS_SECRET_ACCESS_KEY"] = []byte(v.Secret)
		out.Data["AWS_REGION"] = []byte(v.Zone)
		out.Data["AWS_ENDPOINT_URL_S3"] = []byte(v.SOSEndpoint())
	case iamv1beta1.SecretFormatCredentialsFile:
		file, err := json.Marshal(credentialsFile{APIKey: v.KeyID, APISecret: v.Secret})
		if err != nil {
			return Rendered{}, err
		}
		out.Data[CredentialsFileKey] = file
	case iamv1beta1.SecretFormatTemplate:
		if len(spec.Template.Data) == 0 {
			return Rendered{}, fmt.Errorf("secret.format Template needs secret.template.data")
		}
		work := &workBudget{left: MaxWorkBytes}
		budget := MaxSecretBytes
		data, err := renderMap(work, "data", spec.Template.Data, v, true, &budget)
		if err != nil {
			return Rendered{}, err
		}
		for k, value := range data {
			out.Data[k] = []byte(value)
		}
		// Labels and annotations are never rendered with the secret: they
		// are not secret, and an error about them quotes their values.
		public := v
		public.Secret = ""
		metaBudget := MaxSecretBytes
		labels, err := renderMap(work, "labels", spec.Template.Labels, public, false, &metaBudget)
		if err != nil {
			return Rendered{}, err
		}
		maps.Copy(out.Labels, labels)
		annotations, err := renderMap(work, "annotations", spec.Template.Annotations, public, false, &metaBudget)
		if err != nil {
			return Rendered{}, err
		}
		maps.Copy(out.Annotations, annotations)
	default:
		return Rendered{}, fmt.Errorf("unknown secret format %q", spec.Format)
	}
	if err := validateRendered(out); err != nil {
		return Rendered{}, scrub(err, v.Secret)
	}
	return out, nil
}

// CredentialsFileKey is the Secret key of format CredentialsFile: the file's
// name where the Secret is mounted.
const CredentialsFileKey = "credentials.json"

// credentialsFile is the JSON credentials file Exoscale's tools read.
type credentialsFile struct {
	APIKey    string `json:"api_key"`
	APISecret string `json:"api_secret"`
}

func renderMap(work *workBudget, field string, templates map[string]string, v Values, secretAllowed bool, budget *int) (map[string]string, error) {
	out := make(map[string]string, len(templates))
	for _, key := range slices.Sorted(maps.Keys(templates)) {
		value, err := renderOne(work, key, templates[key], v, secretAllowed, min(MaxValueBytes, *budget))
		if errors.Is(err, errTooLarge) {
			err = fmt.Errorf("the rendered value is over %d KiB, or the Secret over %d KiB", MaxValueBytes>>10, MaxSecretBytes>>10)
		}
		if err != nil {
			return nil, fmt.Errorf("secret.template.%s[%s]: %w", field, key, scrub(err, v.Secret))
		}
		*budget -= len(value)
		out[key] = value
	}
	return out, nil
}

// renderOne parses one sandboxed template, refuses it unrun when its steps
// over v exceed MaxSteps, and runs it: every loop is bounded by v's
// metadata and every string it builds is charged to work, so the run ends
// in the caller's goroutine, and nothing outlives a refusal.
func renderOne(work *workBudget, name, text string, v Values, secretAllowed bool, limit int) (string, error) {
	t, err := parseSandboxed(name, text, secretAllowed, work)
	if err != nil {
		return "", err
	}
	if steps := t.steps(v); steps > MaxSteps {
		return "", fmt.Errorf("the template would take %d steps, over the budget of %d (its ranges run once per label or annotation of the AccessKey)", steps, MaxSteps)
	}
	w := &cappedWriter{limit: limit}
	if err := t.Execute(w, v); err != nil {
		switch {
		case errors.Is(err, errTooLarge):
			return "", errTooLarge
		case errors.Is(err, errWorkBudget):
			return "", errWorkBudget
		}
		return "", err
	}
	return string(w.buf), nil
}

// validateRendered checks the rendered Secret as the API server would, so
// that a Secret it would refuse is refused before any key is minted.
func validateRendered(out Rendered) error {
	var problems []string
	for key := range out.Data {
		for _, msg := range validation.IsConfigMapKey(key) {
			problems = append(problems, fmt.Sprintf("data key %q: %s", key, msg))
		}
	}
	for key, value := range out.Labels {
		for _, msg := range validation.IsQualifiedName(key) {
			problems = append(problems, fmt.Sprintf("label key %q: %s", key, msg))
		}
		for _, msg := range validation.IsValidLabelValue(value) {
			problems = append(problems, fmt.Sprintf("label %q: %s", key, msg))
		}
	}
	for _, e := range apivalidation.ValidateAnnotations(out.Annotations, field.NewPath("annotations")) {
		problems = append(problems, fmt.Sprintf("%s: %s", e.Field, e.Detail))
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return fmt.Errorf("the rendered Secret would be refused: %s", strings.Join(problems, "; "))
	}
	return nil
}

// scrub keeps the secret out of an error, which may quote values, in the
// clear or base64-encoded.
func scrub(err error, secret string) error {
	return Scrub(err, secret)
}

// Scrub returns err with every occurrence of secret, plain or base64,
// replaced by [redacted].
func Scrub(err error, secret string) error {
	if err == nil || secret == "" {
		return err
	}
	msg := err.Error()
	for _, form := range []string{secret, base64.StdEncoding.EncodeToString([]byte(secret))} {
		msg = strings.ReplaceAll(msg, form, "[redacted]")
	}
	if msg == err.Error() {
		return err
	}
	return errors.New(msg)
}

// Validate renders the spec with placeholders shaped like a real key, so a
// broken template, or a Secret the API server would refuse, is reported
// before any key is minted. keyName is the name the key will have.
func Validate(spec iamv1beta1.SecretSpec, v Values, keyName string) error {
	v.KeyID, v.Secret, v.KeyName = "EXO"+strings.Repeat("0", 24), strings.Repeat("x", 43), keyName
	_, err := Render(spec, v)
	return err
}

// Checksum identifies Secret data: SHA-256 over the sorted keys and values.
func Checksum(data map[string][]byte) string {
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(data)) {
		fmt.Fprintf(h, "%d:%s%d:", len(k), k, len(data[k]))
		h.Write(data[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}
