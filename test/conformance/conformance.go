// Package conformance is one set of probes of Exoscale's IAM behaviour that
// exokey relies on, run against two targets: the emulator (in make test)
// and a real Exoscale organisation (make test-live, with credentials). Each
// probe mints IAM v3 keys with exokey's own backend, calls with egoscale and
// an S3 client, and compares the verdict with what exokey expects, so the
// emulator's answers and the real cloud's can be set side by side
// (docs/reference/exoscale-facts.md says which facts each probe checks).
package conformance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	v3 "github.com/exoscale/egoscale/v3"
	v3creds "github.com/exoscale/egoscale/v3/credentials"

	"github.com/exokey/exokey/internal/emulator"
	"github.com/exokey/exokey/internal/exoscale"
)

// Target is where the probes run.
type Target struct {
	// Name is "emulator" or "exoscale".
	Name string
	// Endpoint is the /v2 URL; SOSEndpoint the S3 endpoint (path-style).
	Endpoint, SOSEndpoint string
	Zone                  string
	// Key and Secret are an IAM v3 API key (or, on the emulator, its root)
	// that may create roles and keys and reach the bucket.
	Key    string
	Secret exoscale.Secret
	// Bucket exists and the key may read and write it; OtherBucket is a
	// name the minted keys are not given.
	Bucket, OtherBucket string
}

// LabelKey marks every role the suite creates, so a sweep finds what a
// failed run left behind.
const LabelKey = "exokey.io/conformance"

// Result is one probe's verdict.
type Result struct {
	Probe    string
	Expected bool
	Real     bool
	Err      error
}

// Matches reports whether the target answered as exokey expects.
func (r Result) Matches() bool { return r.Err == nil && r.Real == r.Expected }

// Probe is one call of a minted key, and whether Exoscale should allow it.
type Probe struct {
	Name    string
	Allowed bool
	Call    func(ctx context.Context, c *clients) error
}

// Shape is a key of one shape and what it must and must not be able to do.
type Shape struct {
	Name   string
	Spec   exoscale.KeySpec
	Probes []Probe
}

// Shapes are the keys the suite mints on t: operations, a tag, a bucket
// resource in legacy names and in S3 action names.
func Shapes(t Target) []Shape {
	bucket, other := t.Bucket, t.OtherBucket
	sosProbes := []Probe{
		{"GetObject on the bucket", true, func(ctx context.Context, c *clients) error { return c.get(ctx, bucket) }},
		{"ListObjectsV2 on the bucket", true, func(ctx context.Context, c *clients) error { return c.list(ctx, bucket) }},
		{"PutObject on the bucket", false, func(ctx context.Context, c *clients) error { return c.put(ctx, bucket) }},
		{"GetObject on another bucket", false, func(ctx context.Context, c *clients) error { return c.get(ctx, other) }},
		{"list-instances", false, func(ctx context.Context, c *clients) error { return c.listInstances(ctx) }},
	}
	return []Shape{
		{Name: "legacy S3 names on one bucket", Spec: exoscale.KeySpec{Operations: []string{"get-sos-object", "list-sos-bucket"},
			Resources: []string{"sos/bucket:" + bucket}}, Probes: sosProbes},
		{Name: "S3 action names on one bucket", Spec: exoscale.KeySpec{Operations: []string{"get-object", "head-object", "list-objects"},
			Resources: []string{"sos/bucket:" + bucket}}, Probes: sosProbes},
		{Name: "list-buckets beside one bucket", Spec: exoscale.KeySpec{Operations: []string{"list-sos-buckets", "get-sos-object"},
			Resources: []string{"sos/bucket:" + bucket}}, Probes: []Probe{
			{"ListBuckets (names no bucket)", true, func(ctx context.Context, c *clients) error { return c.listBuckets(ctx) }},
			{"GetObject on the bucket", true, func(ctx context.Context, c *clients) error { return c.get(ctx, bucket) }},
			{"GetObject on another bucket", false, func(ctx context.Context, c *clients) error { return c.get(ctx, other) }},
		}},
		{Name: "operations: block storage, in class compute", Spec: exoscale.KeySpec{Operations: []string{"list-block-storage-volumes"}}, Probes: []Probe{
			{"list-block-storage-volumes", true, func(ctx context.Context, c *clients) error { return c.listVolumes(ctx) }},
			{"list-instances", false, func(ctx context.Context, c *clients) error { return c.listInstances(ctx) }},
		}},
		{Name: "tag compute", Spec: exoscale.KeySpec{Tags: []string{"compute"}}, Probes: []Probe{
			{"list-instances", true, func(ctx context.Context, c *clients) error { return c.listInstances(ctx) }},
			{"list-block-storage-volumes (compute holds it)", true, func(ctx context.Context, c *clients) error { return c.listVolumes(ctx) }},
			{"GetObject", false, func(ctx context.Context, c *clients) error { return c.get(ctx, bucket) }},
		}},
	}
}

// Run mints each shape's key on t, runs its probes, then revokes it; what
// it made is removed even when a probe fails. It writes a table of probe,
// expected and real verdict to out.
func Run(ctx context.Context, t Target, out io.Writer) ([]Result, error) {
	keys, err := exoscale.New(exoscale.Config{API: exoscale.APIIAMv3, Zone: t.Zone, Endpoint: t.Endpoint, Key: t.Key, Secret: t.Secret,
		CallTimeout: time.Minute})
	if err != nil {
		return nil, err
	}
	if err := prepare(ctx, t); err != nil {
		return nil, fmt.Errorf("prepare the bucket: %w", err)
	}
	run := randomSuffix()
	var results []Result
	for i, shape := range Shapes(t) {
		spec := shape.Spec
		spec.Name = fmt.Sprintf("exokey-conformance-%s-%d", run, i)
		spec.Labels = map[string]string{LabelKey: run}
		cred, err := keys.Create(ctx, spec)
		if err != nil {
			results = append(results, Result{Probe: shape.Name + ": mint", Expected: true, Err: err})
			continue
		}
		c := newClients(t, cred.ID, cred.Secret.Reveal())
		for _, probe := range shape.Probes {
			callCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
			real, err := verdict(probe.Call(callCtx, c))
			cancel()
			results = append(results, Result{Probe: shape.Name + ": " + probe.Name, Expected: probe.Allowed, Real: real, Err: err})
		}
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		if err := keys.Revoke(cleanup, cred.Key); err != nil {
			results = append(results, Result{Probe: shape.Name + ": revoke", Expected: true, Err: err})
		}
		cancel()
	}
	results = append(results, session(ctx, t, keys, run)...)
	results = append(results, drift(ctx, t, keys, run)...)
	sweepCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	leftovers, err := keys.FindByLabels(sweepCtx, map[string]string{LabelKey: run})
	for _, key := range leftovers {
		if revokeErr := keys.Revoke(sweepCtx, key); revokeErr != nil {
			err = errors.Join(err, revokeErr)
		}
	}
	print(out, t.Name, results)
	return results, err
}

func print(out io.Writer, target string, results []Result) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "PROBE\tEXPECTED\t%s\tMATCH\n", strings.ToUpper(target))
	word := func(allowed bool) string {
		if allowed {
			return "allowed"
		}
		return "denied"
	}
	for _, r := range results {
		real := word(r.Real)
		if r.Err != nil {
			real = "error: " + r.Err.Error()
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%v\n", r.Probe, word(r.Expected), real, r.Matches())
	}
	_ = w.Flush()
}

// verdict reads a call's error as allowed, denied (a 403), or an error.
func verdict(err error) (bool, error) {
	if err == nil {
		return true, nil
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode() == "AccessDenied" || apiErr.ErrorCode() == "Forbidden") {
		return false, nil
	}
	var httpErr interface{ HTTPStatusCode() int }
	if errors.As(err, &httpErr) && httpErr.HTTPStatusCode() == http.StatusForbidden {
		return false, nil
	}
	if errors.Is(err, v3.ErrForbidden) {
		return false, nil
	}
	return false, err
}

// prepare puts the object the probes read, with the target's own key.
func prepare(ctx context.Context, t Target) error {
	c := newClients(t, t.Key, t.Secret.Reveal())
	if _, err := c.s3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &t.Bucket}); err != nil {
		if _, err := c.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &t.Bucket}); err != nil {
			return err
		}
	}
	return c.put(ctx, t.Bucket)
}

// clients are a minted key's egoscale and S3 clients.
type clients struct {
	v3 *v3.Client
	s3 *s3.Client
}

func newClients(t Target, key, secret string) *clients {
	c, _ := v3.NewClient(v3creds.NewStaticCredentials(key, secret), v3.ClientOptWithEndpoint(v3.Endpoint(t.Endpoint)))
	return &clients{v3: c, s3: emulator.NewS3Client(t.SOSEndpoint, t.Zone, key, secret)}
}

const probeObject = "exokey-conformance/probe.txt"

func (c *clients) get(ctx context.Context, bucket string) error {
	out, err := c.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: aws.String(probeObject)})
	if err != nil {
		return err
	}
	return out.Body.Close()
}

func (c *clients) list(ctx context.Context, bucket string) error {
	_, err := c.s3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: aws.String("exokey-conformance/")})
	return err
}

func (c *clients) put(ctx context.Context, bucket string) error {
	_, err := c.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(probeObject), Body: strings.NewReader("probe")})
	return err
}

func (c *clients) listBuckets(ctx context.Context) error {
	_, err := c.s3.ListBuckets(ctx, &s3.ListBucketsInput{})
	return err
}

func (c *clients) listInstances(ctx context.Context) error {
	_, err := c.v3.ListInstances(ctx)
	return err
}

func (c *clients) listVolumes(ctx context.Context) error {
	_, err := c.v3.ListBlockStorageVolumes(ctx)
	return err
}

func randomSuffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// readOnly is the spec of a key that reads the target's bucket.
func readOnly(t Target, name, run string) exoscale.KeySpec {
	return exoscale.KeySpec{Name: name, Operations: []string{"get-sos-object", "list-sos-bucket"},
		Resources: []string{"sos/bucket:" + t.Bucket}, Labels: map[string]string{LabelKey: run}}
}

// session mints short-lived credentials (assume-iam-role, beta at
// Exoscale) as exokey does for spec.ttl, and probes them.
func session(ctx context.Context, t Target, keys exoscale.Keys, run string) []Result {
	const shape = "a short-lived key (assume-iam-role)"
	s, err := exoscale.CreateSession(ctx, keys, readOnly(t, "exokey-conformance-"+run+"-session", run), 15*time.Minute)
	if err != nil {
		return []Result{{Probe: shape + ": mint", Expected: true, Err: err}}
	}
	defer func() {
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		_ = keys.Revoke(cleanup, exoscale.Key{Name: s.Name, RoleID: s.RoleID})
	}()
	c := newClients(t, s.ID, s.Secret.Reveal())
	get, getErr := verdict(c.get(ctx, t.Bucket))
	put, putErr := verdict(c.put(ctx, t.Bucket))
	return []Result{
		{Probe: shape + ": GetObject on the bucket", Expected: true, Real: get, Err: getErr},
		{Probe: shape + ": PutObject on the bucket", Expected: false, Real: put, Err: putErr},
	}
}

// drift widens a minted key's role out of band, as someone editing it at
// Exoscale would, then puts the policy back with the call exokey's
// inventory corrects drift with (update-iam-role-policy), and probes
// after each: role policies apply to live keys, both ways.
func drift(ctx context.Context, t Target, keys exoscale.Keys, run string) []Result {
	const shape = "a role edited out of band"
	spec := readOnly(t, "exokey-conformance-"+run+"-drift", run)
	cred, err := keys.Create(ctx, spec)
	if err != nil {
		return []Result{{Probe: shape + ": mint", Expected: true, Err: err}}
	}
	defer func() {
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		_ = keys.Revoke(cleanup, cred.Key)
	}()
	admin := newClients(t, t.Key, t.Secret.Reveal())
	wide := v3.IAMPolicy{DefaultServiceStrategy: v3.IAMPolicyDefaultServiceStrategyDeny,
		Services: map[string]v3.IAMServicePolicy{"sos": {Type: v3.IAMServicePolicyTypeAllow}}}
	op, err := admin.v3.UpdateIAMRolePolicy(ctx, v3.UUID(cred.RoleID), wide)
	if err == nil {
		_, err = admin.v3.Wait(ctx, op, v3.OperationStateSuccess)
	}
	if err != nil {
		return []Result{{Probe: shape + ": widen", Expected: true, Err: err}}
	}
	c := newClients(t, cred.ID, cred.Secret.Reveal())
	put := func() error { return c.put(ctx, t.Bucket) }
	widened, widenedErr := settle(ctx, true, put)
	if err := keys.PutPolicy(ctx, cred.RoleID, spec); err != nil {
		return []Result{{Probe: shape + ": put back", Expected: true, Err: err}}
	}
	corrected, correctedErr := settle(ctx, false, put)
	return []Result{
		{Probe: shape + ": PutObject once widened", Expected: true, Real: widened, Err: widenedErr},
		{Probe: shape + ": PutObject once put back", Expected: false, Real: corrected, Err: correctedErr},
	}
}

// settle calls until the verdict is want, for at most a minute: a policy
// change may take a moment to reach every Exoscale endpoint.
func settle(ctx context.Context, want bool, call func() error) (bool, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		got, err := verdict(call())
		if (err == nil && got == want) || time.Now().After(deadline) {
			return got, err
		}
		select {
		case <-ctx.Done():
			return got, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}
