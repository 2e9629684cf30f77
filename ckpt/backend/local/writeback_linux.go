//go:build linux

package local

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing [off, off+n) of f to the
// device now, without waiting. A pack is written to the page cache much
// faster than the disk takes it; without the hint nothing reaches the disk
// until Commit's fsync, so compression and I/O would run one after the
// other instead of overlapping. Only a hint: errors (file systems without
// the call, such as some network file systems) are ignored, and Commit
// still fsyncs everything.
func startWriteback(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
