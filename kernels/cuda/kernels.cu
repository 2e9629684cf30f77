// Device kernels of cutpoint's CUDA device. kernels.ptx is generated from this
// file by genptx.sh (go generate) and committed; see that script for the
// compiler flags. It compiles with clang (no CUDA headers needed) or nvcc.
//
// Every kernel parameter is 8 bytes wide (pointers, unsigned long long,
// double): gorgonia.org/cu's Launch copies 8 bytes from each argument.
//
// The results must equal the CPU device's bit for bit:
//   - chunk hash: package kernels, hash.go (same words, keys, mix, sum);
//   - shuffle: kernels/shuffle (out[p*m + i] = in[i*s + p], tail copied);
//   - stencil: kernels.StencilPoint, every operation rounded (.rn), no FMA.

#if defined(__clang__) && !defined(__CLANG_CUDA_RUNTIME_WRAPPER_H__)
// clang without the CUDA headers (-nocudainc): spell out what they define.
#define __global__ __attribute__((global))
#define __device__ __attribute__((device))
#define __shared__ __attribute__((shared))
#define TID_X() __nvvm_read_ptx_sreg_tid_x()
#define NTID_X() __nvvm_read_ptx_sreg_ntid_x()
#define CTAID_X() __nvvm_read_ptx_sreg_ctaid_x()
#define NCTAID_X() __nvvm_read_ptx_sreg_nctaid_x()
#define CTAID_Y() __nvvm_read_ptx_sreg_ctaid_y()
#define NCTAID_Y() __nvvm_read_ptx_sreg_nctaid_y()
#define DADD(a, b) __nvvm_add_rn_d((a), (b))
#define DMUL(a, b) __nvvm_mul_rn_d((a), (b))
#define ATOMIC_ADD_U64(p, v) __nvvm_atom_add_gen_ll((long long *)(p), (long long)(v))
#else
#define TID_X() threadIdx.x
#define NTID_X() blockDim.x
#define CTAID_X() blockIdx.x
#define NCTAID_X() gridDim.x
#define CTAID_Y() blockIdx.y
#define NCTAID_Y() gridDim.y
#define DADD(a, b) __dadd_rn((a), (b))
#define DMUL(a, b) __dmul_rn((a), (b))
#define ATOMIC_ADD_U64(p, v) atomicAdd((unsigned long long *)(p), (unsigned long long)(v))
#endif

typedef unsigned long long u64;
typedef unsigned char u8;

#define HASH_K1 0x9E3779B97F4A7C15ULL

// Threads per block of the chunk kernels, and words each thread handles in
// one tile; a block covers one tile of TILE_WORDS consecutive words of one
// chunk, so that its partial sum belongs to a single chunk.
#define CHUNK_THREADS 256
#define WORDS_PER_THREAD 16
#define TILE_WORDS (CHUNK_THREADS * WORDS_PER_THREAD)

__device__ static inline u64 mix64(u64 x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

// load_word reads the little-endian word at p with avail bytes left in the
// chunk: a whole aligned word, or the zero-padded tail.
__device__ static inline u64 load_word(const u8 *p, u64 avail) {
  if (avail >= 8) {
    return *(const u64 *)p;
  }
  u64 w = 0;
  for (u64 b = 0; b < avail; b++) {
    w |= (u64)p[b] << (8 * b);
  }
  return w;
}

// shuffle_word stores the bytes of the word at chunk offset q (avail bytes
// of it inside the chunk) at their shuffled places in the chunk's output:
// byte p of element i goes to out[p*m + i] for the m whole elements of
// 2^lg bytes, the chunk's trailing partial element stays where it is.
__device__ static inline void shuffle_word(u8 *out, u64 w, u64 q, u64 avail, u64 lg, u64 m) {
  u64 tail = m << lg;
  u64 mask = (1ULL << lg) - 1;
  u64 cnt = avail < 8 ? avail : 8;
  for (u64 b = 0; b < cnt; b++) {
    u64 pos = q + b;
    u8 v = (u8)(w >> (8 * b));
    if (pos < tail) {
      out[(pos & mask) * m + (pos >> lg)] = v;
    } else {
      out[pos] = v;
    }
  }
}

// chunk_pass walks a buffer of n bytes cut into chunks of chunk bytes (a
// multiple of 64), one block per tile of TILE_WORDS words of one chunk
// (tiles_per_chunk tiles per chunk, grid = chunks * tiles_per_chunk). For
// each word it may
//   - add mix(w ^ (k+1)*K1) to the chunk's sum in sums[chunk] (sums != 0);
//   - copy it to dst (dst != 0), byte-shuffled per chunk when elem > 1.
// sums must be zeroed before the launch. Integer atomics make the sum
// independent of the order blocks finish in.
extern "C" __global__ void chunk_pass(const u8 *src, u8 *dst, u64 n, u64 chunk,
                                      u64 elem, u64 *sums, u64 tiles_per_chunk) {
  __shared__ u64 part[CHUNK_THREADS];
  u64 c = (u64)CTAID_X() / tiles_per_chunk;
  u64 tile = (u64)CTAID_X() % tiles_per_chunk;
  u64 base = c * chunk;
  if (base >= n) {
    return;
  }
  u64 clen = n - base < chunk ? n - base : chunk;
  u64 cwords = (clen + 7) / 8;
  u64 lg = elem == 8 ? 3 : elem == 4 ? 2 : elem == 2 ? 1 : 0;
  u64 m = clen >> lg;
  u64 t = TID_X();
  u64 sum = 0;
  for (u64 r = 0; r < WORDS_PER_THREAD; r++) {
    u64 k = tile * TILE_WORDS + r * CHUNK_THREADS + t; // word index in chunk
    if (k >= cwords) {
      break;
    }
    u64 q = 8 * k;
    u64 avail = clen - q;
    u64 w = load_word(src + base + q, avail);
    if (sums) {
      sum += mix64(w ^ ((k + 1) * HASH_K1));
    }
    if (dst) {
      if (elem == 1) {
        if (avail >= 8) {
          *(u64 *)(dst + base + q) = w;
        } else {
          for (u64 b = 0; b < avail; b++) {
            dst[base + q + b] = (u8)(w >> (8 * b));
          }
        }
      } else {
        shuffle_word(dst + base, w, q, avail, lg, m);
      }
    }
  }
  if (!sums) {
    return;
  }
  part[t] = sum;
  __syncthreads();
  for (u64 stride = CHUNK_THREADS / 2; stride > 0; stride /= 2) {
    if (t < stride) {
      part[t] += part[t + stride];
    }
    __syncthreads();
  }
  if (t == 0) {
    ATOMIC_ADD_U64(&sums[c], part[0]);
  }
}

// heat2d_step: one Jacobi step of an nx*ny tile with a one-cell ghost
// border, row-major doubles, rows of nx+2. Same operations, same order, same
// rounding as kernels.StencilPoint: c + alpha*(((n + s) + (e + w)) - 4*c).
// Subtraction is addition of the negation, which is exact. Grid: x covers a
// row's columns, y strides over rows (gridDim.y is at most 65535).
extern "C" __global__ void heat2d_step(double *dst, const double *src, u64 nx, u64 ny,
                                       double alpha) {
  u64 w = nx + 2;
  u64 i = (u64)CTAID_X() * NTID_X() + TID_X() + 1;
  if (i > nx) {
    return;
  }
  for (u64 j = (u64)CTAID_Y() + 1; j <= ny; j += NCTAID_Y()) {
    u64 at = j * w + i;
    double c = src[at];
    double ns = DADD(src[at - w], src[at + w]);
    double ew = DADD(src[at + 1], src[at - 1]);
    double lap = DADD(DADD(ns, ew), -DMUL(4.0, c));
    dst[at] = DADD(c, DMUL(alpha, lap));
  }
}

// heat2d_edges packs the interior edges of the tile into out:
// [north nx][south nx][west ny][east ny].
extern "C" __global__ void heat2d_edges(const double *src, double *out, u64 nx, u64 ny) {
  u64 w = nx + 2;
  u64 total = 2 * nx + 2 * ny;
  for (u64 idx = (u64)CTAID_X() * NTID_X() + TID_X(); idx < total;
       idx += (u64)NCTAID_X() * NTID_X()) {
    double v;
    if (idx < nx) {
      v = src[w + 1 + idx];
    } else if (idx < 2 * nx) {
      v = src[ny * w + 1 + (idx - nx)];
    } else if (idx < 2 * nx + ny) {
      v = src[(idx - 2 * nx + 1) * w + 1];
    } else {
      v = src[(idx - 2 * nx - ny + 1) * w + nx];
    }
    out[idx] = v;
  }
}

// heat2d_ghosts writes the ghost edges of the tile from in (same layout as
// heat2d_edges' out); bit 0..3 of mask select north, south, west, east.
extern "C" __global__ void heat2d_ghosts(double *dst, const double *in, u64 nx, u64 ny,
                                         u64 mask) {
  u64 w = nx + 2;
  u64 total = 2 * nx + 2 * ny;
  for (u64 idx = (u64)CTAID_X() * NTID_X() + TID_X(); idx < total;
       idx += (u64)NCTAID_X() * NTID_X()) {
    if (idx < nx) {
      if (mask & 1) dst[1 + idx] = in[idx];
    } else if (idx < 2 * nx) {
      if (mask & 2) dst[(ny + 1) * w + 1 + (idx - nx)] = in[idx];
    } else if (idx < 2 * nx + ny) {
      if (mask & 4) dst[(idx - 2 * nx + 1) * w] = in[idx];
    } else {
      if (mask & 8) dst[(idx - 2 * nx - ny + 1) * w + nx + 1] = in[idx];
    }
  }
}
