// Package secret renders a credential into the data, labels and annotations
// of the Kubernetes Secret a workload consumes.
package secret

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/template"

	iamv1alpha1 "github.com/exokey/exokey/api/v1alpha1"
)

// Values are what a Secret is rendered from.
type Values struct {
	KeyID   string
	Secret  string
	KeyName string
	Zone    string
	// APIEndpoint is the issuer's endpoint override, empty for Exoscale's own.
	APIEndpoint string
	// Name, Namespace, Labels and Annotations are the AccessKey's.
	Name        string
	Namespace   string
	Labels      map[string]string
	Annotations map[string]string
}

// SOSEndpoint is the S3 endpoint of the zone.
func (v Values) SOSEndpoint() string { return "https://sos-" + v.Zone + ".exo.io" }

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

// Functions available to templates, besides text/template's own.
var funcs = template.FuncMap{
	"b64enc": func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) },
	"upper":  strings.ToUpper,
	"lower":  strings.ToLower,
	"trim":   strings.TrimSpace,
	"quote":  strconv.Quote,
}

// Render lays a credential out in the spec's format.
func Render(spec iamv1alpha1.SecretSpec, v Values) (Rendered, error) {
	out := Rendered{Data: map[string][]byte{}, Labels: maps.Clone(spec.Labels), Annotations: maps.Clone(spec.Annotations)}
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	switch spec.Format {
	case iamv1alpha1.SecretFormatExoscale, "":
		out.Data["EXOSCALE_API_KEY"] = []byte(v.KeyID)
		out.Data["EXOSCALE_API_SECRET"] = []byte(v.Secret)
		out.Data["EXOSCALE_ZONE"] = []byte(v.Zone)
		if v.APIEndpoint != "" {
			out.Data["EXOSCALE_API_ENDPOINT"] = []byte(v.APIEndpoint)
		}
	case iamv1alpha1.SecretFormatAWS:
		out.Data["AWS_ACCESS_KEY_ID"] = []byte(v.KeyID)
		out.Data["AWS_SECRET_ACCESS_KEY"] = []byte(v.Secret)
		out.Data["AWS_REGION"] = []byte(v.Zone)
		out.Data["AWS_ENDPOINT_URL_S3"] = []byte(v.SOSEndpoint())
	case iamv1alpha1.SecretFormatTemplate:
		if spec.Template == nil {
			return Rendered{}, fmt.Errorf("secret.format Template needs secret.template")
		}
		data, err := renderMap("data", spec.Template.Data, v)
		if err != nil {
			return Rendered{}, err
		}
		for k, value := range data {
			out.Data[k] = []byte(value)
		}
		labels, err := renderMap("labels", spec.Template.Labels, v)
		if err != nil {
			return Rendered{}, err
		}
		maps.Copy(out.Labels, labels)
		annotations, err := renderMap("annotations", spec.Template.Annotations, v)
		if err != nil {
			return Rendered{}, err
		}
		maps.Copy(out.Annotations, annotations)
	default:
		return Rendered{}, fmt.Errorf("unknown secret format %q", spec.Format)
	}
	return out, nil
}

func renderMap(field string, templates map[string]string, v Values) (map[string]string, error) {
	out := make(map[string]string, len(templates))
	for _, key := range slices.Sorted(maps.Keys(templates)) {
		t, err := template.New(key).Funcs(funcs).Option("missingkey=error").Parse(templates[key])
		if err != nil {
			return nil, fmt.Errorf("secret.template.%s[%s]: %w", field, key, err)
		}
		var buf bytes.Buffer
		if err := t.Execute(&buf, v); err != nil {
			return nil, fmt.Errorf("secret.template.%s[%s]: %w", field, key, scrub(err, v.Secret))
		}
		out[key] = buf.String()
	}
	return out, nil
}

// scrub keeps the secret out of a template error, which may quote values.
func scrub(err error, secret string) error {
	if secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return fmt.Errorf("%s", strings.ReplaceAll(err.Error(), secret, "[redacted]"))
}

// Validate renders the spec with placeholder values, so a broken template is
// reported before any key is minted.
func Validate(spec iamv1alpha1.SecretSpec, v Values) error {
	v.KeyID, v.Secret, v.KeyName = "EXO000000000000000000000000", "placeholder", "placeholder"
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
