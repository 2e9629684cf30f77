//go:build !linux

package local

import "errors"

var errNoOpenat2 = errors.New("openat2 not available")

// openat2Beneath: elsewhere there is no openat2; the caller walks the
// path with O_NOFOLLOW on each component.
func openat2Beneath(int, string, int) (int, error) { return -1, errNoOpenat2 }
