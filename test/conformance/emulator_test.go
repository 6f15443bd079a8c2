package conformance_test

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/exokey/exokey/internal/emulator"
	"github.com/exokey/exokey/internal/exoscale"
	"github.com/exokey/exokey/internal/exoscale/policy"
	"github.com/exokey/exokey/test/conformance"
)

// emulatorTarget starts an emulator with its /v2 and SOS endpoints.
func emulatorTarget(t *testing.T) (conformance.Target, *emulator.Server) {
	t.Helper()
	server, err := emulator.New(emulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(server)
	t.Cleanup(api.Close)
	sos := httptest.NewServer(server.SOSHandler())
	t.Cleanup(sos.Close)
	key, secret := server.Root()
	return conformance.Target{Name: "emulator", Endpoint: api.URL + "/v2", SOSEndpoint: sos.URL, Zone: "ch-gva-2",
		Key: key, Secret: exoscale.Secret(secret), Bucket: "bucket-1", OtherBucket: "bucket-2"}, server
}

// TestEmulatorTwin runs the live suite's probes against the emulator: the
// twin of make test-live, answering the same questions.
func TestEmulatorTwin(t *testing.T) {
	target, _ := emulatorTarget(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	other := s3Client(target, target.Key, target.Secret.Reveal())
	if _, err := other.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(target.OtherBucket)}); err != nil {
		t.Fatal(err)
	}
	if _, err := other.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(target.OtherBucket), Key: aws.String("exokey-conformance/probe.txt"),
		Body: strings.NewReader("x")}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	results, err := conformance.Run(ctx, target, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(results) < 15 {
		t.Fatalf("%d results, want every probe of every shape", len(results))
	}
	for _, r := range results {
		if !r.Matches() {
			t.Errorf("%s: expected allowed=%v, the emulator answered allowed=%v (%v)", r.Probe, r.Expected, r.Real, r.Err)
		}
	}
}

func s3Client(t conformance.Target, key, secret string) *s3.Client {
	return emulator.NewS3Client(t.SOSEndpoint, t.Zone, key, secret)
}

func s3Code(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}

// TestOrganisationPolicyGatesMintedKeys: a deny in the organisation policy
// wins over the role's allow, for S3 calls of keys already minted; legacy
// access keys are not gated by it (the emulator's choice).
func TestOrganisationPolicyGatesMintedKeys(t *testing.T) {
	target, server := emulatorTarget(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	root := s3Client(target, target.Key, target.Secret.Reveal())
	if _, err := root.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bucket-1")}); err != nil {
		t.Fatal(err)
	}
	keys, err := exoscale.New(exoscale.Config{API: exoscale.APIIAMv3, Endpoint: target.Endpoint, Key: target.Key, Secret: target.Secret})
	if err != nil {
		t.Fatal(err)
	}
	cred, err := keys.Create(ctx, exoscale.KeySpec{Name: "reader", Operations: []string{"list-sos-bucket"}, Resources: []string{"sos/bucket:bucket-1"}})
	if err != nil {
		t.Fatal(err)
	}
	minted := s3Client(target, cred.ID, cred.Secret.Reveal())
	list := func() error {
		_, err := minted.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("bucket-1")})
		return err
	}
	if err := list(); err != nil {
		t.Fatalf("before the organisation policy: %v", err)
	}
	if err := server.SetOrganizationPolicy(policy.Policy{DefaultServiceStrategy: "allow",
		Services: map[string]policy.ServicePolicy{"sos": {Type: "deny"}}}); err != nil {
		t.Fatal(err)
	}
	if err := list(); s3Code(err) != "AccessDenied" {
		t.Fatalf("with an organisation policy denying sos: got %v, want AccessDenied", err)
	}
	// An issuer on the Owner role (an empty policy: everything) may grant
	// only what the organisation allows too.
	owner, err := exoscale.CreateOwnerKey(ctx, keys, "owner")
	if err != nil {
		t.Fatal(err)
	}
	ownerKeys, err := exoscale.New(exoscale.Config{API: exoscale.APIIAMv3, Endpoint: target.Endpoint, Key: owner.ID, Secret: owner.Secret})
	if err != nil {
		t.Fatal(err)
	}
	grantable, err := ownerKeys.Grantable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if grantable.Holds("list-objects") || grantable.Holds("list-sos-bucket") || !grantable.Holds("list-instances") || len(grantable.Notes) > 0 {
		t.Errorf("the Owner role under an organisation policy denying sos: holds list-objects %v, list-instances %v, notes %v",
			grantable.Holds("list-objects"), grantable.Holds("list-instances"), grantable.Notes)
	}
	if err := server.SetOrganizationPolicy(policy.Policy{}); err != nil {
		t.Fatal(err)
	}
	if err := list(); err != nil {
		t.Errorf("after the reset: %v", err)
	}
	if grantable, err := ownerKeys.Grantable(ctx); err != nil || !grantable.Holds("list-objects") || !grantable.Holds("create-iam-role") {
		t.Errorf("the Owner role's empty policy grants everything: %v", err)
	}
}

// TestSigV4IsChecked: a request signed with another secret, or not at
// all, is refused before anything is authorised.
func TestSigV4IsChecked(t *testing.T) {
	target, _ := emulatorTarget(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	wrong := s3Client(target, target.Key, strings.Repeat("x", 43))
	if _, err := wrong.ListBuckets(ctx, &s3.ListBucketsInput{}); s3Code(err) != "SignatureDoesNotMatch" {
		t.Errorf("a wrong secret: got %v, want SignatureDoesNotMatch", err)
	}
	unknown := s3Client(target, "EXO000000000000000000000000", "secret")
	if _, err := unknown.ListBuckets(ctx, &s3.ListBucketsInput{}); s3Code(err) != "InvalidAccessKeyId" {
		t.Errorf("an unknown key: got %v, want InvalidAccessKeyId", err)
	}
	right := s3Client(target, target.Key, target.Secret.Reveal())
	if _, err := right.ListBuckets(ctx, &s3.ListBucketsInput{}); err != nil {
		t.Errorf("the right secret: %v", err)
	}
}
