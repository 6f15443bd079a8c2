package exoscale

import (
	"cmp"
	"errors"
	"net/http"
	"strings"
	"time"

	apiv2 "github.com/exoscale/egoscale/v2/api"
	v3 "github.com/exoscale/egoscale/v3"
)

// apiError turns an SDK error of one operation into an *APIError carrying
// the HTTP status the call ended with. A 404 unwraps to ErrNotFound.
func apiError(operation string, rec *callRecord, err error) error {
	if err == nil {
		return nil
	}
	e := &APIError{Operation: operation, Status: rec.status, err: err}
	var throttled *throttledError
	if errors.As(err, &throttled) || rec.status == http.StatusTooManyRequests {
		e.RetryAfter = max(rec.retryAfter, time.Second/10)
	}
	if throttled != nil {
		e.Status = 0 // never sent
	}
	var v3Err *v3.APIError
	switch {
	case errors.As(err, &v3Err):
		// Newer services answer RFC 9457 problem details: the detail, or
		// the title, says what {"message"} says elsewhere.
		e.Message = cmp.Or(v3Err.Message, v3Err.Detail, v3Err.Title)
	case errors.Is(err, apiv2.ErrInvalidRequest):
		e.Message = afterSentinel(err, apiv2.ErrInvalidRequest)
	case errors.Is(err, apiv2.ErrAPIError):
		e.Message = afterSentinel(err, apiv2.ErrAPIError)
	}
	if e.Status == 0 && (errors.Is(err, apiv2.ErrNotFound) || errors.Is(err, v3.ErrNotFound)) {
		e.Status = http.StatusNotFound
	}
	if e.Status == http.StatusNotFound {
		e.err = ErrNotFound
	}
	if e.Status >= 200 && e.Status < 300 {
		// The call's last response was fine but the SDK failed after it
		// (decoding, a failed async operation): not an HTTP error.
		e.Status = 0
	}
	return e
}

// afterSentinel is the message egoscale v2 puts after "<sentinel>: ".
func afterSentinel(err, sentinel error) string {
	_, message, _ := strings.Cut(err.Error(), sentinel.Error()+": ")
	return message
}
