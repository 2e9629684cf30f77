/*
 * heat2d_mpi.c: cutpoint's built-in heat2d workload as an MPI code that
 * keeps its own communication (MPI_Sendrecv halo exchange, MPI_Gather of
 * the result) and uses cutpoint only for its cuts, in MPI mode:
 *
 *     mpicc -std=c99 -O2 -ffp-contract=off -I../../cmd/libcutpoint/include \
 *         -I../c -o heat2d_mpi heat2d_mpi.c ../c/sha256.c -lcutpoint -lm
 *     cutpoint run --every-steps 100 -- mpirun -np 4 ./heat2d_mpi 96 6000
 *     cutpoint run --ranks 4 --size 96 --steps 6000      # same "result ..."
 *
 * Every step: exchange halos with the four neighbours, compute, then
 * MPI_Barrier and cutpoint_checkpoint_here(step): after the barrier no
 * message is in flight (each step's messages are received within the
 * step), so a cut at that step is each rank's grid alone. A lost rank ends
 * the MPI world; cutpoint run relaunches the whole world from the latest
 * committed cut and cutpoint_start returns its step. The digest is that of
 * the Go heat2d (SHA-256 of the global interior, row-major, float64
 * little-endian), for the same numerics (heat2d_field.h).
 *
 * Usage: heat2d_mpi SIZE STEPS [ALPHA [PACE_US]]  (ALPHA default 0.2)
 *
 * PACE_US sleeps that many microseconds after each step, so that a short
 * run lasts long enough to be watched or to have a process killed after a
 * cut (the tests do); the result is the same.
 */
#define _POSIX_C_SOURCE 199309L
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cutpoint.h"
#include "heat2d_field.h"
#include "sha256.h"

static cutpoint_rank R;

/* fail exits the way the launcher expects: the coordinator's code when it
 * stopped or fenced the rank, 1 otherwise (the MPI launcher then ends the
 * world, and cutpoint run relaunches it). */
static void fail(int rc, const char *what) {
    fprintf(stderr, "heat2d_mpi: %s: %s (%s)\n", what, cutpoint_last_error(), cutpoint_status_string(rc));
    if (rc == CUTPOINT_STOPPED || rc == CUTPOINT_FENCED) exit(cutpoint_exit_code(R));
    exit(1);
}

static int nb(int r) { return r < 0 ? MPI_PROC_NULL : r; }

/* exchange fills cur's ghost border with the neighbours' edges. Each
 * Sendrecv completes both directions of one axis and sense, so every
 * message of the step is received within the step. */
static void exchange(const layout *l, double *cur, double *col_out, double *col_in) {
    int j, w = l->nx + 2;
    MPI_Comm c = MPI_COMM_WORLD;
    /* north edge up, south ghost from below; south edge down, north ghost from above */
    MPI_Sendrecv(cur + w + 1, l->nx, MPI_DOUBLE, nb(l->n), 0, cur + (size_t)(l->ny + 1) * w + 1, l->nx, MPI_DOUBLE,
                 nb(l->s), 0, c, MPI_STATUS_IGNORE);
    MPI_Sendrecv(cur + (size_t)l->ny * w + 1, l->nx, MPI_DOUBLE, nb(l->s), 1, cur + 1, l->nx, MPI_DOUBLE, nb(l->n), 1, c,
                 MPI_STATUS_IGNORE);
    /* west column left, east ghost from the right; and back */
    for (j = 1; j <= l->ny; j++) col_out[j - 1] = cur[(size_t)j * w + 1];
    MPI_Sendrecv(col_out, l->ny, MPI_DOUBLE, nb(l->w), 2, col_in, l->ny, MPI_DOUBLE, nb(l->e), 2, c, MPI_STATUS_IGNORE);
    if (l->e >= 0) {
        for (j = 1; j <= l->ny; j++) cur[(size_t)j * w + l->nx + 1] = col_in[j - 1];
    }
    for (j = 1; j <= l->ny; j++) col_out[j - 1] = cur[(size_t)j * w + l->nx];
    MPI_Sendrecv(col_out, l->ny, MPI_DOUBLE, nb(l->e), 3, col_in, l->ny, MPI_DOUBLE, nb(l->w), 3, c, MPI_STATUS_IGNORE);
    if (l->w >= 0) {
        for (j = 1; j <= l->ny; j++) cur[(size_t)j * w] = col_in[j - 1];
    }
}

/* digest: rank 0 gathers every tile's interior and hashes the global rows
 * in order. */
static void digest(const layout *l, const double *cur, uint8_t out[32]) {
    size_t tile = (size_t)l->nx * (size_t)l->ny, row = (size_t)l->nx;
    double *mine = malloc(tile * sizeof(double)), *all = NULL;
    int j, cx, cy;
    if (!mine) abort();
    for (j = 0; j < l->ny; j++) memcpy(mine + (size_t)j * row, cur + IDX(l, 1, j + 1), row * sizeof(double));
    if (l->rank == 0 && !(all = malloc(tile * (size_t)l->world * sizeof(double)))) abort();
    MPI_Gather(mine, (int)tile, MPI_DOUBLE, all, (int)tile, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    if (l->rank == 0) {
        sha256_ctx h;
        sha256_init(&h);
        for (cy = 0; cy < l->py; cy++) {
            for (j = 0; j < l->ny; j++) {
                for (cx = 0; cx < l->px; cx++) {
                    const double *t = all + (size_t)rank_at(l, cx, cy) * tile;
                    sha256_update(&h, (const uint8_t *)(t + (size_t)j * row), row * sizeof(double));
                }
            }
        }
        sha256_final(&h, out);
    }
    free(mine);
    free(all);
}

int main(int argc, char **argv) {
    int size, rc, mpi_rank, mpi_world;
    long pace_us = 0;
    int64_t steps, step;
    double alpha = 0.2;
    int32_t me, world;
    layout l;
    double *bufs[2], *col_out, *col_in;
    size_t elems;
    uint8_t sum[32];

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &mpi_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &mpi_world);
    if (argc < 3 || argc > 5) {
        if (mpi_rank == 0) fprintf(stderr, "usage: %s SIZE STEPS [ALPHA [PACE_US]]\n", argv[0]);
        MPI_Finalize();
        return 2;
    }
    size = atoi(argv[1]);
    steps = atoll(argv[2]);
    if (argc >= 4) alpha = atof(argv[3]);
    if (argc == 5) pace_us = atol(argv[4]);
    if (size < 1 || size > 1 << 15 || steps < 0 || !(alpha > 0 && alpha <= 0.25) || pace_us < 0 || pace_us > 1000000) {
        if (mpi_rank == 0) {
            fprintf(stderr, "heat2d_mpi: want 1 <= SIZE <= 32768, STEPS >= 0, 0 < ALPHA <= 0.25, 0 <= PACE_US <= 1000000\n");
        }
        MPI_Finalize();
        return 2;
    }
    if ((rc = cutpoint_join_mpi(steps, &R)) != CUTPOINT_OK) fail(rc, "join");
    if ((rc = cutpoint_identity(R, &me, &world)) != CUTPOINT_OK) fail(rc, "identity");
    if (me != mpi_rank || world != mpi_world) {
        fprintf(stderr, "heat2d_mpi: cutpoint names rank %d of %d, MPI rank %d of %d\n", me, world, mpi_rank, mpi_world);
        exit(1);
    }
    l = new_layout(me, world, size);
    elems = (size_t)(l.nx + 2) * (size_t)(l.ny + 2);
    bufs[0] = malloc(elems * sizeof(double));
    bufs[1] = malloc(elems * sizeof(double));
    col_out = malloc(sizeof(double) * (size_t)l.ny);
    col_in = malloc(sizeof(double) * (size_t)l.ny);
    if (!bufs[0] || !bufs[1] || !col_out || !col_in) abort();
    heat_init(bufs[0], &l);
    memcpy(bufs[1], bufs[0], elems * sizeof(double));
    /* The state after step s is in bufs[s % 2]. */
    if ((rc = cutpoint_protect_host_ring(R, "u", (void *const *)bufs, 2, elems * sizeof(double), 8)) != CUTPOINT_OK) {
        fail(rc, "protect");
    }
    /* A relaunched world restores the cut here: every rank the same step. */
    if ((rc = cutpoint_start(R, &step)) != CUTPOINT_OK) fail(rc, "start");
    while (step < steps) {
        double *cur = bufs[step % 2], *next = bufs[(step + 1) % 2];
        exchange(&l, cur, col_out, col_in);
        heat_step(next, cur, &l, alpha);
        step++;
        if (pace_us > 0) {
            struct timespec ts = {pace_us / 1000000, (pace_us % 1000000) * 1000};
            nanosleep(&ts, NULL);
        }
        /* Quiescent: no message of this step is in flight past here. */
        MPI_Barrier(MPI_COMM_WORLD);
        if ((rc = cutpoint_checkpoint_here(R, step)) != CUTPOINT_OK) fail(rc, "checkpoint");
    }
    digest(&l, bufs[step % 2], sum);
    if ((rc = cutpoint_finish(R, me == 0 ? sum : NULL, me == 0 ? 32 : 0)) != CUTPOINT_OK) fail(rc, "finish");
    cutpoint_close(R);
    free(bufs[0]);
    free(bufs[1]);
    free(col_out);
    free(col_in);
    MPI_Finalize();
    return 0;
}
