package main

import (
	"errors"

	"github.com/cutpoint/cutpoint/kernels"
)

// checkDevice fails early when this build cannot run ranks on device;
// `--device cuda` on the default build exits 4 naming the cuda build.
func checkDevice(device string) error {
	err := kernels.Check(device)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kernels.ErrNotBuilt):
		return withCode(exitNotBuilt, errors.New("--device "+device+": this cutpoint was built without CUDA; build it with `make build-cuda` and run bin/cutpoint-cuda"))
	default:
		return usageError(err)
	}
}
