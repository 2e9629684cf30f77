//go:build !cuda

package main

import "github.com/cutpoint/cutpoint/rank"

// protectCUDA: the default build has no CUDA device.
func protectCUDA(_ *rank.Rank, name string, _ uint64, _ uint64, _ int) error {
	return errNoCUDA
}
