// The parts of the C ABI written in C: the per-thread error message, status
// strings and the ABI version. cgo compiles this file into the library;
// exports.go declares cutpoint__set_error.
#include <string.h>

#include "include/cutpoint.h"

// One message per thread: calls from C into Go run on the calling thread,
// so the Go side stores the message of a failing call on the thread that
// made it.
static __thread char last_error[1024];

void cutpoint__set_error(const char *msg, size_t n) {
    if (n >= sizeof last_error) {
        n = sizeof last_error - 1;
    }
    memcpy(last_error, msg, n);
    last_error[n] = 0;
}

const char *cutpoint_last_error(void) { return last_error; }

int cutpoint_abi_version(void) { return CUTPOINT_ABI_VERSION; }

const char *cutpoint_status_string(int status) {
    switch (status) {
    case CUTPOINT_OK: return "ok";
    case CUTPOINT_ROLLED_BACK: return "rolled back to a committed cut; call cutpoint_safe_point";
    case CUTPOINT_STOPPED: return "job stopped by the coordinator";
    case CUTPOINT_FENCED: return "process fenced (replaced by a newer one)";
    case CUTPOINT_NOT_STARTED: return "cutpoint_start has not been called";
    case CUTPOINT_PROTECT_AFTER_START: return "protect after cutpoint_start";
    case CUTPOINT_CLOSED: return "rank closed";
    case CUTPOINT_INVALID: return "invalid argument";
    case CUTPOINT_TOO_SMALL: return "buffer too small for the message";
    case CUTPOINT_NO_CUDA: return "CUDA device buffers are not supported by this build of libcutpoint";
    case CUTPOINT_ERROR: return "error";
    }
    return "unknown status";
}
