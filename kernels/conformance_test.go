package kernels_test

import (
	"runtime"
	"testing"

	"github.com/cutpoint/cutpoint/kernels"
	"github.com/cutpoint/cutpoint/kernels/kernelstest"
)

// The CPU device keeps the contracts every device must keep (the CUDA device
// runs the same suite in its cuda-tagged test binary).
func TestCPUConformance(t *testing.T) {
	kernelstest.Run(t, kernels.CPUDevice())
}

// The same with a single worker and with more workers than cores.
func TestCPUConformanceWorkers(t *testing.T) {
	for _, w := range []int{1, 2 * runtime.NumCPU()} {
		kernelstest.Run(t, kernels.NewCPU(w))
	}
}
