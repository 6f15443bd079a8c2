// Package inject is the mutating admission webhook that wires AccessKeys'
// Secrets into the pods that ask for them (docs/architecture.md, "The
// webhook"; docs/guides/delivering.md).
//
// A pod opts in with the label iam.exokey.io/inject: "true", which is the
// webhook's objectSelector, so no other pod ever reaches it. It names
// AccessKeys of its own namespace in the annotation
// iam.exokey.io/access-keys, or its ServiceAccount does. Each AccessKey's
// Secret becomes envFrom (Exoscale and AWS formats) or a read-only volume
// (CredentialsFile and Template), in every container or in those
// iam.exokey.io/containers names. The pod is annotated with what was
// injected, which is how exokey finds the workloads to roll on a new key.
package inject

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
)

const (
	// LabelInject opts a pod in; it is the webhook's objectSelector.
	LabelInject = "iam.exokey.io/inject"
	// AnnotationAccessKeys names AccessKeys of the pod's namespace,
	// comma-separated, on the pod or on its ServiceAccount (the pod's wins).
	AnnotationAccessKeys = "iam.exokey.io/access-keys"
	// AnnotationContainers limits the containers injected, comma-separated
	// (default: every container; init containers only when named).
	AnnotationContainers = "iam.exokey.io/containers"
	// AnnotationMountPath replaces DefaultMountRoot for file formats.
	AnnotationMountPath = "iam.exokey.io/mount-path"
	// AnnotationInjected records the AccessKeys the webhook wired into the
	// pod, sorted and comma-separated: the consumers' index reads it.
	AnnotationInjected = "iam.exokey.io/injected"
	// DefaultMountRoot is where file formats are mounted, one directory
	// per AccessKey.
	DefaultMountRoot = "/var/run/secrets/exokey"
	// Path is where the manager serves the webhook.
	Path = "/mutate-v1-pod"
)

// Injector is the webhook's handler.
type Injector struct {
	// Reader reads AccessKeys and ServiceAccounts (the manager's cache).
	Reader  client.Reader
	Decoder admission.Decoder
}

// Handle injects the pod's AccessKeys, or refuses a pod that names one it
// may not have. A pod whose AccessKey does not exist yet is admitted: the
// kubelet waits for the Secret, and the response warns.
func (i *Injector) Handle(ctx context.Context, req admission.Request) admission.Response {
	pod := &corev1.Pod{}
	if err := i.Decoder.Decode(req, pod); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	if pod.Labels[LabelInject] != "true" {
		return admission.Allowed("not opted in")
	}
	namespace := req.Namespace // a pod of a Deployment has no namespace of its own yet
	names, err := i.accessKeysOf(ctx, pod, namespace)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	plan, err := planFor(pod, names)
	if err != nil {
		return admission.Denied(err.Error())
	}
	var warnings []string
	for _, name := range plan.accessKeys {
		ak := &iamv1beta1.AccessKey{}
		err := i.Reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, ak)
		switch {
		case apierrors.IsNotFound(err):
			// Its defaults: a Secret of the same name, in the Exoscale format.
			ak.Name = name
			warnings = append(warnings, fmt.Sprintf("AccessKey %s does not exist in namespace %s yet: the pod waits for its Secret %s", name, namespace, name))
		case err != nil:
			return admission.Errored(http.StatusInternalServerError, fmt.Errorf("read AccessKey %s: %w", name, err))
		}
		plan.wire(pod, ak)
	}
	injected, err := json.Marshal(pod)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	logf.FromContext(ctx).V(1).Info("injected AccessKeys", "namespace", namespace, "accessKeys", plan.accessKeys)
	resp := admission.PatchResponseFromRaw(req.Object.Raw, injected)
	resp.Warnings = warnings
	return resp
}

// accessKeysOf reads the AccessKeys the pod asks for: its own annotation,
// or its ServiceAccount's.
func (i *Injector) accessKeysOf(ctx context.Context, pod *corev1.Pod, namespace string) (string, error) {
	if names, ok := pod.Annotations[AnnotationAccessKeys]; ok {
		return names, nil
	}
	name := pod.Spec.ServiceAccountName
	if name == "" {
		name = "default"
	}
	// Only its metadata: the cache keeps no more of every ServiceAccount.
	sa := &metav1.PartialObjectMetadata{}
	sa.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ServiceAccount"))
	if err := i.Reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, sa); err != nil {
		if apierrors.IsNotFound(err) {
			return "", nil
		}
		return "", fmt.Errorf("read ServiceAccount %s: %w", name, err)
	}
	return sa.Annotations[AnnotationAccessKeys], nil
}

// plan is what the webhook will do to a pod: which AccessKeys, into which
// containers, mounted where.
type plan struct {
	accessKeys []string
	containers func(c *corev1.Container, init bool) bool
	mountRoot  string
}

// planFor validates what the pod asks for.
func planFor(pod *corev1.Pod, names string) (*plan, error) {
	p := &plan{mountRoot: DefaultMountRoot}
	for name := range strings.SplitSeq(names, ",") {
		name = strings.TrimSpace(name)
		switch {
		case name == "":
			continue
		case strings.Contains(name, "/"):
			return nil, fmt.Errorf("%s: %q names an AccessKey of another namespace: a pod may use the AccessKeys of its own namespace only",
				AnnotationAccessKeys, name)
		}
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			return nil, fmt.Errorf("%s: %q is not an AccessKey name: %s", AnnotationAccessKeys, name, strings.Join(errs, "; "))
		}
		if !slices.Contains(p.accessKeys, name) {
			p.accessKeys = append(p.accessKeys, name)
		}
	}
	if len(p.accessKeys) == 0 {
		return nil, fmt.Errorf("the pod is labelled %s=true but names no AccessKey: set the annotation %s on the pod or its ServiceAccount",
			LabelInject, AnnotationAccessKeys)
	}
	slices.Sort(p.accessKeys)
	if root, ok := pod.Annotations[AnnotationMountPath]; ok {
		if !path.IsAbs(root) || path.Clean(root) != root || root == "/" {
			return nil, fmt.Errorf("%s: %q is not a clean absolute directory", AnnotationMountPath, root)
		}
		p.mountRoot = root
	}
	p.containers = func(_ *corev1.Container, init bool) bool { return !init }
	if list, ok := pod.Annotations[AnnotationContainers]; ok {
		var named []string
		for name := range strings.SplitSeq(list, ",") {
			if name = strings.TrimSpace(name); name != "" {
				named = append(named, name)
			}
		}
		for _, name := range named {
			if !hasContainer(pod, name) {
				return nil, fmt.Errorf("%s: the pod has no container %q", AnnotationContainers, name)
			}
		}
		p.containers = func(c *corev1.Container, _ bool) bool { return slices.Contains(named, c.Name) }
	}
	return p, nil
}

func hasContainer(pod *corev1.Pod, name string) bool {
	for _, c := range slices.Concat(pod.Spec.InitContainers, pod.Spec.Containers) {
		if c.Name == name {
			return true
		}
	}
	return false
}

// wire adds one AccessKey's Secret to the pod, once: a pod admitted again
// keeps what it has.
func (p *plan) wire(pod *corev1.Pod, ak *iamv1beta1.AccessKey) {
	secret := ak.Spec.Secret.Name
	if secret == "" {
		secret = ak.Name
	}
	asFiles := ak.Spec.Secret.Format == iamv1beta1.SecretFormatCredentialsFile || ak.Spec.Secret.Format == iamv1beta1.SecretFormatTemplate
	volume := VolumeName(ak.Name)
	if asFiles && !slices.ContainsFunc(pod.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == volume }) {
		pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: volume, VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{SecretName: secret}}})
	}
	each := func(containers []corev1.Container, init bool) {
		for i := range containers {
			c := &containers[i]
			if !p.containers(c, init) {
				continue
			}
			if asFiles {
				if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == volume }) {
					c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: volume, ReadOnly: true,
						MountPath: path.Join(p.mountRoot, ak.Name)})
				}
				continue
			}
			if !slices.ContainsFunc(c.EnvFrom, func(e corev1.EnvFromSource) bool { return e.SecretRef != nil && e.SecretRef.Name == secret }) {
				c.EnvFrom = append(c.EnvFrom, corev1.EnvFromSource{SecretRef: &corev1.SecretEnvSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: secret}}})
			}
		}
	}
	each(pod.Spec.InitContainers, true)
	each(pod.Spec.Containers, false)
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	injected := strings.Split(pod.Annotations[AnnotationInjected], ",")
	injected = slices.DeleteFunc(append(injected, ak.Name), func(s string) bool { return s == "" })
	slices.Sort(injected)
	pod.Annotations[AnnotationInjected] = strings.Join(slices.Compact(injected), ",")
}

// VolumeName is the pod volume of an AccessKey's Secret: a DNS label,
// unique per AccessKey name.
func VolumeName(accessKey string) string {
	name := "exokey-" + accessKey
	if len(name) <= validation.DNS1123LabelMaxLength && len(validation.IsDNS1123Label(name)) == 0 {
		return name
	}
	sum := sha256.Sum256([]byte(accessKey))
	return "exokey-" + hex.EncodeToString(sum[:])[:16]
}
