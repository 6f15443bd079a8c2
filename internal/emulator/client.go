package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Authorize asks an emulator whether the credential key/secret may call
// operation with parameters (S3-only operations included). endpoint is the
// emulator's /v2 URL.
func Authorize(ctx context.Context, endpoint, key, secret, operation string, parameters map[string]string) (bool, error) {
	body, err := json.Marshal(map[string]any{"operation": operation, "parameters": parameters})
	if err != nil {
		return false, err
	}
	url := strings.TrimSuffix(strings.TrimSuffix(endpoint, "/"), "/v2") + "/_emulator/authorize"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	Sign(req, body, key, secret, time.Now().Add(10*time.Minute))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	var answer struct {
		Allowed bool   `json:"allowed"`
		Message string `json:"message"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		return false, fmt.Errorf("authorize %s: status %d", operation, resp.StatusCode)
	}
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("authorize %s: status %d: %s", operation, resp.StatusCode, answer.Message)
	}
	return answer.Allowed, nil
}

// NewS3Client is an unmodified AWS SDK S3 client for an SOS endpoint (the
// emulator's, or Exoscale's https://sos-<zone>.exo.io), signing with a key
// and secret as a workload configures one: path-style addressing (the
// emulator serves no other), and checksums only where S3 requires them,
// so a payload is signed whole over plain http.
func NewS3Client(endpoint, zone, key, secret string) *s3.Client {
	return s3.New(s3.Options{Region: zone, BaseEndpoint: aws.String(endpoint), UsePathStyle: true,
		Credentials:                credentials.NewStaticCredentialsProvider(key, secret, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired})
}
