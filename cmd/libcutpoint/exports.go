package main

/*
#include <stddef.h>
#include <stdint.h>

void cutpoint__set_error(const char *msg, size_t n);
*/
import "C"

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/cutpoint/cutpoint/internal/jobstats"
	"github.com/cutpoint/cutpoint/kernels"
	"github.com/cutpoint/cutpoint/rank"
	"github.com/cutpoint/cutpoint/rank/participant"
	"github.com/cutpoint/cutpoint/rank/transport"
)

// handle is one rank of the process, named by an integer on the C side.
type handle struct {
	r        *rank.Rank
	exitCode atomic.Int32
	// mpi: joined with cutpoint_join_mpi (no channels; the code's own MPI
	// communication, cuts at cutpoint_checkpoint_here).
	mpi bool
	// rec and statsDir: the stats file asked for by the launcher
	// (stats.go); rec is nil when none is.
	rec      *jobstats.Recorder
	statsDir string

	mu sync.Mutex
	// stash holds a message cutpoint_recv took but could not fit in the
	// caller's buffer, by peer, until the next recv from that peer; it is
	// dropped if a rollback was applied since (rollbacks counts them).
	stash map[int]stashed
}

type stashed struct {
	msg       []byte
	rollbacks int
}

var (
	handles    sync.Map // int64 -> *handle
	nextHandle atomic.Int64
)

// errInvalid marks bad arguments (CUTPOINT_INVALID).
var errInvalid = errors.New("invalid argument")

// errTooSmall is CUTPOINT_TOO_SMALL's error.
var errTooSmall = errors.New("buffer too small for the message")

// errNoCUDA is CUTPOINT_NO_CUDA's error.
var errNoCUDA = errors.New("libcutpoint: CUDA device buffers are not supported by this build")

// setError stores err's message for cutpoint_last_error on the calling
// thread (a call from C runs its Go code on the caller's thread).
func setError(err error) {
	s := err.Error()
	if s == "" {
		s = "error"
	}
	C.cutpoint__set_error((*C.char)(unsafe.Pointer(unsafe.StringData(s))), C.size_t(len(s)))
}

// code maps an error onto a status code and records its message.
func (h *handle) code(err error) C.int {
	if err == nil {
		return stOK
	}
	setError(err)
	var ee *rank.ExitError
	if h != nil && errors.As(err, &ee) {
		h.exitCode.Store(int32(ee.Code))
	}
	switch {
	case errors.Is(err, rank.ErrRolledBack):
		return stRolledBack
	case errors.Is(err, rank.ErrFenced):
		return stFenced
	case errors.Is(err, rank.ErrStopped):
		return stStopped
	case errors.Is(err, rank.ErrNotStarted):
		return stNotStarted
	case errors.Is(err, rank.ErrProtectAfterStart):
		return stProtectAfterStart
	case errors.Is(err, rank.ErrClosed):
		return stClosed
	case errors.Is(err, errInvalid), errors.Is(err, participant.ErrNotPeer), errors.Is(err, participant.ErrTooLarge),
		errors.Is(err, transport.ErrUnknownPeer), errors.Is(err, transport.ErrTooLarge):
		return stInvalid
	case errors.Is(err, errNoCUDA):
		return stNoCUDA
	case errors.Is(err, errTooSmall):
		return stTooSmall
	}
	return stError
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("libcutpoint: %s: %w", fmt.Sprintf(format, args...), errInvalid)
}

// lookup returns the handle's rank; on failure the status to return.
func lookup(h C.int64_t) (*handle, C.int) {
	v, ok := handles.Load(int64(h))
	if !ok {
		return nil, (*handle)(nil).code(invalid("unknown rank handle %d", int64(h)))
	}
	return v.(*handle), stOK
}

// register adds r to the table and returns its handle.
func register(r *rank.Rank, mpi bool) (int64, *handle) {
	id := nextHandle.Add(1)
	rec, dir := newRecorder(r)
	h := &handle{r: r, mpi: mpi, rec: rec, statsDir: dir, stash: map[int]stashed{}}
	handles.Store(id, h)
	return id, h
}

// errMPIRollback is cutpoint_checkpoint_here's error when the coordinator
// rolled the rank back in place, which an MPI world cannot follow (its
// other processes and their messages are not rolled back with it).
var errMPIRollback = errors.New("libcutpoint: MPI mode: the rank was rolled back in place, which an MPI world cannot follow; exit so the launcher relaunches the whole world (is the coordinator run with --mpi?)")

//export cutpoint_join_mpi
func cutpoint_join_mpi(totalSteps C.int64_t, out *C.int64_t) C.int {
	if out == nil {
		return (*handle)(nil).code(invalid("cutpoint_join_mpi: NULL out"))
	}
	// No peers: the code exchanges its messages over MPI, none over
	// cutpoint's channels, so a cut needs no markers and no channel state;
	// the code's barrier before each checkpoint makes the cut consistent.
	return join("cutpoint_join_mpi", []int{}, totalSteps, out, true)
}

// join joins the rank the launcher's environment names, with peers (nil:
// the library's default) and totalSteps, and stores its handle in out.
func join(fn string, peers []int, totalSteps C.int64_t, out *C.int64_t, mpi bool) C.int {
	var h *handle
	if totalSteps < 0 {
		return h.code(invalid("%s: total_steps %d < 0", fn, int64(totalSteps)))
	}
	o, err := rank.OptionsFromEnv()
	if err != nil {
		return h.code(fmt.Errorf("libcutpoint: the launcher's environment: %w", err))
	}
	if peers != nil {
		o.Peers = peers
	}
	o.TotalSteps = int64(totalSteps)
	// A failed restore alarms the coordinator, which kills this process
	// at once: the stats file (damaged copies, bytes read) goes first, as
	// the Go rank command's does.
	var hd atomic.Pointer[handle]
	o.BeforeAlarm = func(err error) {
		if p := hd.Load(); p != nil {
			p.writeStats(err)
		}
	}
	r, err := rank.Join(context.Background(), o)
	if err != nil {
		return h.code(err)
	}
	id, nh := register(r, mpi)
	hd.Store(nh)
	*out = C.int64_t(id)
	return stOK
}

//export cutpoint_checkpoint_here
func cutpoint_checkpoint_here(h C.int64_t, step C.int64_t) C.int {
	hd, st := lookup(h)
	if st != stOK {
		return st
	}
	if !hd.mpi {
		return hd.code(invalid("cutpoint_checkpoint_here: the rank joined with cutpoint_join (channels): call cutpoint_safe_point"))
	}
	before := hd.r.Stats().Rollbacks
	s, err := hd.safePoint(int64(step))
	if errors.Is(err, rank.ErrRolledBack) || (err == nil && (s != int64(step) || hd.r.Stats().Rollbacks != before)) {
		return hd.code(errMPIRollback)
	}
	return hd.code(err)
}

//export cutpoint_join
func cutpoint_join(peers *C.int32_t, npeers C.size_t, totalSteps C.int64_t, out *C.int64_t) C.int {
	if out == nil || (peers == nil && npeers > 0) {
		return (*handle)(nil).code(invalid("cutpoint_join: NULL out or peers"))
	}
	var ps []int
	if npeers > 0 {
		ps = make([]int, int(npeers))
		for i, p := range unsafe.Slice((*int32)(unsafe.Pointer(peers)), int(npeers)) {
			ps[i] = int(p)
		}
	}
	return join("cutpoint_join", ps, totalSteps, out, false)
}

//export cutpoint_identity
func cutpoint_identity(h C.int64_t, rk, world *C.int32_t) C.int {
	hd, st := lookup(h)
	if st != stOK {
		return st
	}
	if rk != nil {
		*rk = C.int32_t(hd.r.ID())
	}
	if world != nil {
		*world = C.int32_t(hd.r.World())
	}
	return stOK
}

// hostBuffer wraps C memory (not copied) as a host buffer.
func hostBuffer(ptr unsafe.Pointer, size C.size_t, elemSize C.int) (*kernels.HostBuffer, error) {
	if ptr == nil && size > 0 {
		return nil, invalid("NULL buffer of %d bytes", uint64(size))
	}
	if !kernels.ValidElemSize(int(elemSize)) {
		return nil, invalid("element size %d (want 1, 2, 4 or 8)", int(elemSize))
	}
	if uint64(size)%uint64(elemSize) != 0 {
		return nil, invalid("%d bytes are not whole %d-byte elements", uint64(size), int(elemSize))
	}
	var b []byte
	if size > 0 {
		b = unsafe.Slice((*byte)(ptr), int(size))
	}
	return kernels.HostBytes(b, int(elemSize))
}

func goName(name *C.char) (string, error) {
	if name == nil {
		return "", invalid("NULL buffer name")
	}
	s := C.GoString(name)
	if s == "" || len(s) > 255 {
		return "", invalid("buffer name %q must have 1 to 255 bytes", s)
	}
	return s, nil
}

//export cutpoint_protect_host
func cutpoint_protect_host(h C.int64_t, name *C.char, ptr unsafe.Pointer, size C.size_t, elemSize C.int) C.int {
	hd, st := lookup(h)
	if st != stOK {
		return st
	}
	n, err := goName(name)
	if err != nil {
		return hd.code(err)
	}
	b, err := hostBuffer(ptr, size, elemSize)
	if err != nil {
		return hd.code(fmt.Errorf("protect %q: %w", n, err))
	}
	return hd.code(hd.r.Protect(n, b))
}

//export cutpoint_protect_host_ring
func cutpoint_protect_host_ring(h C.int64_t, name *C.char, ptrs *unsafe.Pointer, count C.size_t, size C.size_t, elemSize C.int) C.int {
	hd, st := lookup(h)
	if st != stOK {
		return st
	}
	n, err := goName(name)
	if err != nil {
		return hd.code(err)
	}
	if ptrs == nil || count == 0 || count > 1<<20 {
		return hd.code(invalid("protect %q: %d buffers at %p", n, uint64(count), ptrs))
	}
	bufs := make([]*kernels.HostBuffer, int(count))
	for i, p := range unsafe.Slice(ptrs, int(count)) {
		if bufs[i], err = hostBuffer(p, size, elemSize); err != nil {
			return hd.code(fmt.Errorf("protect %q buffer %d: %w", n, i, err))
		}
	}
	k := int64(count)
	return hd.code(hd.r.ProtectFunc(n, int(elemSize), func(step int64) kernels.Buffer { return bufs[step%k] }))
}

//export cutpoint_protect_cuda
func cutpoint_protect_cuda(h C.int64_t, name *C.char, ptr C.uint64_t, size C.size_t, elemSize C.int) C.int {
	hd, st := lookup(h)
	if st != stOK {
		return st
	}
	n, err := goName(name)
	if err != nil {
		return hd.code(err)
	}
	if !kernels.ValidElemSize(int(elemSize)) {
		return hd.code(invalid("protect %q: element size %d (want 1, 2, 4 or 8)", n, int(elemSize)))
	}
	return hd.code(protectCUDA(hd.r, n, uint64(ptr), uint64(size), int(elemSize)))
}

//export cutpoint_start
func cutpoint_start(h C.int64_t, step *C.int64_t) C.int {
	hd, st := lookup(h)
	if st != stOK {
		return st
	}
	if step == nil {
		return hd.code(invalid("cutpoint_start: NULL step"))
	}
	s, err := hd.start()
	if err != nil {
		return hd.code(err)
	}
	*step = C.int64_t(s)
	return stOK
}

//export cutpoint_send
func cutpoint_send(h C.int64_t, to C.int32_t, buf unsafe.Pointer, n C.size_t) C.int {
	hd, st := lookup(h)
	if st != stOK {
		return st
	}
	if buf == nil && n > 0 {
		return hd.code(invalid("cutpoint_send: NULL buffer of %d bytes", uint64(n)))
	}
	if to < 0 || int(to) >= hd.r.World() {
		return hd.code(invalid("cutpoint_send: rank %d out of 0..%d", int32(to), hd.r.World()-1))
	}
	var msg []byte
	if n > 0 {
		msg = unsafe.Slice((*byte)(buf), int(n))
	}
	// Send copies msg before it returns.
	return hd.code(hd.r.Send(context.Background(), int(to), msg))
}

//export cutpoint_recv
func cutpoint_recv(h C.int64_t, from C.int32_t, buf unsafe.Pointer, capacity C.size_t, n *C.size_t) C.int {
	hd, st := lookup(h)
	if st != stOK {
		return st
	}
	if n == nil || (buf == nil && capacity > 0) {
		return hd.code(invalid("cutpoint_recv: NULL buffer or length"))
	}
	if from < 0 || int(from) >= hd.r.World() {
		return hd.code(invalid("cutpoint_recv: rank %d out of 0..%d", int32(from), hd.r.World()-1))
	}
	msg, ok := hd.takeStash(int(from))
	if !ok {
		var err error
		if msg, err = hd.r.Recv(context.Background(), int(from)); err != nil {
			return hd.code(err)
		}
	}
	*n = C.size_t(len(msg))
	if uint64(len(msg)) > uint64(capacity) {
		hd.putStash(int(from), msg)
		return hd.code(fmt.Errorf("libcutpoint: cutpoint_recv from %d: message of %d bytes, buffer of %d (kept for the next recv): %w", int32(from), len(msg), uint64(capacity), errTooSmall))
	}
	if len(msg) > 0 {
		copy(unsafe.Slice((*byte)(buf), len(msg)), msg)
	}
	return stOK
}

func (h *handle) takeStash(from int) ([]byte, bool) {
	h.mu.Lock()
	s, ok := h.stash[from]
	delete(h.stash, from)
	h.mu.Unlock()
	if !ok || s.rollbacks != h.r.Stats().Rollbacks {
		return nil, false
	}
	return s.msg, true
}

func (h *handle) putStash(from int, msg []byte) {
	rb := h.r.Stats().Rollbacks
	h.mu.Lock()
	h.stash[from] = stashed{msg: msg, rollbacks: rb}
	h.mu.Unlock()
}

//export cutpoint_safe_point
func cutpoint_safe_point(h C.int64_t, step C.int64_t, resume *C.int64_t) C.int {
	hd, st := lookup(h)
	if st != stOK {
		return st
	}
	if resume == nil {
		return hd.code(invalid("cutpoint_safe_point: NULL resume"))
	}
	s, err := hd.safePoint(int64(step))
	if err != nil {
		return hd.code(err)
	}
	*resume = C.int64_t(s)
	return stOK
}

//export cutpoint_finish
func cutpoint_finish(h C.int64_t, result unsafe.Pointer, n C.size_t) C.int {
	hd, st := lookup(h)
	if st != stOK {
		return st
	}
	if result == nil && n > 0 {
		return hd.code(invalid("cutpoint_finish: NULL result of %d bytes", uint64(n)))
	}
	var res []byte
	if result != nil {
		// Copied: the coordinator's message is built from it, and the
		// caller may free it once the call returns.
		res = append([]byte{}, unsafe.Slice((*byte)(result), int(n))...)
	}
	return hd.code(hd.r.Finish(context.Background(), res))
}

//export cutpoint_exit_code
func cutpoint_exit_code(h C.int64_t) C.int {
	hd, st := lookup(h)
	if st != stOK {
		return 0
	}
	return C.int(hd.exitCode.Load())
}

//export cutpoint_stats
func cutpoint_stats(h C.int64_t, captures, rollbacks *C.int64_t) C.int {
	hd, st := lookup(h)
	if st != stOK {
		return st
	}
	s := hd.r.Stats()
	if captures != nil {
		*captures = C.int64_t(s.Captures)
	}
	if rollbacks != nil {
		*rollbacks = C.int64_t(s.Rollbacks)
	}
	return stOK
}

//export cutpoint_close
func cutpoint_close(h C.int64_t) C.int {
	v, ok := handles.LoadAndDelete(int64(h))
	if !ok {
		return (*handle)(nil).code(invalid("unknown rank handle %d", int64(h)))
	}
	hd := v.(*handle)
	hd.writeStats(nil)
	return hd.code(hd.r.Close())
}

//export cutpoint_sha256
func cutpoint_sha256(data unsafe.Pointer, n C.size_t, out *C.uint8_t) C.int {
	if out == nil || (data == nil && n > 0) {
		return (*handle)(nil).code(invalid("cutpoint_sha256: NULL data or out"))
	}
	var b []byte
	if n > 0 {
		b = unsafe.Slice((*byte)(data), int(n))
	}
	sum := sha256.Sum256(b)
	copy(unsafe.Slice((*byte)(unsafe.Pointer(out)), len(sum)), sum[:])
	return stOK
}
