//go:build cuda

package main

// The cuda build links the CUDA device, which registers "cuda" with
// kernels.Open from its init (a build without the tag answers --device cuda
// with kernels.ErrNotBuilt, naming make build-cuda).
import _ "github.com/cutpoint/cutpoint/kernels/cuda"
