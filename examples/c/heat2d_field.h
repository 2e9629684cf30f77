/*
 * heat2d_field.h: the numerics of cutpoint's built-in heat2d workload
 * (internal/heat2d, kernels) in C, shared by the C example on cutpoint
 * channels (heat2d.c) and the MPI one (../mpi/heat2d_mpi.c): the initial
 * field, the process-grid layout and the Jacobi step, each floating-point
 * operation the same as Go's, in the same order (build with
 * -ffp-contract=off). Static functions: include it in one file.
 */
#ifndef HEAT2D_FIELD_H
#define HEAT2D_FIELD_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

/* ---- the initial field: kernels.Heat2DValue ------------------------------ */

/* go_sin is Go's math.Sin (Cephes sin, src/math/sin.go) for |x| < 2^29,
 * the only arguments heat2d uses (0 <= x < 2 pi). */
static double go_sin(double x) {
    static const double S[6] = {
        1.58962301576546568060e-10, -2.50507477628578072866e-8, 2.75573136213857245213e-6,
        -1.98412698295895385996e-4, 8.33333333332211858878e-3,  -1.66666666666666307295e-1,
    };
    static const double Cs[6] = {
        -1.13585365213876817300e-11, 2.08757008419747316778e-9, -2.75573141792967388112e-7,
        2.48015872888517045348e-5,   -1.38888888888730564116e-3, 4.16666666666665929218e-2,
    };
    const double PI4A = 7.85398125648498535156e-1, PI4B = 3.77489470793079817668e-8,
                 PI4C = 2.69515142907905952645e-15;
    /* Go folds 4/Pi exactly and rounds once; 4/M_PI would round twice. */
    const double FOUR_OVER_PI = 0x1.45f306dc9c883p+00;
    int sign = 0;
    uint64_t j;
    double y, z, zz;
    if (x == 0 || x != x) return x;
    if (x < 0) {
        x = -x;
        sign = 1;
    }
    j = (uint64_t)(x * FOUR_OVER_PI);
    y = (double)j;
    if (j & 1) {
        j++;
        y++;
    }
    j &= 7;
    z = ((x - y * PI4A) - y * PI4B) - y * PI4C;
    if (j > 3) {
        sign = !sign;
        j -= 4;
    }
    zz = z * z;
    if (j == 1 || j == 2) {
        y = 1.0 - 0.5 * zz + zz * zz * ((((((Cs[0] * zz) + Cs[1]) * zz + Cs[2]) * zz + Cs[3]) * zz + Cs[4]) * zz + Cs[5]);
    } else {
        y = z + z * zz * ((((((S[0] * zz) + S[1]) * zz + S[2]) * zz + S[3]) * zz + S[4]) * zz + S[5]);
    }
    return sign ? -y : y;
}

static double heat_sin(int g, int G) {
    const double TWO_PI = 0x1.921fb54442d18p+02; /* Go's 2*math.Pi */
    double x;
    if (g < 0 || g >= G) return 0;
    x = ((double)g + 0.5) / (double)G;
    return go_sin(TWO_PI * x);
}

static int in_square(int g, int G, int num, int den) {
    int lo = G * num / den, w = G / 8 > 1 ? G / 8 : 1;
    return g >= lo && g < lo + w;
}

static double heat_value(int gx, int gy, int GX, int GY, double sx, double sy) {
    double v;
    if (gy == -1) return 400;
    if (gx == -1 || gx == GX || gy == GY) return 300;
    v = 300 + 20 * sx * sy;
    if ((in_square(gx, GX, 1, 4) && in_square(gy, GY, 1, 4)) || (in_square(gx, GX, 5, 8) && in_square(gy, GY, 9, 16))) {
        v += 200;
    }
    return v;
}

/* ---- layout: heat2d.NewLayout ------------------------------------------- */

typedef struct {
    int rank, world, px, py, cx, cy;
    int nx, ny, x0, y0, gx, gy; /* kernels.Tile */
    int n, s, w, e;             /* neighbours, -1 at the boundary */
} layout;

static int rank_at(const layout *l, int cx, int cy) {
    if (cx < 0 || cy < 0 || cx >= l->px || cy >= l->py) return -1;
    return cy * l->px + cx;
}

static layout new_layout(int rank, int n, int size) {
    layout l;
    int py = (int)sqrt((double)n);
    while (py > 1 && n % py != 0) py--;
    if (py < 1) py = 1;
    l.rank = rank;
    l.world = n;
    l.px = n / py;
    l.py = py;
    l.cx = rank % l.px;
    l.cy = rank / l.px;
    l.nx = l.ny = size;
    l.x0 = l.cx * size;
    l.y0 = l.cy * size;
    l.gx = l.px * size;
    l.gy = l.py * size;
    l.n = rank_at(&l, l.cx, l.cy - 1);
    l.s = rank_at(&l, l.cx, l.cy + 1);
    l.w = rank_at(&l, l.cx - 1, l.cy);
    l.e = rank_at(&l, l.cx + 1, l.cy);
    return l;
}

#define IDX(l, i, j) ((size_t)(j) * (size_t)((l)->nx + 2) + (size_t)(i))

static void heat_init(double *dst, const layout *l) {
    int i, j;
    double *sx = malloc(sizeof(double) * (size_t)(l->nx + 2));
    double *sy = malloc(sizeof(double) * (size_t)(l->ny + 2));
    if (!sx || !sy) abort();
    for (i = 0; i < l->nx + 2; i++) sx[i] = heat_sin(l->x0 + i - 1, l->gx);
    for (j = 0; j < l->ny + 2; j++) sy[j] = heat_sin(l->y0 + j - 1, l->gy);
    for (j = 0; j < l->ny + 2; j++) {
        for (i = 0; i < l->nx + 2; i++) {
            dst[IDX(l, i, j)] = heat_value(l->x0 + i - 1, l->y0 + j - 1, l->gx, l->gy, sx[i], sy[j]);
        }
    }
    free(sx);
    free(sy);
}

/* kernels.StencilPoint: c + alpha*(((n + s) + (e + w)) - 4*c), each
 * operation rounded, no fused multiply-add. */
static void heat_step(double *dst, const double *src, const layout *l, double alpha) {
    int i, j, w = l->nx + 2;
    for (j = 1; j <= l->ny; j++) {
        const double *up = src + (size_t)(j - 1) * w, *row = src + (size_t)j * w, *down = src + (size_t)(j + 1) * w;
        double *out = dst + (size_t)j * w;
        for (i = 1; i <= l->nx; i++) {
            double c = row[i];
            double lap = ((up[i] + down[i]) + (row[i + 1] + row[i - 1])) - 4 * c;
            out[i] = c + alpha * lap;
        }
    }
}

#endif /* HEAT2D_FIELD_H */
