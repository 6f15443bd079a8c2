package emulator

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The EXO2-HMAC-SHA256 request signature, as Exoscale's clients compute it.

const signatureScheme = "EXO2-HMAC-SHA256"

// MaxExpiryAhead bounds how far in the future a signature may expire: the
// clients sign for 10 minutes, so anything much longer is refused.
const MaxExpiryAhead = time.Hour

// Authorization is a parsed Authorization header.
type Authorization struct {
	Credential      string
	SignedQueryArgs []string
	Expires         int64
	Signature       []byte
}

var errMalformedAuthorization = errors.New("malformed Authorization header")

// ParseAuthorization parses `EXO2-HMAC-SHA256 credential=K[,signed-query-args=a;b],expires=T,signature=S`.
func ParseAuthorization(header string) (Authorization, error) {
	var auth Authorization
	rest, ok := strings.CutPrefix(header, signatureScheme+" ")
	if !ok {
		return auth, fmt.Errorf("%w: want the %s scheme", errMalformedAuthorization, signatureScheme)
	}
	seen := map[string]bool{}
	for part := range strings.SplitSeq(rest, ",") {
		name, value, ok := strings.Cut(part, "=")
		if !ok || seen[name] {
			return auth, fmt.Errorf("%w: bad or repeated part %q", errMalformedAuthorization, name)
		}
		seen[name] = true
		switch name {
		case "credential":
			auth.Credential = value
		case "signed-query-args":
			auth.SignedQueryArgs = strings.Split(value, ";")
		case "expires":
			expires, err := strconv.ParseInt(value, 10, 64)
			if err != nil {
				return auth, fmt.Errorf("%w: expires is not a Unix time", errMalformedAuthorization)
			}
			auth.Expires = expires
		case "signature":
			signature, err := base64.StdEncoding.DecodeString(value)
			if err != nil || len(signature) != sha256.Size {
				return auth, fmt.Errorf("%w: signature is not a base64 HMAC-SHA256", errMalformedAuthorization)
			}
			auth.Signature = signature
		default:
			return auth, fmt.Errorf("%w: unknown part %q", errMalformedAuthorization, name)
		}
	}
	if auth.Credential == "" || !seen["expires"] || auth.Signature == nil {
		return auth, fmt.Errorf("%w: credential, expires and signature are required", errMalformedAuthorization)
	}
	return auth, nil
}

// signedQueryArgs returns the names of the query parameters the clients sign:
// those with exactly one value, sorted.
func signedQueryArgs(query url.Values) []string {
	var names []string
	for name, values := range query {
		if len(values) == 1 {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// stringToSign builds the signed message of a request.
func stringToSign(method, escapedPath string, body []byte, query url.Values, signedArgs []string, expires int64) string {
	var values strings.Builder
	for _, name := range signedArgs {
		values.WriteString(query.Get(name))
	}
	return strings.Join([]string{
		method + " " + escapedPath,
		string(body),
		values.String(),
		"", // signed headers: none
		strconv.FormatInt(expires, 10),
	}, "\n")
}

func computeSignature(secret, message string) []byte {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(message))
	return mac.Sum(nil)
}

// Sign sets the Authorization header of req for key and secret, expiring at
// expires, exactly as Exoscale's clients do. body must be the request's body.
func Sign(req *http.Request, body []byte, key, secret string, expires time.Time) {
	query := req.URL.Query()
	args := signedQueryArgs(query)
	message := stringToSign(req.Method, req.URL.EscapedPath(), body, query, args, expires.Unix())
	header := signatureScheme + " credential=" + key
	if len(args) > 0 {
		header += ",signed-query-args=" + strings.Join(args, ";")
	}
	header += ",expires=" + strconv.FormatInt(expires.Unix(), 10) +
		",signature=" + base64.StdEncoding.EncodeToString(computeSignature(secret, message))
	req.Header.Set("Authorization", header)
}

// verifySignature checks a parsed Authorization against the request and the
// credential's secret at time now.
func verifySignature(auth Authorization, req *http.Request, body []byte, secret string, now time.Time) error {
	if now.Unix() > auth.Expires {
		return errors.New("request expired")
	}
	if time.Unix(auth.Expires, 0).After(now.Add(MaxExpiryAhead)) {
		return fmt.Errorf("request expiry is more than %s ahead", MaxExpiryAhead)
	}
	query := req.URL.Query()
	// Every single-valued query parameter must be signed, so none can be added.
	if want := signedQueryArgs(query); !slicesEqual(want, auth.SignedQueryArgs) {
		return errors.New("signed-query-args does not list the request's query parameters")
	}
	message := stringToSign(req.Method, req.URL.EscapedPath(), body, query, auth.SignedQueryArgs, auth.Expires)
	if !hmac.Equal(computeSignature(secret, message), auth.Signature) {
		return errors.New("signature mismatch")
	}
	return nil
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
