package controller

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestConsumesSecret(t *testing.T) {
	envFrom := corev1.Container{EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}}}}}
	keyRef := corev1.Container{Env: []corev1.EnvVar{{Name: "K", ValueFrom: &corev1.EnvVarSource{
		SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "k"}}}}}
	for _, tc := range []struct {
		name string
		spec corev1.PodSpec
		want bool
	}{
		{"envFrom", corev1.PodSpec{Containers: []corev1.Container{envFrom}}, true},
		{"env secretKeyRef", corev1.PodSpec{Containers: []corev1.Container{keyRef}}, true},
		{"an init container", corev1.PodSpec{InitContainers: []corev1.Container{envFrom}}, true},
		{"volume", corev1.PodSpec{Volumes: []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{SecretName: "creds"}}}}}, true},
		{"projected volume", corev1.PodSpec{Volumes: []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{
			Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{{Secret: &corev1.SecretProjection{
				LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}}}}}}}}}, true},
		{"another Secret", corev1.PodSpec{Volumes: []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{SecretName: "other"}}}}}, false},
		{"nothing", corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}, false},
	} {
		if got := consumesSecret(&tc.spec, "creds"); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
