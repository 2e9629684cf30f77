package main

// The status codes, read from the hand-written header so that the Go side
// and cutpoint.h cannot disagree. (This file has no //export, so its
// preamble may include the header; exports.go may not: cgo copies an
// exporting file's preamble next to declarations of its own, without const,
// which would conflict with the header's.)

/*
#include "include/cutpoint.h"
*/
import "C"

const (
	stOK                = C.CUTPOINT_OK
	stRolledBack        = C.CUTPOINT_ROLLED_BACK
	stStopped           = C.CUTPOINT_STOPPED
	stFenced            = C.CUTPOINT_FENCED
	stNotStarted        = C.CUTPOINT_NOT_STARTED
	stProtectAfterStart = C.CUTPOINT_PROTECT_AFTER_START
	stClosed            = C.CUTPOINT_CLOSED
	stInvalid           = C.CUTPOINT_INVALID
	stTooSmall          = C.CUTPOINT_TOO_SMALL
	stNoCUDA            = C.CUTPOINT_NO_CUDA
	stError             = C.CUTPOINT_ERROR
	abiVersion          = C.CUTPOINT_ABI_VERSION
)
