package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/emulator"
)

// The reference controller is the control-plane floor: the smallest
// program that does, for each AccessKey, the Kubernetes work exokey's
// protocol needs for a first key (the finalizer, the pending record in
// status, the Secret, the final status, two events) and sleeps its cloud
// calls. It is fed by an informer and runs the same number of workers on
// the same control plane. Its AccessKeys carry referenceLabel, which it
// selects on, so it never sees exokey's.

const (
	referenceLabel     = "bench.exokey.io/reference"
	referenceFinalizer = "bench.exokey.io/reference"
)

// cloudModel is what the reference sleeps for the cloud calls of one mint:
// the latency of each call, drawn from the emulator's faults, and for
// IAMv3 the polls of the role's async operation, made back to back. With a
// key rate it takes a token per call, as a client that knows the limit
// exactly and is never answered 429.
type cloudModel struct {
	api     string
	faults  emulator.Faults
	limiter *rate.Limiter
}

func newCloudModel(api string, f emulator.Faults) cloudModel {
	m := cloudModel{api: api, faults: f}
	if f.KeyRate > 0 {
		burst := f.KeyBurst
		if burst <= 0 {
			burst = max(1, int(f.KeyRate))
		}
		m.limiter = rate.NewLimiter(rate.Limit(f.KeyRate), burst)
	}
	return m
}

// calls is how many calls one mint makes, with pending the polls answered
// pending (IAMv3: create-iam-role, its polls, create-api-key).
func (m cloudModel) calls(pending int) int {
	if m.api == "AccessKeyV2" {
		return 1
	}
	if pending > 0 {
		return 2 + pending + 1
	}
	return 2
}

func (m cloudModel) mint(ctx context.Context) error {
	pending := 0
	if m.api != "AccessKeyV2" {
		pending = m.faults.Polls()
	}
	for range m.calls(pending) {
		if m.limiter != nil {
			if err := m.limiter.Wait(ctx); err != nil {
				return err
			}
		}
		select {
		case <-time.After(m.faults.Latency()):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

type referenceController struct {
	c        client.Client
	recorder events.EventRecorder
	cloud    cloudModel
	queue    workqueue.TypedInterface[types.NamespacedName]
	cache    cache.Cache
	mu       sync.Mutex
	done     map[types.NamespacedName]bool
}

// runReference runs the reference controller until ctx ends.
func runReference(ctx context.Context, cfg *rest.Config, c client.Client, workers int, cloud cloudModel) error {
	ca, err := cache.New(cfg, cache.Options{
		Scheme: c.Scheme(),
		ByObject: map[client.Object]cache.ByObject{
			&iamv1beta1.AccessKey{}: {Label: labels.SelectorFromSet(labels.Set{referenceLabel: "true"})},
		},
		DefaultTransform: cache.TransformStripManagedFields(),
	})
	if err != nil {
		return err
	}
	clientset, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	broadcaster := events.NewBroadcaster(&events.EventSinkImpl{Interface: clientset.EventsV1()})
	if err := broadcaster.StartRecordingToSinkWithContext(ctx); err != nil {
		return err
	}
	defer broadcaster.Shutdown()
	r := &referenceController{
		c: c, cloud: cloud, cache: ca, done: map[types.NamespacedName]bool{},
		recorder: broadcaster.NewRecorder(c.Scheme(), "exokey-reference"),
		queue:    workqueue.NewTyped[types.NamespacedName](),
	}
	informer, err := ca.GetInformer(ctx, &iamv1beta1.AccessKey{})
	if err != nil {
		return err
	}
	enqueue := func(obj any) {
		if ak, ok := obj.(*iamv1beta1.AccessKey); ok {
			r.queue.Add(client.ObjectKeyFromObject(ak))
		}
	}
	if _, err := informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
	}); err != nil {
		return err
	}
	go func() { _ = ca.Start(ctx) }()
	if !ca.WaitForCacheSync(ctx) {
		return fmt.Errorf("the reference controller's cache did not sync")
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				key, shutdown := r.queue.Get()
				if shutdown {
					return
				}
				if err := r.reconcile(ctx, key); err != nil && ctx.Err() == nil {
					fmt.Println("reference:", key, err)
					r.queue.Add(key)
				}
				r.queue.Done(key)
			}
		})
	}
	<-ctx.Done()
	r.queue.ShutDown()
	wg.Wait()
	return nil
}

// reconcile mints one AccessKey's first key, once.
func (r *referenceController) reconcile(ctx context.Context, key types.NamespacedName) error {
	r.mu.Lock()
	done := r.done[key]
	r.mu.Unlock()
	if done {
		return nil
	}
	ak := &iamv1beta1.AccessKey{}
	if err := r.cache.Get(ctx, key, ak); err != nil {
		return client.IgnoreNotFound(err)
	}
	// The finalizer, then the record of the create in flight.
	patch := client.MergeFrom(ak.DeepCopy())
	ak.Finalizers = append(ak.Finalizers, referenceFinalizer)
	if err := r.c.Patch(ctx, ak, patch); err != nil {
		return err
	}
	name := fmt.Sprintf("bench-%s", ak.UID)
	statusPatch := client.MergeFrom(ak.DeepCopy())
	ak.Status.Pending = iamv1beta1.PendingKey{KeyName: name, StartedAt: ptr.To(metav1.Now()), Issuer: iamv1beta1.MintingIssuer{
		Kind: iamv1beta1.IssuerKind("ClusterKeyIssuer"), Name: ak.Spec.IssuerRef.Name, UID: "reference", API: iamv1beta1.IssuerAPI(r.cloud.api)}}
	if err := r.c.Status().Patch(ctx, ak, statusPatch); err != nil {
		return err
	}
	if err := r.cloud.mint(ctx); err != nil {
		return err
	}
	keyID := "EXO" + string(ak.UID)[:24]
	r.recorder.Eventf(ak, nil, corev1.EventTypeNormal, "KeyCreated", "Create", "created key %s", keyID)
	if err := r.c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: ak.Name, Namespace: ak.Namespace,
			Labels:          map[string]string{iamv1beta1.ManagedByLabel: "exokey-reference"},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(ak, iamv1beta1.GroupVersion.WithKind("AccessKey"))}},
		StringData: map[string]string{"EXOSCALE_API_KEY": keyID, "EXOSCALE_API_SECRET": "reference"},
	}); err != nil {
		return err
	}
	r.recorder.Eventf(ak, nil, corev1.EventTypeNormal, "KeyPublished", "Publish", "published key %s", keyID)
	statusPatch = client.MergeFrom(ak.DeepCopy())
	ak.Status.Pending, ak.Status.KeyID, ak.Status.ObservedGeneration = iamv1beta1.PendingKey{}, keyID, ptr.To(ak.Generation)
	meta.SetStatusCondition(&ak.Status.Conditions, metav1.Condition{Type: "Ready", Status: metav1.ConditionTrue,
		Reason: "KeyPublished", Message: "published", ObservedGeneration: ak.Generation})
	if err := r.c.Status().Patch(ctx, ak, statusPatch); err != nil {
		return err
	}
	r.mu.Lock()
	r.done[key] = true
	r.mu.Unlock()
	return nil
}

// removeReferenceKeys deletes the reference's AccessKeys and Secrets in
// namespaces, its finalizer first, so the next run starts from the same
// cluster.
func removeReferenceKeys(ctx context.Context, c client.Client, namespaces []string) error {
	for _, ns := range namespaces {
		list := &iamv1beta1.AccessKeyList{}
		if err := c.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{referenceLabel: "true"}); err != nil {
			return err
		}
		if err := forEach(len(list.Items), func(i int) error {
			ak := &list.Items[i]
			patch := client.MergeFrom(ak.DeepCopy())
			ak.Finalizers = nil
			return client.IgnoreNotFound(c.Patch(ctx, ak, patch))
		}); err != nil {
			return err
		}
		if err := c.DeleteAllOf(ctx, &iamv1beta1.AccessKey{}, client.InNamespace(ns), client.MatchingLabels{referenceLabel: "true"}); err != nil {
			return err
		}
		if err := c.DeleteAllOf(ctx, &corev1.Secret{}, client.InNamespace(ns),
			client.MatchingLabels{iamv1beta1.ManagedByLabel: "exokey-reference"}); err != nil {
			return err
		}
	}
	return nil
}

// forEach runs f for 0..n-1, 32 at a time, and returns the first error.
func forEach(n int, f func(i int) error) error {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 32)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := f(i); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}
