// Package backend defines where the checkpoint store keeps its files: a
// small interface with written contracts, implemented by a POSIX directory
// (package local), memory (package mem) and a fault-injecting wrapper for
// tests (package fault). Package backendtest holds the conformance suite
// every implementation runs.
//
// The contracts only need what every POSIX file system, NFS and Lustre
// included, provides: rename within a directory is atomic, fsync makes a
// file or a directory entry durable, and O_EXCL creation is atomic. There
// are no locks, no links and no appends to committed files.
package backend
