# cuda-env.sh: source it (bash) before `go build -tags cuda` or `go vet -tags cuda`.
# It points cgo at the cuda.h and stub libcuda.so that scripts/cuda-headers.sh
# put in .cache/cuda (or CUTPOINT_CUDA_CACHE). A machine with Debian's
# nvidia-cuda-dev installed needs nothing: /usr/include/cuda.h is then found
# by gorgonia.org/cu's own flags, and this file only says so.
#
# The stub is for linking only. A cuda binary records `NEEDED libcuda.so.1` and
# binds at run time to the GPU node's driver library; never put the stub on
# LD_LIBRARY_PATH.

_cutpoint_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_cutpoint_cuda=${CUTPOINT_CUDA_CACHE:-$_cutpoint_root/.cache/cuda}
if [[ -s $_cutpoint_cuda/include/cuda.h && -s $_cutpoint_cuda/lib/libcuda.so ]]; then
  # An explicit CGO_CFLAGS replaces Go's default "-g -O2", so keep it.
  export CGO_CFLAGS="${CGO_CFLAGS:--g -O2} -I$_cutpoint_cuda/include"
  export CGO_LDFLAGS="${CGO_LDFLAGS:--g -O2} -L$_cutpoint_cuda/lib"
elif [[ -s /usr/include/cuda.h ]]; then
  : # system CUDA headers (nvidia-cuda-dev); cu's cgo flags find them
else
  echo "cuda-env.sh: no cuda.h in $_cutpoint_cuda/include nor /usr/include: run scripts/cuda-headers.sh first" >&2
  unset _cutpoint_root _cutpoint_cuda
  return 1 2>/dev/null || exit 1
fi
unset _cutpoint_root _cutpoint_cuda
