//go:build live

package conformance_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/exokey/exokey/internal/exoscale"
	"github.com/exokey/exokey/test/conformance"
)

// TestLive runs the probes against a real Exoscale organisation: make
// test-live, with EXOSCALE_API_KEY and EXOSCALE_API_SECRET (an IAM v3 key
// that may create and delete roles and API keys, assume roles and use SOS),
// and optionally EXOSCALE_ZONE and EXOSCALE_BUCKET (default
// exokey-conformance-<key suffix>, created when missing). It creates only
// roles and keys labelled exokey.io/conformance, and removes them.
func TestLive(t *testing.T) {
	key, secret := os.Getenv("EXOSCALE_API_KEY"), os.Getenv("EXOSCALE_API_SECRET")
	if key == "" || secret == "" {
		t.Fatal("no Exoscale credentials: make test-live skips before it gets here")
	}
	zone := os.Getenv("EXOSCALE_ZONE")
	if zone == "" {
		zone = "ch-gva-2"
	}
	bucket := os.Getenv("EXOSCALE_BUCKET")
	if bucket == "" {
		bucket = "exokey-conformance-" + key[len(key)-8:]
	}
	target := conformance.Target{Name: "exoscale", Endpoint: "https://api-" + zone + ".exoscale.com/v2",
		SOSEndpoint: "https://sos-" + zone + ".exo.io", Zone: zone, Key: key, Secret: exoscale.Secret(secret),
		Bucket: bucket, OtherBucket: bucket + "-not-granted"}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	results, err := conformance.Run(ctx, target, os.Stdout)
	if err != nil {
		t.Error(err)
	}
	for _, r := range results {
		if !r.Matches() {
			t.Errorf("%s: exokey expects allowed=%v, Exoscale answered allowed=%v (%v): compare with the emulator twin (go test ./test/conformance -run Twin -v)",
				r.Probe, r.Expected, r.Real, r.Err)
		}
	}
}
