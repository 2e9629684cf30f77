// Package mem is an in-memory backend of the checkpoint store, for tests
// and for benchmarks that leave the disk out. It follows the same contract
// as the POSIX backend, temporary files included: an unfinished Create is
// listed as a temporary file until it is committed or aborted.
package mem
