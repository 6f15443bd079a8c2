package emulator

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/exokey/exokey/internal/exoscale/catalog"
	"github.com/exokey/exokey/internal/exoscale/policy"
)

// The SOS endpoint: Object Storage over the S3 protocol, path-style
// (http://HOST/BUCKET/KEY). Unmodified S3 clients sign with SigV4 using a
// key minted here; the emulator checks the signature, names the request
// with its IAM v3 S3 action, authorises it as the key's grant does (a
// legacy key by its legacy names, an IAM v3 key by its role and the
// organisation policy), and hands it to an in-memory S3 store (gofakes3).
// The mapping from S3 request to action is docs/reference/exoscale-facts.md's.

// maxSignedBody bounds a body whose SHA-256 the request signs: it is read
// whole to check it.
const maxSignedBody = 64 << 20

// sigV4Skew is how far a request's X-Amz-Date may be from now, as at AWS.
const sigV4Skew = 15 * time.Minute

func newObjectStore() http.Handler {
	return gofakes3.New(s3mem.New(), gofakes3.WithoutVersioning()).Server()
}

// SOSHandler serves the SOS endpoint.
func (s *Server) SOSHandler() http.Handler { return http.HandlerFunc(s.serveSOS) }

// s3Error is an S3 error answer.
type s3Error struct {
	status  int
	code    string
	message string
}

func (s *Server) serveSOS(w http.ResponseWriter, r *http.Request) {
	bucket, key := splitS3Path(r.URL.Path)
	action := s3Action(r.Method, bucket, key, r.URL.Query())
	status, keyID := http.StatusOK, "-"
	defer func() {
		s.count("sos:"+action, status, keyID)
		s.log.Info("sos request", "method", r.Method, "bucket", bucket, "action", action, "status", status, "key", keyID)
	}()
	fail := func(e s3Error) {
		status = e.status
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(e.status)
		_ = xml.NewEncoder(w).Encode(struct {
			XMLName xml.Name `xml:"Error"`
			Code    string   `xml:"Code"`
			Message string   `xml:"Message"`
		}{Code: e.code, Message: e.message})
	}
	principal, g, authErr := s.authenticateSigV4(r)
	if authErr != nil {
		fail(*authErr)
		return
	}
	keyID = principal.Key
	op, known := s.cat.Lookup(action)
	if !known || op.Vocabulary != catalog.V3 {
		fail(s3Error{http.StatusNotImplemented, "NotImplemented", "the emulator does not serve " + r.Method + " " + r.URL.Path + " (" + action + ")"})
		return
	}
	params := map[string]any{}
	if bucket != "" {
		params["bucket"] = bucket
	}
	if key != "" {
		params["key"] = key
	}
	if prefix := r.URL.Query().Get("prefix"); prefix != "" {
		params["prefix"] = prefix
	}
	source, _, _ := net.SplitHostPort(r.RemoteAddr)
	req := policy.Request{Parameters: params, APIKey: principal.Key, SourceIP: source, Zone: s.opts.Zone,
		Now: s.opts.Now().UTC().Format(time.RFC3339), Identity: map[string]any{"key": principal.Key}}
	if !g.allows(op, req) {
		fail(s3Error{http.StatusForbidden, "AccessDenied", fmt.Sprintf("key %s may not %s", principal.Key, action)})
		return
	}
	recorder := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	s.objects.ServeHTTP(recorder, r)
	status = recorder.status
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

// splitS3Path reads /BUCKET/KEY.
func splitS3Path(path string) (bucket, key string) {
	bucket, key, _ = strings.Cut(strings.TrimPrefix(path, "/"), "/")
	return bucket, key
}

// s3Action names an S3 request with the IAM v3 action of the sos class.
// Multipart uploads count as put-object (inferred), DeleteObjects as
// delete-object; a request with no action here is answered 501.
func s3Action(method, bucket, key string, query url.Values) string {
	has := func(name string) bool { _, ok := query[name]; return ok }
	switch {
	case bucket == "" && method == http.MethodGet:
		return "list-buckets"
	case key == "":
		switch method {
		case http.MethodGet:
			for sub, action := range map[string]string{"versions": "list-object-versions", "uploads": "list-multipart-uploads",
				"acl": "get-bucket-acl", "cors": "get-bucket-cors", "ownershipControls": "get-bucket-ownership-controls"} {
				if has(sub) {
					return action
				}
			}
			if len(query) == 0 || has("list-type") || has("prefix") || has("delimiter") || has("marker") || has("max-keys") || has("continuation-token") || has("encoding-type") {
				return "list-objects"
			}
		case http.MethodHead:
			return "head-bucket"
		case http.MethodPut:
			if has("lifecycle") {
				return "put-bucket-lifecycle"
			}
			if len(query) == 0 {
				return "create-bucket"
			}
		case http.MethodDelete:
			if has("lifecycle") {
				return "delete-bucket-lifecycle"
			}
			if len(query) == 0 {
				return "delete-bucket"
			}
		case http.MethodPost:
			if has("delete") {
				return "delete-object"
			}
		}
	default:
		switch method {
		case http.MethodGet:
			if has("acl") {
				return "get-object-acl"
			}
			return "get-object"
		case http.MethodHead:
			return "head-object"
		case http.MethodPut, http.MethodPost:
			return "put-object"
		case http.MethodDelete:
			if has("uploadId") {
				return "abort-multipart-upload"
			}
			return "delete-object"
		}
	}
	return "unknown"
}

// authenticateSigV4 checks an AWS Signature Version 4 Authorization header
// by signing the same request again with the key's secret, with the
// signer of the AWS SDK, and returns the key and its grant.
func (s *Server) authenticateSigV4(r *http.Request) (*accessKey, grant, *s3Error) {
	denied := func(code, format string, args ...any) *s3Error {
		return &s3Error{http.StatusForbidden, code, fmt.Sprintf(format, args...)}
	}
	auth, err := parseSigV4(r.Header.Get("Authorization"))
	if err != nil {
		return nil, nil, denied("AccessDenied", "%v", err)
	}
	signedAt, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return nil, nil, denied("AccessDenied", "X-Amz-Date: %v", err)
	}
	now := s.opts.Now()
	if d := now.Sub(signedAt); d > sigV4Skew || d < -sigV4Skew {
		return nil, nil, denied("RequestTimeTooSkewed", "the request was signed at %s", signedAt.Format(time.RFC3339))
	}
	payloadHash := r.Header.Get("X-Amz-Content-Sha256")
	switch {
	case payloadHash == "UNSIGNED-PAYLOAD" || payloadHash == "STREAMING-UNSIGNED-PAYLOAD-TRAILER":
	case strings.HasPrefix(payloadHash, "STREAMING-"):
		return nil, nil, &s3Error{http.StatusNotImplemented, "NotImplemented", "signed chunks (" + payloadHash + ") are not served: sign the payload whole or leave it unsigned"}
	default:
		body, err := io.ReadAll(io.LimitReader(r.Body, maxSignedBody+1))
		if err != nil || len(body) > maxSignedBody {
			return nil, nil, &s3Error{http.StatusBadRequest, "EntityTooLarge", "a signed payload is read whole: at most 64 MiB"}
		}
		sum := sha256.Sum256(body)
		if hex.EncodeToString(sum[:]) != payloadHash {
			return nil, nil, denied("XAmzContentSHA256Mismatch", "the body does not match X-Amz-Content-Sha256")
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	key, ok := s.state.Keys[auth.accessKey]
	if !ok || (key.ExpiresAt != nil && now.After(*key.ExpiresAt)) {
		return nil, nil, denied("InvalidAccessKeyId", "unknown, revoked or expired key %s", auth.accessKey)
	}
	if want := signSigV4(r, auth, key, payloadHash, signedAt); want == "" || !hmac.Equal([]byte(want), []byte(auth.signature)) {
		return nil, nil, denied("SignatureDoesNotMatch", "the request signature does not match")
	}
	g, grantErr := s.grantOfLocked(key)
	if grantErr != nil {
		return nil, nil, denied("AccessDenied", "%v", grantErr)
	}
	return key, g, nil
}

// sigV4Authorization is a parsed `AWS4-HMAC-SHA256 Credential=AK/DATE/REGION/s3/aws4_request,
// SignedHeaders=a;b, Signature=HEX` header.
type sigV4Authorization struct {
	accessKey, region, service string
	signedHeaders              []string
	signature                  string
}

func parseSigV4(header string) (sigV4Authorization, error) {
	var auth sigV4Authorization
	rest, ok := strings.CutPrefix(header, "AWS4-HMAC-SHA256 ")
	if !ok {
		return auth, fmt.Errorf("want an AWS4-HMAC-SHA256 Authorization header")
	}
	for part := range strings.SplitSeq(rest, ",") {
		name, value, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch name {
		case "Credential":
			scope := strings.Split(value, "/")
			if len(scope) != 5 || scope[4] != "aws4_request" {
				return auth, fmt.Errorf("malformed credential scope")
			}
			auth.accessKey, auth.region, auth.service = scope[0], scope[2], scope[3]
		case "SignedHeaders":
			auth.signedHeaders = strings.Split(value, ";")
		case "Signature":
			auth.signature = value
		}
	}
	if auth.accessKey == "" || auth.signature == "" || len(auth.signedHeaders) == 0 {
		return auth, fmt.Errorf("malformed Authorization header")
	}
	return auth, nil
}

// signSigV4 signs a copy of r holding only the headers the client signed,
// and returns the signature; empty when it cannot be signed.
func signSigV4(r *http.Request, auth sigV4Authorization, key *accessKey, payloadHash string, signedAt time.Time) string {
	u := &url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	clone, err := http.NewRequestWithContext(context.Background(), r.Method, u.String(), nil)
	if err != nil {
		return ""
	}
	clone.Host = r.Host
	for _, name := range auth.signedHeaders {
		switch name {
		case "host":
		case "content-length":
			clone.ContentLength = r.ContentLength
		default:
			for _, value := range r.Header.Values(name) {
				clone.Header.Add(name, value)
			}
		}
	}
	signer := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	creds := aws.Credentials{AccessKeyID: key.Key, SecretAccessKey: key.Secret}
	if err := signer.SignHTTP(context.Background(), creds, clone, payloadHash, auth.service, auth.region, signedAt); err != nil {
		return ""
	}
	signed, err := parseSigV4(clone.Header.Get("Authorization"))
	if err != nil || strings.Join(signed.signedHeaders, ";") != strings.Join(auth.signedHeaders, ";") {
		return ""
	}
	return signed.signature
}
