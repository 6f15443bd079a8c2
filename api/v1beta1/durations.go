package v1beta1

import "time"

// Seconds is a count of seconds of the API as a time.Duration.
func Seconds(s int64) time.Duration { return time.Duration(s) * time.Second }

// SecondsOf is a duration in the API's whole seconds, rounded up.
func SecondsOf(d time.Duration) int64 { return int64((d + time.Second - 1) / time.Second) }
