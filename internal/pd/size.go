package pd

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	units "github.com/docker/go-units"
)

// ByteSize is a size in bytes. PD renders it as a human string with binary
// units and 4 significant digits ("1.953TiB", "17 GiB" before PD 4.0,
// "0B"), so parsed values are exact only to that precision.
type ByteSize uint64

// UnmarshalJSON accepts PD's strings and plain JSON numbers (bytes).
func (b *ByteSize) UnmarshalJSON(data []byte) error {
	if len(data) > 0 && data[0] != '"' {
		var n float64
		if err := json.Unmarshal(data, &n); err != nil {
			return fmt.Errorf("pd: byte size %s: %w", data, err)
		}
		if n < 0 {
			return fmt.Errorf("pd: negative byte size %s", data)
		}
		*b = ByteSize(n)
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("pd: byte size %s: %w", data, err)
	}
	n, err := ParseByteSize(s)
	if err != nil {
		return err
	}
	*b = n
	return nil
}

// MarshalJSON renders the size as PD does.
func (b ByteSize) MarshalJSON() ([]byte, error) { return json.Marshal(b.String()) }

// String renders the size as PD does ("1.953TiB").
func (b ByteSize) String() string { return units.BytesSize(float64(b)) }

// ParseByteSize parses a PD size string ("1.953TiB", "17 GiB", "0B") into
// bytes. It returns an error for anything else.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, nil
	}
	n, err := units.RAMInBytes(strings.ReplaceAll(t, " ", ""))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("pd: invalid byte size %q", s)
	}
	return ByteSize(n), nil
}

// Duration is a Go duration string as PD renders it ("59m35.4s").
type Duration time.Duration

// UnmarshalJSON parses a duration string; an empty string is 0.
func (d *Duration) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("pd: duration %s: %w", data, err)
	}
	if s == "" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("pd: duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON renders the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }
