package secret

import (
	"strconv"
	"strings"
	"testing"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
)

func templated(data, labels, annotations map[string]string) iamv1beta1.SecretSpec {
	return iamv1beta1.SecretSpec{Format: iamv1beta1.SecretFormatTemplate,
		Template: iamv1beta1.SecretTemplate{Data: data, Labels: labels, Annotations: annotations}}
}

func TestSandboxRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec iamv1beta1.SecretSpec
		want string // in the error
	}{
		{"define", templated(map[string]string{"k": `{{define "x"}}{{.KeyID}}{{end}}{{template "x" .}}`}, nil, nil), "define"},
		{"recursion", templated(map[string]string{"k": `{{define "x"}}{{template "x" .}}{{end}}{{template "x" .}}`}, nil, nil), "define"},
		{"block", templated(map[string]string{"k": `{{block "x" .}}{{.KeyID}}{{end}}`}, nil, nil), "define"},
		{"template of an undefined name", templated(map[string]string{"k": `{{template "x"}}`}, nil, nil), "template is not allowed"},
		{"nesting", templated(map[string]string{"k": strings.Repeat("{{if true}}", 6) + "x" + strings.Repeat("{{end}}", 6)}, nil, nil), "nest"},
		{"range in range", templated(map[string]string{"k": `{{range .Labels}}{{range $.Labels}}x{{end}}{{end}}`}, nil, nil), "range inside range"},
		{"range over an integer (the bomb)", templated(map[string]string{"k": `{{range 9000000000000000000}}{{end}}`}, nil, nil), "range goes over .Labels or .Annotations only"},
		{"range over a variable", templated(map[string]string{"k": `{{$l := .Labels}}{{range $l}}x{{end}}`}, nil, nil), "range goes over .Labels or .Annotations only"},
		{"range over a function's result", templated(map[string]string{"k": `{{range (slice .KeyID 0)}}x{{end}}`}, nil, nil), "range goes over .Labels or .Annotations only"},
		{"call", templated(map[string]string{"k": `{{call .Endpoint}}`}, nil, nil), "call is not allowed"},
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
			err := Validate(tc.spec, values, "k8s-ns-ak-0a0b0c")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want an error with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), strings.Repeat("x", 43)) {
				t.Fatalf("the error quotes the placeholder secret: %v", err)
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
		got, err := Render(templated(map[string]string{"k": data}, map[string]string{"l": label}, nil), v)
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

// TestTheBudgetBoundsWhatMetadataCanCost: the AccessKey's labels and
// annotations are a tenant's too, and every loop runs once per entry, so a
// render's steps are counted against them before it runs, and what its
// functions build is charged as it runs.
func TestTheBudgetBoundsWhatMetadataCanCost(t *testing.T) {
	many := map[string]string{}
	for i := range 5000 {
		many["k"+strconv.Itoa(i)] = "v"
	}
	big := strings.Repeat("x", 200<<10)
	for _, tc := range []struct {
		name        string
		template    string
		labels      map[string]string
		annotations map[string]string
		want        string
	}{
		{"a range body repeated over thousands of labels", `{{range .Labels}}` + strings.Repeat(`{{if .}}{{end}}`, 10) + `{{end}}`, many, nil,
			"would take"},
		{"strings built from a large annotation, never written", `{{range .Annotations}}{{if eq (printf "%s%s" $.Annotations.big $.Annotations.big) ""}}{{end}}{{end}}`,
			nil, map[string]string{"big": big, "a": "1", "b": "2", "c": "3", "d": "4", "e": "5", "f": "6", "g": "7", "h": "8", "i": "9", "j": "10"},
			"would build more than 4 MiB"},
		{"escapers too", strings.Repeat(`{{if js $.Annotations.big}}{{end}}`, 25), nil, map[string]string{"big": big}, "would build more than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := values
			v.Labels, v.Annotations = tc.labels, tc.annotations
			_, err := Render(templated(map[string]string{"k": tc.template}, nil, nil), v)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a refusal with %q", err, tc.want)
			}
		})
	}
	// The same shapes within the budget render.
	v := values
	v.Labels = map[string]string{"team": "a", "tier": "b"}
	got, err := Render(templated(map[string]string{"k": `{{range $k, $v := .Labels}}{{upper $k}}={{$v}};{{end}}`}, nil, nil), v)
	if err != nil || string(got.Data["k"]) != "TEAM=a;TIER=b;" {
		t.Fatalf("a small range: %q, %v", got.Data["k"], err)
	}
}
