/* sha256.h: a small SHA-256 (FIPS 180-4) for the examples' digests. */
#ifndef CUTPOINT_EXAMPLE_SHA256_H
#define CUTPOINT_EXAMPLE_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint64_t len;      /* bytes hashed so far */
    uint8_t buf[64];
    size_t nbuf;
} sha256_ctx;

void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t n);
void sha256_final(sha256_ctx *c, uint8_t out[32]);

#endif
