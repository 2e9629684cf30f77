// Package discard provides a backend that drops every file written through
// Create (the packs) and keeps the small files in memory: the storage
// engine measured without storage, for benchmarks. Nothing written through
// Create can be read back, so it is no place for a store anyone restores.
package discard

import (
	"context"

	"github.com/cutpoint/cutpoint/ckpt/backend"
	"github.com/cutpoint/cutpoint/ckpt/backend/mem"
)

// Backend is an in-memory backend whose Create writers drop their bytes.
type Backend struct{ *mem.Backend }

// New returns an empty Backend.
func New() *Backend { return &Backend{mem.New()} }

// Create returns a writer that accepts and drops everything.
func (b *Backend) Create(ctx context.Context, name string) (backend.Writer, error) {
	return writer{}, ctx.Err()
}

type writer struct{}

func (writer) Write(p []byte) (int, error) { return len(p), nil }
func (writer) Commit() error               { return nil }
func (writer) Abort() error                { return nil }
