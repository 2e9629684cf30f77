/*
 * heat2d.c: cutpoint's built-in heat2d workload (internal/heat2d) written in
 * C on libcutpoint. It ends with the same digest as `cutpoint run` without
 * an executable for the same --size, --steps and number of ranks:
 *
 *     cutpoint run --ranks 4 -- ./heat2d 96 6000
 *     cutpoint run --ranks 4 --size 96 --steps 6000      # same "result ..."
 *
 * 2-D heat diffusion (Jacobi, 5-point stencil) on a global grid split over a
 * px x py process grid; each rank owns a SIZE x SIZE tile with a one-cell
 * ghost border, exchanges halos with its neighbours every step over
 * cutpoint's channels, and rank 0 gathers the final grid and hashes it
 * (SHA-256 of the global interior, row-major, float64 little-endian).
 *
 * Bit-identical to the Go version because every floating-point operation is
 * the same, in the same order, rounded the same way: build with
 * -ffp-contract=off (no fused multiply-add; -std=c99 implies it with gcc,
 * the flag makes it explicit), and the initial field's sine is Go's
 * math.Sin, ported below, not libm's.
 *
 * Usage: heat2d SIZE STEPS [ALPHA]  (ALPHA default 0.2)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cutpoint.h"
#include "heat2d_field.h"
#include "sha256.h"

/* ---- the job ---------------------------------------------------------- */

static cutpoint_rank R;

/* fail exits the way the launcher expects: the coordinator's code when it
 * stopped or fenced the rank, 1 otherwise. */
static void fail(int rc, const char *what) {
    fprintf(stderr, "heat2d: %s: %s (%s)\n", what, cutpoint_last_error(), cutpoint_status_string(rc));
    if (rc == CUTPOINT_STOPPED || rc == CUTPOINT_FENCED) {
        int code = cutpoint_exit_code(R);
        exit(code);
    }
    exit(1);
}

static int recv_exact(int from, void *buf, size_t n) {
    size_t got = 0;
    int rc = cutpoint_recv(R, from, buf, n, &got);
    if (rc == CUTPOINT_OK && got != n) {
        fprintf(stderr, "heat2d: message from rank %d has %zu bytes, want %zu\n", from, got, n);
        exit(1);
    }
    return rc;
}

/* exchange sends cur's interior edges to the neighbours, then receives
 * theirs into cur's ghost border (north, south, west, east). */
static int exchange(const layout *l, double *cur, double *out, double *in) {
    int j, k, rc, w = l->nx + 2;
    const int nb[4] = {l->n, l->s, l->w, l->e};
    size_t len[4] = {(size_t)l->nx, (size_t)l->nx, (size_t)l->ny, (size_t)l->ny};
    double *o[4], *g[4];
    size_t off = 0;
    for (k = 0; k < 4; k++) {
        o[k] = out + off;
        g[k] = in + off;
        off += len[k];
    }
    memcpy(o[0], cur + w + 1, sizeof(double) * l->nx);
    memcpy(o[1], cur + (size_t)l->ny * w + 1, sizeof(double) * l->nx);
    for (j = 1; j <= l->ny; j++) {
        o[2][j - 1] = cur[(size_t)j * w + 1];
        o[3][j - 1] = cur[(size_t)j * w + l->nx];
    }
    for (k = 0; k < 4; k++) {
        if (nb[k] >= 0 && (rc = cutpoint_send(R, nb[k], o[k], sizeof(double) * len[k])) != CUTPOINT_OK) return rc;
    }
    for (k = 0; k < 4; k++) {
        if (nb[k] >= 0 && (rc = recv_exact(nb[k], g[k], sizeof(double) * len[k])) != CUTPOINT_OK) return rc;
    }
    if (l->n >= 0) memcpy(cur + 1, g[0], sizeof(double) * l->nx);
    if (l->s >= 0) memcpy(cur + (size_t)(l->ny + 1) * w + 1, g[1], sizeof(double) * l->nx);
    for (j = 1; j <= l->ny; j++) {
        if (l->w >= 0) cur[(size_t)j * w] = g[2][j - 1];
        if (l->e >= 0) cur[(size_t)j * w + l->nx + 1] = g[3][j - 1];
    }
    return CUTPOINT_OK;
}

/* gather: heat2d's gather. Every rank sends its interior rows to rank 0 in
 * blocks of about 1 MiB; rank 0 hashes global rows in order. */
static int gather(const layout *l, const double *cur, uint8_t digest[32]) {
    size_t row_bytes = 8 * (size_t)l->nx;
    int rows_per_block = (int)((1 << 20) / row_bytes), j, k, cx, cy, rc;
    size_t block_cap;
    uint8_t *blk, **cols;
    sha256_ctx h;
    if (rows_per_block < 1) rows_per_block = 1;
    block_cap = (size_t)rows_per_block * row_bytes;
    blk = malloc(block_cap);
    if (!blk) abort();
    if (l->rank != 0) {
        for (j = 0; j < l->ny; j += rows_per_block) {
            int n = l->ny - j < rows_per_block ? l->ny - j : rows_per_block;
            for (k = 0; k < n; k++) memcpy(blk + k * row_bytes, cur + IDX(l, 1, j + k + 1), row_bytes);
            if ((rc = cutpoint_send(R, 0, blk, (size_t)n * row_bytes)) != CUTPOINT_OK) {
                free(blk);
                return rc;
            }
        }
        free(blk);
        return CUTPOINT_OK;
    }
    free(blk);
    cols = calloc((size_t)l->px, sizeof *cols);
    if (!cols) abort();
    for (cx = 0; cx < l->px; cx++) {
        if (!(cols[cx] = malloc(block_cap))) abort();
    }
    sha256_init(&h);
    rc = CUTPOINT_OK;
    for (cy = 0; cy < l->py && rc == CUTPOINT_OK; cy++) {
        for (j = 0; j < l->ny && rc == CUTPOINT_OK; j += rows_per_block) {
            int n = l->ny - j < rows_per_block ? l->ny - j : rows_per_block;
            for (cx = 0; cx < l->px && rc == CUTPOINT_OK; cx++) {
                int r = rank_at(l, cx, cy);
                if (r == 0) {
                    for (k = 0; k < n; k++) memcpy(cols[cx] + k * row_bytes, cur + IDX(l, 1, j + k + 1), row_bytes);
                } else {
                    rc = recv_exact(r, cols[cx], (size_t)n * row_bytes);
                }
            }
            for (k = 0; k < n && rc == CUTPOINT_OK; k++) {
                for (cx = 0; cx < l->px; cx++) sha256_update(&h, cols[cx] + k * row_bytes, row_bytes);
            }
        }
    }
    for (cx = 0; cx < l->px; cx++) free(cols[cx]);
    free(cols);
    if (rc == CUTPOINT_OK) sha256_final(&h, digest);
    return rc;
}

int main(int argc, char **argv) {
    int size, rc, i, npeers = 0;
    int64_t steps, step;
    double alpha = 0.2;
    int32_t me, world, *peers;
    layout l;
    double *bufs[2], *out, *in;
    size_t elems;
    uint8_t digest[32];

    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s SIZE STEPS [ALPHA]\n", argv[0]);
        return 2;
    }
    size = atoi(argv[1]);
    steps = atoll(argv[2]);
    if (argc == 4) alpha = atof(argv[3]);
    if (size < 1 || size > 1 << 15 || steps < 0 || !(alpha > 0 && alpha <= 0.25)) {
        fprintf(stderr, "heat2d: want 1 <= SIZE <= 32768, STEPS >= 0, 0 < ALPHA <= 0.25\n");
        return 2;
    }
    /* The world size comes from the launcher; the peers depend on it, so
     * read it before joining (the library reads the same variable). */
    {
        const char *w = getenv("CUTPOINT_WORLD"), *r = getenv("CUTPOINT_RANK");
        if (!w || !r) {
            fprintf(stderr, "heat2d: run me under `cutpoint run` (CUTPOINT_RANK/CUTPOINT_WORLD unset)\n");
            return 2;
        }
        world = atoi(w);
        me = atoi(r);
    }
    l = new_layout(me, world, size);
    /* heat2d.Layout.Peers: the neighbours, and rank 0 (everyone for rank
     * 0) for the gather. */
    peers = calloc((size_t)world, sizeof *peers);
    if (!peers) abort();
    {
        int cand[4] = {l.n, l.s, l.w, l.e}, k, seen;
        for (k = 0; k < 4; k++) {
            seen = cand[k] < 0 || cand[k] == me;
            for (i = 0; i < npeers && !seen; i++) seen = peers[i] == cand[k];
            if (!seen) peers[npeers++] = cand[k];
        }
        for (k = 0; k < world; k++) {
            if (me != 0 && k != 0) continue;
            seen = k == me;
            for (i = 0; i < npeers && !seen; i++) seen = peers[i] == k;
            if (!seen) peers[npeers++] = k;
        }
    }
    if ((rc = cutpoint_join(peers, (size_t)npeers, steps, &R)) != CUTPOINT_OK) fail(rc, "join");
    free(peers);

    elems = (size_t)(l.nx + 2) * (size_t)(l.ny + 2);
    bufs[0] = malloc(elems * sizeof(double));
    bufs[1] = malloc(elems * sizeof(double));
    out = malloc(sizeof(double) * 2 * (size_t)(l.nx + l.ny));
    in = malloc(sizeof(double) * 2 * (size_t)(l.nx + l.ny));
    if (!bufs[0] || !bufs[1] || !out || !in) abort();
    /* Both halves of the Jacobi pair hold the fixed boundary ring. */
    heat_init(bufs[0], &l);
    memcpy(bufs[1], bufs[0], elems * sizeof(double));
    /* The state after step s is in bufs[s % 2]. */
    if ((rc = cutpoint_protect_host_ring(R, "u", (void *const *)bufs, 2, elems * sizeof(double), 8)) != CUTPOINT_OK) {
        fail(rc, "protect");
    }
    if ((rc = cutpoint_start(R, &step)) != CUTPOINT_OK) fail(rc, "start");
    for (;;) {
        while (step < steps) {
            double *cur = bufs[step % 2], *next = bufs[(step + 1) % 2];
            rc = exchange(&l, cur, out, in);
            if (rc == CUTPOINT_OK) {
                heat_step(next, cur, &l, alpha);
                rc = cutpoint_safe_point(R, step + 1, &step);
            }
            while (rc == CUTPOINT_ROLLED_BACK) rc = cutpoint_safe_point(R, step, &step);
            if (rc != CUTPOINT_OK) fail(rc, "step");
        }
        rc = gather(&l, bufs[step % 2], digest);
        if (rc == CUTPOINT_OK) rc = cutpoint_finish(R, me == 0 ? digest : NULL, me == 0 ? 32 : 0);
        if (rc == CUTPOINT_ROLLED_BACK) {
            /* A rank failed after this one's last step: go on from the cut
             * the job rolled back to. */
            do rc = cutpoint_safe_point(R, step, &step);
            while (rc == CUTPOINT_ROLLED_BACK);
            if (rc != CUTPOINT_OK) fail(rc, "safe point");
            continue;
        }
        if (rc != CUTPOINT_OK) fail(rc, "finish");
        break;
    }
    cutpoint_close(R);
    free(bufs[0]);
    free(bufs[1]);
    free(out);
    free(in);
    return 0;
}
