// Loops in C over the C ABI, for the Go benchmarks (bench_test.go) that
// compare a call through libcutpoint with the same call in Go: each
// iteration crosses from C into Go as a C program's call does. Internal
// (not in cutpoint.h): the names start with cutpoint__.
#include "include/cutpoint.h"

int cutpoint__bench_safe_points(int64_t r, int64_t first, int64_t n) {
    int64_t i, s;
    for (i = 0; i < n; i++) {
        int rc = cutpoint_safe_point(r, first + i, &s);
        if (rc != CUTPOINT_OK) return rc;
    }
    return CUTPOINT_OK;
}

int cutpoint__bench_send_recv(int64_t r, int32_t peer, void *buf, size_t len, int64_t n) {
    int64_t i;
    size_t got;
    for (i = 0; i < n; i++) {
        int rc = cutpoint_send(r, peer, buf, len);
        if (rc == CUTPOINT_OK) rc = cutpoint_recv(r, peer, buf, len, &got);
        if (rc != CUTPOINT_OK) return rc;
    }
    return CUTPOINT_OK;
}
