package exoscale

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/exokey/exokey/internal/exoscale/catalog"
)

// Config is how a backend reaches Exoscale with one issuer's credentials.
type Config struct {
	// API is IAMv3 or AccessKeyV2.
	API string
	// Zone whose endpoint is used when Endpoint is empty.
	Zone string
	// Endpoint overrides the zone's, e.g. http://127.0.0.1:8080/v2.
	Endpoint string
	// Key and Secret are the issuer's own credentials.
	Key    string
	Secret Secret

	// QPS and Burst limit the requests of this client (token bucket).
	QPS   float64
	Burst int
	// Timeout bounds one HTTP attempt.
	Timeout time.Duration
	// CallTimeout bounds one call of the Keys interface, its retries and
	// operation polls included, so a worker is never held longer.
	CallTimeout time.Duration
	// MaxRetries bounds the retries of a 429, a 5xx or a transport error;
	// RetryWaitMin and RetryWaitMax bound the wait between them. A 429
	// whose Retry-After is longer than RetryWaitMax is not waited for: the
	// call fails with the wait in APIError.RetryAfter, for the caller to
	// come back later instead of holding its worker.
	MaxRetries                 int
	RetryWaitMin, RetryWaitMax time.Duration
	// MaxRateWait is the longest a request waits for the client's own rate
	// limit; beyond it the call fails with APIError.RetryAfter set.
	MaxRateWait time.Duration
	// PollInterval is the longest wait between two polls of an async
	// operation. IAMv3 polls start after a fortieth of it and double, so a
	// worker waits about as long as the operation takes; AccessKeyV2's
	// client polls every quarter of it.
	PollInterval time.Duration
	// Metrics records requests; nil records nothing.
	Metrics *Metrics
	// Catalog names operations; the embedded one when nil.
	Catalog *catalog.Catalog
}

// The two APIs.
const (
	APIIAMv3       = "IAMv3"
	APIAccessKeyV2 = "AccessKeyV2"
)

func (c *Config) setDefaults() {
	if c.Zone == "" {
		c.Zone = "ch-gva-2"
	}
	if c.Endpoint == "" {
		c.Endpoint = "https://api-" + c.Zone + ".exoscale.com/v2"
	}
	c.Endpoint = strings.TrimSuffix(c.Endpoint, "/")
	if c.QPS <= 0 {
		c.QPS = 10
	}
	if c.Burst <= 0 {
		c.Burst = max(1, int(c.QPS))
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = 30 * time.Second
	}
	if c.MaxRateWait <= 0 {
		c.MaxRateWait = time.Second
	}
	if c.MaxRetries <= 0 {
		c.MaxRetries = 5
	}
	if c.RetryWaitMin <= 0 {
		c.RetryWaitMin = 200 * time.Millisecond
	}
	if c.RetryWaitMax <= 0 {
		c.RetryWaitMax = 2 * time.Second
	}
	if c.PollInterval <= 0 {
		c.PollInterval = time.Second
	}
	if c.Catalog == nil {
		c.Catalog = catalog.Default()
	}
}

// RateLimit is the request rate and burst a backend built from c allows.
func (c Config) RateLimit() (qps float64, burst int) {
	c.setDefaults()
	return c.QPS, c.Burst
}

// New returns the backend of cfg.API.
func New(cfg Config) (Keys, error) {
	cfg.setDefaults()
	if cfg.Key == "" || cfg.Secret == "" {
		return nil, errors.New("the issuer's key and secret are both needed")
	}
	var keys Keys
	var err error
	switch cfg.API {
	case APIIAMv3, "":
		keys, err = newIAMv3Keys(cfg)
	case APIAccessKeyV2:
		keys, err = newLegacyKeys(cfg)
	default:
		return nil, fmt.Errorf("unknown API %q: want %s or %s", cfg.API, APIIAMv3, APIAccessKeyV2)
	}
	if err != nil {
		return nil, err
	}
	return withDeadlines{keys, cfg.CallTimeout}, nil
}

// Metrics are the Prometheus metrics of Exoscale API requests.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics registers exokey_api_requests_total and
// exokey_api_request_duration_seconds with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exokey_api_requests_total",
			Help: "Exoscale API requests (each attempt) by API, operation and HTTP status code.",
		}, []string{"api", "operation", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "exokey_api_request_duration_seconds",
			Help:    "Latency of Exoscale API requests (each attempt) by API and operation.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}, []string{"api", "operation"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// callRecord carries the final HTTP status of one call out of an SDK,
// whose errors do not all keep it, and how long to wait before trying again
// when the call was throttled (a 429, or the client's own rate limit).
type callRecord struct {
	status     int
	retryAfter time.Duration
}

type callRecordKey struct{}

func recordCall(ctx context.Context) (context.Context, *callRecord) {
	rec := &callRecord{}
	return context.WithValue(ctx, callRecordKey{}, rec), rec
}

// transport limits, measures and records each attempt.
type transport struct {
	api      string
	next     http.RoundTripper
	throttle *throttle
	metrics  *Metrics
	router   *catalog.Router
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	rec, _ := req.Context().Value(callRecordKey{}).(*callRecord)
	if wait, err := t.throttle.reserve(req.Context()); err != nil {
		return nil, err
	} else if wait > 0 {
		if rec != nil {
			rec.retryAfter = wait
		}
		return nil, &throttledError{wait: wait}
	}
	operation := "unknown"
	if op, _, ok := t.router.Match(req.Method, req.URL.Path); ok {
		operation = op.Name
	}
	started := time.Now()
	resp, err := t.next.RoundTrip(req)
	code := "error"
	if err == nil {
		code = strconv.Itoa(resp.StatusCode)
		var wait time.Duration
		if resp.StatusCode == http.StatusTooManyRequests {
			retryAfterFromBody(resp)
			wait = retryAfter(resp.Header.Get("Retry-After"), time.Now())
		}
		t.throttle.answered(started, resp.StatusCode, wait)
		if rec != nil {
			rec.status, rec.retryAfter = resp.StatusCode, wait
		}
	}
	if t.metrics != nil {
		t.metrics.requests.WithLabelValues(t.api, operation, code).Inc()
		t.metrics.duration.WithLabelValues(t.api, operation).Observe(time.Since(started).Seconds())
	}
	return resp, err
}

// throttledError is a request the client's own rate limit did not send.
type throttledError struct{ wait time.Duration }

func (e *throttledError) Error() string {
	return fmt.Sprintf("not sent: the issuer's request rate is spent for %s", e.wait.Round(time.Millisecond))
}

// maxErrorBody bounds the 429 body read for its wait.
const maxErrorBody = 64 << 10

// retryAfterFromBody reads a 429's wait from its body, {"error",
// "retry_after": seconds}, the one 429 body Exoscale documents, when the
// answer has no Retry-After header, and sets the header from it so every
// retry decision honours it. The body is left readable.
func retryAfterFromBody(resp *http.Response) {
	if resp.Header.Get("Retry-After") != "" || resp.Body == nil {
		return
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(raw))
	var body struct {
		RetryAfter json.Number `json:"retry_after"`
	}
	if err != nil || json.Unmarshal(raw, &body) != nil {
		return
	}
	if seconds, err := body.RetryAfter.Float64(); err == nil && seconds > 0 {
		resp.Header.Set("Retry-After", strconv.Itoa(int(math.Ceil(seconds))))
	}
}

// retryAfter reads a Retry-After header (seconds or an HTTP date); a
// missing or unreadable one means a second.
func retryAfter(header string, now time.Time) time.Duration {
	if seconds, err := strconv.Atoi(header); err == nil && seconds > 0 {
		return time.Duration(seconds) * time.Second
	}
	if at, err := http.ParseTime(header); err == nil && at.After(now) {
		return at.Sub(now)
	}
	return time.Second
}

// maxIdleConnsPerIssuer is above the workers an issuer may hold at once.
const maxIdleConnsPerIssuer = 64

// newHTTPClient builds the client one backend uses: rate limited, retrying
// 429, 5xx (not 501) and transport errors with capped backoff.
func newHTTPClient(cfg Config) *http.Client {
	base := http.DefaultTransport.(*http.Transport).Clone()
	// Every worker may call the issuer at once; the default keeps two idle
	// connections a host, so the others would each cost a new connection
	// (against Exoscale, a TLS handshake) per call.
	base.MaxIdleConnsPerHost = maxIdleConnsPerIssuer
	retrying := retryablehttp.NewClient()
	retrying.Logger = nil
	retrying.RetryMax = cfg.MaxRetries
	retrying.RetryWaitMin = cfg.RetryWaitMin
	retrying.RetryWaitMax = cfg.RetryWaitMax
	retrying.Backoff = func(waitMin, waitMax time.Duration, attempt int, resp *http.Response) time.Duration {
		// DefaultBackoff honours Retry-After without a bound; keep it bounded.
		return min(retryablehttp.DefaultBackoff(waitMin, waitMax, attempt, resp), waitMax)
	}
	retrying.CheckRetry = func(ctx context.Context, resp *http.Response, err error) (bool, error) {
		return retryPolicy(ctx, resp, err, cfg.RetryWaitMax)
	}
	// Answer the last response rather than a generic "giving up" error, so
	// the SDK reports the status and message.
	retrying.ErrorHandler = retryablehttp.PassthroughErrorHandler
	retrying.HTTPClient = &http.Client{
		Timeout: cfg.Timeout,
		Transport: &transport{
			api:      cfg.API,
			next:     base,
			throttle: newThrottle(cfg.QPS, cfg.Burst, cfg.MaxRateWait),
			metrics:  cfg.Metrics,
			router:   catalog.NewRouter(cfg.Catalog),
		},
	}
	return &http.Client{Transport: markNonIdempotent{retrying.StandardClient().Transport}}
}

type nonIdempotentKey struct{}

// markNonIdempotent tells the retry policy which requests are creates: a
// POST that timed out or failed with a 5xx may have been applied, and
// sending it again would mint a second key whose secret nobody keeps.
type markNonIdempotent struct{ next http.RoundTripper }

func (m markNonIdempotent) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost {
		req = req.WithContext(context.WithValue(req.Context(), nonIdempotentKey{}, true))
	}
	return m.next.RoundTrip(req)
}

// retryPolicy retries 429, 5xx and transport errors, except that a
// non-idempotent request is retried only on 429, which is answered before
// anything is applied. Its other failures go to the caller, who recovers
// through its record of the create and a lookup by name. Nothing is retried
// that would hold the caller long: a request the rate limit did not send,
// or a 429 asking for a wait longer than maxWait.
func retryPolicy(ctx context.Context, resp *http.Response, err error, maxWait time.Duration) (bool, error) {
	var throttled *throttledError
	if errors.As(err, &throttled) {
		return false, nil
	}
	if resp != nil && resp.StatusCode == http.StatusTooManyRequests && retryAfter(resp.Header.Get("Retry-After"), time.Now()) > maxWait {
		return false, nil
	}
	if ctx.Value(nonIdempotentKey{}) != nil && (resp == nil || resp.StatusCode != http.StatusTooManyRequests) {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		return false, nil
	}
	return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
}
