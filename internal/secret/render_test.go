package secret

import (
	"maps"
	"slices"
	"strings"
	"testing"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
)

var values = Values{KeyID: "EXO1", Secret: "s3cr3t", KeyName: "k8s-ns-ak-1", Zone: "de-fra-1", Name: "ak", Namespace: "ns"}

func TestFormats(t *testing.T) {
	withEndpoint := values
	withEndpoint.APIEndpoint = "http://127.0.0.1:8080/v2"
	for _, tc := range []struct {
		name   string
		spec   iamv1beta1.SecretSpec
		values Values
		want   map[string]string
	}{
		{"default", iamv1beta1.SecretSpec{}, values, map[string]string{
			"EXOSCALE_API_KEY": "EXO1", "EXOSCALE_API_SECRET": "s3cr3t", "EXOSCALE_ZONE": "de-fra-1"}},
		{"endpoint override", iamv1beta1.SecretSpec{Format: iamv1beta1.SecretFormatExoscale}, withEndpoint, map[string]string{
			"EXOSCALE_API_KEY": "EXO1", "EXOSCALE_API_SECRET": "s3cr3t", "EXOSCALE_ZONE": "de-fra-1", "EXOSCALE_API_ENDPOINT": "http://127.0.0.1:8080/v2"}},
		{"AWS", iamv1beta1.SecretSpec{Format: iamv1beta1.SecretFormatAWS}, values, map[string]string{
			"AWS_ACCESS_KEY_ID": "EXO1", "AWS_SECRET_ACCESS_KEY": "s3cr3t", "AWS_REGION": "de-fra-1", "AWS_ENDPOINT_URL_S3": "https://sos-de-fra-1.exo.io"}},
		{"credentials file", iamv1beta1.SecretSpec{Format: iamv1beta1.SecretFormatCredentialsFile}, values, map[string]string{
			"credentials.json": `{"api_key":"EXO1","api_secret":"s3cr3t"}`}},
		{"template", iamv1beta1.SecretSpec{Format: iamv1beta1.SecretFormatTemplate, Template: iamv1beta1.SecretTemplate{Data: map[string]string{
			"config":  "{{ .KeyID }}:{{ .Secret | b64enc }}@{{ .Endpoint }}",
			"owner":   "{{ .Namespace }}/{{ .Name | upper }}",
			"literal": "plain",
		}}}, values, map[string]string{
			"config": "EXO1:czNjcjN0@https://api-de-fra-1.exoscale.com/v2", "owner": "ns/AK", "literal": "plain"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Render(tc.spec, tc.values)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(slices.Sorted(maps.Keys(got.Data)), slices.Sorted(maps.Keys(tc.want))) {
				t.Fatalf("keys %v, want %v", slices.Sorted(maps.Keys(got.Data)), slices.Sorted(maps.Keys(tc.want)))
			}
			for k, v := range tc.want {
				if string(got.Data[k]) != v {
					t.Errorf("%s = %q, want %q", k, got.Data[k], v)
				}
			}
		})
	}
}

func TestTemplateErrorsNeverHoldTheSecret(t *testing.T) {
	spec := iamv1beta1.SecretSpec{Format: iamv1beta1.SecretFormatTemplate, Template: iamv1beta1.SecretTemplate{
		Data: map[string]string{"k": `{{ index .Labels .Secret }}{{ .Secret.Nope }}`},
	}}
	_, err := Render(spec, values)
	if err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("want an error without the secret, got %v", err)
	}
	if err := Validate(iamv1beta1.SecretSpec{Format: iamv1beta1.SecretFormatTemplate, Template: iamv1beta1.SecretTemplate{
		Data: map[string]string{"k": "{{ .Missing }}"}}}, values, "k8s-ns-ak-0a0b0c"); err == nil || !strings.Contains(err.Error(), "secret.template.data[k]") {
		t.Errorf("Validate: %v", err)
	}
	if err := Validate(iamv1beta1.SecretSpec{Format: iamv1beta1.SecretFormatTemplate, Template: iamv1beta1.SecretTemplate{
		Data: map[string]string{"k": "{{ .KeyID "}}}, values, "k8s-ns-ak-0a0b0c"); err == nil {
		t.Error("Validate accepted a template that does not parse")
	}
}

func TestChecksum(t *testing.T) {
	a := Checksum(map[string][]byte{"a": []byte("1"), "b": []byte("2")})
	if a != Checksum(map[string][]byte{"b": []byte("2"), "a": []byte("1")}) {
		t.Error("the checksum must not depend on map order")
	}
	for _, other := range []map[string][]byte{
		{"a": []byte("1"), "b": []byte("3")},
		{"a": []byte("12"), "b": []byte("")},
		{"a": []byte("1")},
	} {
		if Checksum(other) == a {
			t.Errorf("different data, same checksum: %v", other)
		}
	}
}
