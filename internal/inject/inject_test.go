package inject

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
)

func podWith(annotations map[string]string, containers ...string) *corev1.Pod {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: annotations, Labels: map[string]string{LabelInject: "true"}}}
	for _, name := range containers {
		if init, ok := strings.CutPrefix(name, "init:"); ok {
			pod.Spec.InitContainers = append(pod.Spec.InitContainers, corev1.Container{Name: init})
			continue
		}
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: name})
	}
	return pod
}

func TestPlanRefusesWhatAPodMayNotAskFor(t *testing.T) {
	for _, tc := range []struct {
		name, names string
		annotations map[string]string
		refusal     string // "" when admitted
	}{
		{"two AccessKeys", "backup-writer, reader", nil, ""},
		{"another namespace's AccessKey", "other/key", nil, "names an AccessKey of another namespace"},
		{"not a name", "Backup_Writer", nil, `"Backup_Writer" is not an AccessKey name`},
		{"nothing named", " , ", nil, "names no AccessKey"},
		{"an unknown container", "reader", map[string]string{AnnotationContainers: "app,ghost"}, `no container "ghost"`},
		{"a relative mount path", "reader", map[string]string{AnnotationMountPath: "creds"}, "not a clean absolute directory"},
		{"a mount path that climbs", "reader", map[string]string{AnnotationMountPath: "/var/../etc"}, "not a clean absolute directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := planFor(podWith(tc.annotations, "app"), tc.names)
			switch {
			case tc.refusal == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.refusal != "" && (err == nil || !strings.Contains(err.Error(), tc.refusal)):
				t.Fatalf("got %v, want a refusal saying %q", err, tc.refusal)
			}
		})
	}
}

func TestWireInjectsEachFormatOnce(t *testing.T) {
	env := &iamv1beta1.AccessKey{ObjectMeta: metav1.ObjectMeta{Name: "writer"}}
	env.Spec.Secret.Format = iamv1beta1.SecretFormatAWS
	file := &iamv1beta1.AccessKey{ObjectMeta: metav1.ObjectMeta{Name: "reader"}}
	file.Spec.Secret = iamv1beta1.SecretSpec{Name: "reader-creds", Format: iamv1beta1.SecretFormatCredentialsFile}

	pod := podWith(map[string]string{AnnotationContainers: "app,init:setup"}, "app", "sidecar", "init:setup")
	pod.Annotations[AnnotationContainers] = "app,setup"
	for range 2 { // admitted twice: nothing is added twice
		p, err := planFor(pod, "writer,reader")
		if err != nil {
			t.Fatal(err)
		}
		p.wire(pod, env)
		p.wire(pod, file)
	}
	app, sidecar, setup := pod.Spec.Containers[0], pod.Spec.Containers[1], pod.Spec.InitContainers[0]
	if len(app.EnvFrom) != 1 || app.EnvFrom[0].SecretRef.Name != "writer" {
		t.Errorf("app's envFrom = %+v, want the writer Secret once", app.EnvFrom)
	}
	if len(app.VolumeMounts) != 1 || app.VolumeMounts[0].MountPath != "/var/run/secrets/exokey/reader" || !app.VolumeMounts[0].ReadOnly {
		t.Errorf("app's mounts = %+v, want reader's read-only at /var/run/secrets/exokey/reader", app.VolumeMounts)
	}
	if len(setup.EnvFrom) != 1 || len(setup.VolumeMounts) != 1 {
		t.Errorf("the named init container got %d envFrom and %d mounts, want 1 and 1", len(setup.EnvFrom), len(setup.VolumeMounts))
	}
	if len(sidecar.EnvFrom)+len(sidecar.VolumeMounts) != 0 {
		t.Errorf("a container not named was injected: %+v", sidecar)
	}
	if len(pod.Spec.Volumes) != 1 || pod.Spec.Volumes[0].Secret.SecretName != "reader-creds" {
		t.Errorf("volumes = %+v, want one of Secret reader-creds", pod.Spec.Volumes)
	}
	if got := pod.Annotations[AnnotationInjected]; got != "reader,writer" {
		t.Errorf("%s = %q, want reader,writer", AnnotationInjected, got)
	}
}

func TestWireDefaultsToEveryContainerButInitOnes(t *testing.T) {
	ak := &iamv1beta1.AccessKey{ObjectMeta: metav1.ObjectMeta{Name: "writer"}}
	pod := podWith(nil, "app", "sidecar", "init:setup")
	p, err := planFor(pod, "writer")
	if err != nil {
		t.Fatal(err)
	}
	p.wire(pod, ak)
	for _, c := range pod.Spec.Containers {
		if len(c.EnvFrom) != 1 {
			t.Errorf("container %s was not injected", c.Name)
		}
	}
	if len(pod.Spec.InitContainers[0].EnvFrom) != 0 {
		t.Error("an init container not named was injected")
	}
}

func TestVolumeNameIsALabelForEveryAccessKeyName(t *testing.T) {
	long := strings.Repeat("a", 60) + ".b"
	for _, name := range []string{"reader", long, "x.y"} {
		got := VolumeName(name)
		if len(got) > 63 || strings.Contains(got, ".") {
			t.Errorf("VolumeName(%q) = %q: not a DNS label", name, got)
		}
	}
	if VolumeName(long) == VolumeName(long+"c") {
		t.Error("two AccessKeys share a volume name")
	}
}
