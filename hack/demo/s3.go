package main

import (
	"context"
	"errors"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/exokey/exokey/internal/emulator"
)

// newS3 is an unmodified AWS SDK S3 client signing with a credential,
// path-style, as a workload would configure it from its Secret.
func newS3(key, secret, endpoint string) *s3.Client {
	return emulator.NewS3Client(endpoint, "ch-gva-2", key, secret)
}

var s3Names = map[string]string{"create": "CreateBucket", "put": "PutObject", "get": "GetObject", "list": "ListObjectsV2", "delete": "DeleteObject"}

const demoObject = "backup.tar"

// s3Call makes one S3 call; a refusal comes back as its S3 error code.
func s3Call(ctx context.Context, c *s3.Client, call, bucket string) error {
	var err error
	switch call {
	case "create":
		_, err = c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket})
	case "put":
		_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(demoObject), Body: strings.NewReader("demo")})
	case "get":
		var out *s3.GetObjectOutput
		if out, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: aws.String(demoObject)}); err == nil {
			out.Body.Close()
		}
	case "list":
		_, err = c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &bucket})
	case "delete":
		_, err = c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: aws.String(demoObject)})
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return errors.New(apiErr.ErrorCode())
	}
	return err
}

// roleRule is the sos rule of a minted key's role, as the emulator holds it.
func roleRule(emu *emulator.Server, roleID string) string {
	for _, r := range emu.Roles() {
		if r.ID == roleID {
			if rules := r.Policy.Services["sos"].Rules; len(rules) > 0 {
				return rules[len(rules)-1].Expression
			}
		}
	}
	return "-"
}
