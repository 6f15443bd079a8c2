package v1alpha1

import (
	"encoding/json"
	"time"
)

// Duration is a Go duration such as 720h, kept as it was written: it reads
// back in the same spelling after a round trip through v1beta1, which
// counts whole seconds (api/v1alpha1/conversion.go), so a manifest applied
// again is unchanged.
// +kubebuilder:validation:Type=string
// +kubebuilder:validation:Format=duration
type Duration struct {
	time.Duration `json:"-"`
	// text is the duration as written; empty for one made in Go.
	text string
}

// NewDuration is a Duration as written in text, such as "720h".
func NewDuration(text string) (*Duration, error) {
	d, err := time.ParseDuration(text)
	if err != nil {
		return nil, err
	}
	return &Duration{Duration: d, text: text}, nil
}

// String is the duration as written, or Go's spelling of it.
func (d Duration) String() string {
	if d.text != "" {
		return d.text
	}
	return d.Duration.String()
}

// MarshalJSON writes the duration as written.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration, keeping its spelling.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var text string
	if err := json.Unmarshal(b, &text); err != nil {
		return err
	}
	parsed, err := NewDuration(text)
	if err != nil {
		return err
	}
	*d = *parsed
	return nil
}
