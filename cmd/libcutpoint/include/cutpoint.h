/*
 * cutpoint.h: the C ABI of cutpoint's rank library (libcutpoint).
 *
 * A cutpoint job is N rank processes started by a launcher (`cutpoint run
 * --ranks N -- ./job`, `cutpoint coordinator`, a Slurm script). Each rank
 * joins the job, registers the memory that holds its state ("protects" it),
 * starts, and then loops: exchange messages over cutpoint's channels, compute
 * a step, call cutpoint_safe_point. The coordinator takes consistent cuts at
 * safe points while the job runs; when a rank is lost, it is respawned from
 * the latest committed cut and every other rank rolls back in place: its
 * protected buffers are overwritten with the cut's contents and the call
 * that noticed returns CUTPOINT_ROLLED_BACK, after which the job calls
 * cutpoint_safe_point, which returns the step to go on from.
 *
 * The typical loop (error handling of other codes elided):
 *
 *     cutpoint_rank r;
 *     int64_t step;
 *     if (cutpoint_join(peers, npeers, steps, &r) != CUTPOINT_OK) die();
 *     cutpoint_protect_host(r, "u", u, n * sizeof(double), 8);
 *     if (cutpoint_start(r, &step) != CUTPOINT_OK) die();
 *     for (;;) {
 *         while (step < steps) {
 *             int rc = exchange_and_compute(r, step);   // send/recv
 *             if (rc == CUTPOINT_OK) rc = cutpoint_safe_point(r, step + 1, &step);
 *             if (rc == CUTPOINT_ROLLED_BACK) rc = cutpoint_safe_point(r, step, &step);
 *             if (rc != CUTPOINT_OK) die();
 *         }
 *         int rc = cutpoint_finish(r, digest, 32);       // rank 0's is printed
 *         if (rc == CUTPOINT_ROLLED_BACK) {              // a rank failed late
 *             if (cutpoint_safe_point(r, step, &step) != CUTPOINT_OK) die();
 *             continue;
 *         }
 *         break;
 *     }
 *     cutpoint_close(r);
 *
 * MPI codes (ABI version 2) keep their own MPI communication and use no
 * cutpoint channels: they join with cutpoint_join_mpi and mark the points
 * where a cut may be taken with cutpoint_checkpoint_here, after a barrier;
 * see "MPI mode" below.
 *
 * Conventions
 *   - Every function returns a cutpoint_status (0 is CUTPOINT_OK) and writes
 *     its results through pointer arguments, which are untouched on error.
 *   - After an error, cutpoint_last_error() is a message for people naming
 *     what went wrong; the codes are for programs.
 *   - Handles are plain integers (never 0); no pointer of the library's
 *     crosses this interface, and the library keeps no pointer of yours
 *     except the protected buffers, which must stay valid (and not move)
 *     until cutpoint_close.
 *   - Ranks and steps are the same as in the Go API (package rank): ranks
 *     0..world-1, steps counted from 0 (the state before the first step).
 *
 * Thread safety
 *   - cutpoint_send and cutpoint_recv may be called from several threads at
 *     once on one handle, with at most one thread receiving from a given
 *     peer at a time (messages on one channel arrive in order).
 *   - cutpoint_safe_point, cutpoint_start and cutpoint_finish are called by
 *     one thread (the job's main loop), never concurrently with each other.
 *     A rollback restores the protected buffers inside cutpoint_start or
 *     cutpoint_safe_point, on the calling thread: no other thread may touch
 *     the protected buffers while those calls run.
 *   - cutpoint_protect_* are called before cutpoint_start, from one thread.
 *   - cutpoint_close must not run concurrently with any other call on the
 *     same handle; after it, the handle is invalid.
 *   - cutpoint_last_error() is per thread: it describes the last failing
 *     call made by the calling thread.
 *   - Several handles may exist in one process (tests do that); each is an
 *     independent rank.
 *
 * Signals and fork: the library is Go code (a c-shared or c-archive build)
 * and runs threads of its own. The Go runtime handles synchronous signals
 * (SIGSEGV, SIGBUS, SIGFPE) itself; signal handlers the program installs
 * must use SA_ONSTACK. Do not fork() without exec() after cutpoint_join.
 *
 * This header is hand-written and stable: new functions may be added, the
 * existing ones keep their signatures and codes (CUTPOINT_ABI_VERSION grows
 * when something is added). It compiles as C99 and as C++.
 */
#ifndef CUTPOINT_H
#define CUTPOINT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this interface; cutpoint_abi_version() returns the
 * library's, which is >= the header's for a compatible library. */
#define CUTPOINT_ABI_VERSION 2

/* A rank handle: an integer, never 0. */
typedef int64_t cutpoint_rank;

/* Status codes. The first three mirror the Go sentinels rank.ErrRolledBack,
 * rank.ErrStopped and rank.ErrFenced. */
typedef enum cutpoint_status {
    CUTPOINT_OK = 0,
    /* The job was rolled back to a committed cut while the call was
     * blocked or before it. Return to the loop and call
     * cutpoint_safe_point, which restores the state and returns the cut's
     * step. (rank.ErrRolledBack) */
    CUTPOINT_ROLLED_BACK = 1,
    /* The coordinator stopped the job (it finished elsewhere, was
     * preempted after a final cut, or failed). Exit the process with
     * cutpoint_exit_code(). (rank.ErrStopped) */
    CUTPOINT_STOPPED = 2,
    /* This process was replaced by a newer one. Exit at once.
     * (rank.ErrFenced) */
    CUTPOINT_FENCED = 3,
    /* send, recv, safe_point or finish before cutpoint_start.
     * (rank.ErrNotStarted) */
    CUTPOINT_NOT_STARTED = 4,
    /* cutpoint_protect_* after cutpoint_start. (rank.ErrProtectAfterStart) */
    CUTPOINT_PROTECT_AFTER_START = 5,
    /* The rank was closed. (rank.ErrClosed) */
    CUTPOINT_CLOSED = 6,
    /* A bad argument: unknown handle, NULL pointer, rank out of range or
     * not a declared peer, a message above the transport's maximum,
     * element size not 1, 2, 4 or 8, an empty or duplicate name. */
    CUTPOINT_INVALID = 7,
    /* cutpoint_recv: the message is larger than the buffer. *len holds its
     * size; the message is kept and the next cutpoint_recv from the same
     * peer returns it. */
    CUTPOINT_TOO_SMALL = 8,
    /* CUDA device buffers need the cuda build of the library. */
    CUTPOINT_NO_CUDA = 9,
    /* Anything else: the launcher's environment is incomplete, the store
     * or NATS cannot be reached, the connection is gone. */
    CUTPOINT_ERROR = 10
} cutpoint_status;

/* The library's CUTPOINT_ABI_VERSION. */
int cutpoint_abi_version(void);

/* A constant description of a status code ("rolled back", ...). */
const char *cutpoint_status_string(int status);

/* The message of the last failing call on the calling thread ("" when
 * none). The pointer stays valid until the thread's next failing call. */
const char *cutpoint_last_error(void);

/* Join the job as the rank the launcher's environment names
 * (CUTPOINT_RANK, CUTPOINT_WORLD, CUTPOINT_NATS, CUTPOINT_STORE, ...; see
 * docs/operations.md). peers lists the ranks this one exchanges messages
 * with, in both directions (npeers entries; NULL and 0: every other rank).
 * total_steps is the job's last step if known (0: unknown); no cut is taken
 * past it. On success *out is the new handle. */
int cutpoint_join(const int32_t *peers, size_t npeers, int64_t total_steps, cutpoint_rank *out);

/* This rank's number and the number of ranks. */
int cutpoint_identity(cutpoint_rank r, int32_t *rank, int32_t *world);

/* Protect size bytes of host memory at ptr, made of elem_size-byte
 * elements (1, 2, 4 or 8; the store's byte-shuffle filter groups the bytes
 * of each element), under name (1 to 255 bytes, unique in the rank). The
 * memory is captured at every cut and overwritten on a rollback. Before
 * cutpoint_start only. */
int cutpoint_protect_host(cutpoint_rank r, const char *name, void *ptr, size_t size, int elem_size);

/* Protect state that lives in one of count buffers chosen by step, e.g. a
 * double buffer (count 2): after step s the state is in ptrs[s % count].
 * Each buffer has size bytes. The array ptrs is copied. */
int cutpoint_protect_host_ring(cutpoint_rank r, const char *name, void *const *ptrs, size_t count,
                               size_t size, int elem_size);

/* Protect size bytes of CUDA device memory at ptr (a CUdeviceptr) on the
 * GPU current on the calling thread, allocated in that GPU's primary
 * context (the CUDA runtime's; driver API programs use
 * cuDevicePrimaryCtxRetain). Captured and restored on the library's own
 * streams at safe points; the job's kernels writing the buffer must be
 * complete (synchronized) before cutpoint_safe_point. The default build
 * returns CUTPOINT_NO_CUDA; the cuda build (make lib-cuda) supports it. */
int cutpoint_protect_cuda(cutpoint_rank r, const char *name, uint64_t ptr, size_t size, int elem_size);

/* Start the job's protocol: restore the protected state when the launcher
 * asks (a respawned rank), open the channels, wait until the coordinator
 * lets the job run. *step is 0 for a fresh start, the cut's step after a
 * restore. */
int cutpoint_start(cutpoint_rank r, int64_t *step);

/* Send len bytes to rank to. Blocks while the channel's credit window is
 * full. buf may be reused when the call returns. */
int cutpoint_send(cutpoint_rank r, int32_t to, const void *buf, size_t len);

/* Receive the next message from rank from into buf (cap bytes), waiting
 * for one; *len is its size. CUTPOINT_TOO_SMALL: see above. */
int cutpoint_recv(cutpoint_rank r, int32_t from, void *buf, size_t cap, size_t *len);

/* Call after finishing step (steps increase; the state is consistent: no
 * request in flight, buffers written). A cut scheduled at step captures
 * the protected buffers here (the shard is written in the background). If
 * a rollback was ordered, the buffers are restored in place. *resume is the
 * step to go on from: step, or the cut's step after a rollback. */
int cutpoint_safe_point(cutpoint_rank r, int64_t step, int64_t *resume);

/* The job's code is done: result (len bytes, e.g. a digest; rank 0's is
 * printed by the launcher as "result <hex>"; NULL for none) goes to the
 * coordinator, and the call waits until every rank is done.
 * CUTPOINT_OK: the job ended. CUTPOINT_ROLLED_BACK: a failure elsewhere
 * rolled the job back; call cutpoint_safe_point and go on. */
int cutpoint_finish(cutpoint_rank r, const void *result, size_t len);

/* The exit code the coordinator asked for with CUTPOINT_STOPPED or
 * CUTPOINT_FENCED (0 before either). */
int cutpoint_exit_code(cutpoint_rank r);

/* Counters of the rank: cuts captured and rollbacks applied so far. */
int cutpoint_stats(cutpoint_rank r, int64_t *captures, int64_t *rollbacks);

/* A convenience for jobs that report a digest (Fortran has no SHA-256):
 * out receives the 32-byte SHA-256 of the n bytes at data. Needs no
 * handle; safe from any thread. */
int cutpoint_sha256(const void *data, size_t n, uint8_t out[32]);

/* ---- MPI mode (ABI version 2) -------------------------------------------
 *
 * For codes that communicate over MPI themselves, launched as
 * `cutpoint run [flags] -- mpirun -np N ./app`. The rank and the world
 * size come from the MPI launcher's environment (OMPI_COMM_WORLD_RANK and
 * _SIZE, PMI_RANK and PMI_SIZE, PMIX_RANK), equal to MPI_Comm_rank and
 * MPI_Comm_size of MPI_COMM_WORLD; the rest (NATS, job, store, restore
 * point) comes from cutpoint run through mpirun's environment.
 *
 * A handle joined this way has no channels to other ranks (cutpoint_send
 * and cutpoint_recv to or from one return CUTPOINT_INVALID). Cuts are taken only at
 * cutpoint_checkpoint_here, whose contract is:
 *   - every rank calls it at every step, with the same step number (steps
 *     increase by one from the step cutpoint_start returned);
 *   - no MPI message is in flight: every message sent before the call, on
 *     any rank, has been received before the call on its receiver, and no
 *     nonblocking request is pending. A barrier (MPI_Barrier) after the
 *     step's communication and before the call guarantees it;
 *   - the protected buffers hold the state after step (for a ring, the
 *     buffer step % count).
 * With no message in flight a step-aligned cut needs no markers and no
 * channel state: each rank's protected buffers at that step are the cut.
 *
 * A lost rank ends the MPI world (the MPI launcher aborts the others), and
 * cutpoint run relaunches the whole world from the latest committed cut:
 * every rank then returns the cut's step from cutpoint_start. No rank is
 * ever rolled back in place; should that happen (a coordinator not run in
 * MPI mode), cutpoint_checkpoint_here returns CUTPOINT_ERROR and the
 * process must exit.
 *
 * The order of calls: MPI_Init, cutpoint_join_mpi, cutpoint_protect_*,
 * cutpoint_start, the loop (compute, MPI exchange, MPI_Barrier,
 * cutpoint_checkpoint_here), cutpoint_finish, cutpoint_close,
 * MPI_Finalize. */

/* Join the job as the rank the MPI launcher's environment names, with no
 * cutpoint channels. total_steps as for cutpoint_join. */
int cutpoint_join_mpi(int64_t total_steps, cutpoint_rank *out);

/* A quiescent point after step (see the contract above): a cut scheduled
 * at step captures the protected buffers here, and the call returns at
 * once while the shard is written in the background. CUTPOINT_INVALID
 * for a handle of cutpoint_join. */
int cutpoint_checkpoint_here(cutpoint_rank r, int64_t step);

/* Leave the job: writers are cancelled, channels and connections closed,
 * the handle released. A rank that closes without cutpoint_finish looks
 * failed to the coordinator. */
int cutpoint_close(cutpoint_rank r);

#ifdef __cplusplus
}
#endif

#endif /* CUTPOINT_H */
