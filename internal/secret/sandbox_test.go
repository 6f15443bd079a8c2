package secret

import (
	"strings"
	"testing"
	"time"

	iamv1alpha1 "github.com/exokey/exokey/api/v1alpha1"
)

func templated(data, labels, annotations map[string]string) iamv1alpha1.SecretSpec {
	return iamv1alpha1.SecretSpec{Format: iamv1alpha1.SecretFormatTemplate,
		Template: &iamv1alpha1.SecretTemplate{Data: data, Labels: labels, Annotations: annotations}}
}

func TestSandboxRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec iamv1alpha1.SecretSpec
		want string // in the error
	}{
		{"define", templated(map[string]string{"k": `{{define "x"}}{{.KeyID}}{{end}}{{template "x" .}}`}, nil, nil), "define"},
		{"recursion", templated(map[string]string{"k": `{{define "x"}}{{template "x" .}}{{end}}{{template "x" .}}`}, nil, nil), "define"},
		{"block", templated(map[string]string{"k": `{{block "x" .}}{{.KeyID}}{{end}}`}, nil, nil), "define"},
		{"template of an undefined name", templated(map[string]string{"k": `{{template "x"}}`}, nil, nil), "template is not allowed"},
		{"nesting", templated(map[string]string{"k": strings.Repeat("{{if true}}", 6) + "x" + strings.Repeat("{{end}}", 6)}, nil, nil), "nest"},
		{"range in range", templated(map[string]string{"k": `{{range .Labels}}{{range $.Labels}}x{{end}}{{end}}`}, nil, nil), "range inside range"},
		{"huge width", templated(map[string]string{"k": `{{printf "%20000000d" 1}}`}, nil, nil), "at most 3 digits"},
		{"width from an argument", templated(map[string]string{"k": `{{printf "%*d" 100000000 1}}`}, nil, nil), "at most 3 digits"},
		{"huge precision", templated(map[string]string{"k": `{{printf "%.99999f" 1.0}}`}, nil, nil), "at most 3 digits"},
		{"value over the cap", templated(map[string]string{"k": strings.Repeat("{{printf \"%999d\" 1}}", 70)}, nil, nil), "KiB"},
		{"Secret over the cap", templated(manyValues(5, 60<<10), nil, nil), "KiB"},
		{"secret in a label", templated(map[string]string{"k": "x"}, map[string]string{"leak": "!{{.Secret}}"}, nil), ".Secret may be used in secret.template.data only"},
		{"secret through a variable", templated(map[string]string{"k": "x"}, nil, map[string]string{"leak": "{{$.Secret}}"}), ".Secret may be used"},
		{"secret through with", templated(map[string]string{"k": "x"}, nil, map[string]string{"leak": "{{with .}}{{.Secret}}{{end}}"}), ".Secret may be used"},
		{"invalid label value", templated(map[string]string{"k": "x"}, map[string]string{"id": "!{{.KeyID}}"}, nil), "would be refused"},
		{"invalid label key", templated(map[string]string{"k": "x"}, map[string]string{"a b": "v"}, nil), "label key"},
		{"invalid data key", templated(map[string]string{"a/b": "x"}, nil, nil), "data key"},
		{"label longer than 63", templated(map[string]string{"k": "x"}, map[string]string{"name": "{{.KeyName}}{{.KeyName}}{{.KeyName}}{{.KeyName}}{{.KeyName}}"}, nil), "would be refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			started := time.Now()
			err := Validate(tc.spec, values, "k8s-ns-ak-0a0b0c")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want an error with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), strings.Repeat("x", 43)) {
				t.Fatalf("the error quotes the placeholder secret: %v", err)
			}
			if elapsed := time.Since(started); elapsed > RenderTimeout+time.Second {
				t.Fatalf("refusing took %s", elapsed)
			}
		})
	}
}

func manyValues(n, size int) map[string]string {
	out := map[string]string{}
	for i := range n {
		out[string(rune('a'+i))] = strings.Repeat("x", size)
	}
	return out
}

func TestSandboxAllows(t *testing.T) {
	spec := templated(map[string]string{
		"config": `{{range $k, $v := .Labels}}{{$k}}={{$v}};{{end}}{{if .Secret}}{{printf "%s:%s" .KeyID .Secret}}{{end}}`,
	}, map[string]string{"key-id": "{{.KeyID}}"}, map[string]string{"exokey/key": "{{.KeyName}} in {{.Namespace}}"})
	v := values
	v.Labels = map[string]string{"team": "a"}
	got, err := Render(spec, v)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Data["config"]) != "team=a;EXO1:s3cr3t" || got.Labels["key-id"] != "EXO1" || got.Annotations["exokey/key"] != "k8s-ns-ak-1 in ns" {
		t.Fatalf("rendered %q %v %v", got.Data["config"], got.Labels, got.Annotations)
	}
}

func TestScrubRemovesPlainAndBase64(t *testing.T) {
	err := Scrub(errFor(`label "x": Invalid value: "s3cr3t" and czNjcjN0`), "s3cr3t")
	if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "czNjcjN0") {
		t.Fatalf("scrubbed error still carries the secret: %v", err)
	}
}

type errFor string

func (e errFor) Error() string { return string(e) }

// FuzzTemplateSandbox runs arbitrary templates through the sandbox: it never
// panics, never takes long, never puts the secret in an error, and never
// renders more than the caps allow.
func FuzzTemplateSandbox(f *testing.F) {
	for _, seed := range []string{
		`{{.KeyID}}`, `{{define "x"}}{{template "x"}}{{end}}`, `{{printf "%9999d" 1}}`, `{{range .Labels}}{{.}}{{end}}`,
		`{{.Secret}}`, `{{with .}}{{.Secret | b64enc}}{{end}}`, `{{if .Secret}}{{printf "%v" .}}{{end}}`,
	} {
		f.Add(seed, seed)
	}
	f.Fuzz(func(t *testing.T, data, label string) {
		v := values
		v.Labels = map[string]string{"a": "1", "b": "2"}
		started := time.Now()
		got, err := Render(templated(map[string]string{"k": data}, map[string]string{"l": label}, nil), v)
		if time.Since(started) > RenderTimeout+2*time.Second {
			t.Fatalf("rendering took %s", time.Since(started))
		}
		if err != nil {
			if strings.Contains(err.Error(), v.Secret) {
				t.Fatalf("an error carries the secret: %v", err)
			}
			return
		}
		if len(got.Data["k"]) > MaxValueBytes {
			t.Fatalf("a value of %d bytes passed the cap", len(got.Data["k"]))
		}
		if strings.Contains(got.Labels["l"], v.Secret) {
			t.Fatalf("the secret reached a label: %q", got.Labels["l"])
		}
	})
}
