//go:build !linux

package local

import "os"

// Elsewhere every file goes through the page cache.
type directSink struct{}

func newDirectSink(*os.File) *directSink        { return nil }
func (*directSink) write(p []byte) (int, error) { return len(p), nil }
func (*directSink) finish(int64) error          { return nil }
func (*directSink) abort()                      {}
