package main

// Go entry points to bench.c's loops, for bench_test.go (test files cannot
// use cgo).

/*
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>

const char *cutpoint_last_error(void);

int cutpoint__bench_safe_points(int64_t r, int64_t first, int64_t n);
int cutpoint__bench_send_recv(int64_t r, int32_t peer, void *buf, size_t len, int64_t n);
*/
import "C"

import "unsafe"

func benchSafePoints(h, first, n int64) int {
	return int(C.cutpoint__bench_safe_points(C.int64_t(h), C.int64_t(first), C.int64_t(n)))
}

// benchSendRecv sends len bytes to peer and receives them back, n times;
// buf is C memory (the caller's cgo rules: no Go pointer is kept).
func benchSendRecv(h int64, peer int, size int, n int64) int {
	buf := C.malloc(C.size_t(size))
	defer C.free(buf)
	return int(C.cutpoint__bench_send_recv(C.int64_t(h), C.int32_t(peer), unsafe.Pointer(buf), C.size_t(size), C.int64_t(n)))
}

// lastError is cutpoint_last_error for tests.
func lastError() string { return C.GoString(C.cutpoint_last_error()) }
