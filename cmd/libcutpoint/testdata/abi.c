/* abi.c: checks of the C interface's contracts in a real job
 * (go test ./cmd/libcutpoint, TestABIContracts; 3 ranks). A failed check does not
 * exit (the coordinator would respawn the rank): rank 0 reports
 * SHA-256("ok") only when every check on both ranks passed, and
 * SHA-256("fail") otherwise; failures are printed on stderr. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cutpoint.h"

static int failed;

#define CHECK(cond, ...)                                   \
    do {                                                   \
        if (!(cond)) {                                     \
            fprintf(stderr, "abi.c:%d: ", __LINE__);       \
            fprintf(stderr, __VA_ARGS__);                  \
            fprintf(stderr, "\n");                         \
            failed = 1;                                    \
        }                                                  \
    } while (0)

static void *other_thread(void *arg) {
    /* The last error is per thread: this thread made no failing call. */
    *(int *)arg = strcmp(cutpoint_last_error(), "") == 0;
    return NULL;
}

int main(void) {
    cutpoint_rank r;
    int32_t me = -1, world = 0;
    int64_t step = -1, s = -1, caps = -1, rbs = -1;
    double state[16] = {0};
    unsigned char msg[100], small[10], big[200], verdict = 0;
    size_t n = 0;
    int rc, i;

    {
        /* A line of 3 ranks: 0 - 1 - 2 (each is its own peer, always). */
        const char *env = getenv("CUTPOINT_RANK");
        int32_t mid[2] = {0, 2}, one = 1;
        if (env && env[0] == '1') rc = cutpoint_join(mid, 2, 0, &r);
        else rc = cutpoint_join(&one, 1, 0, &r);
    }
    if (rc != CUTPOINT_OK) {
        fprintf(stderr, "join: %s\n", cutpoint_last_error());
        return 1;
    }
    CHECK(cutpoint_identity(r, &me, &world) == CUTPOINT_OK && world == 3, "identity %d/%d", me, world);
    CHECK(cutpoint_send(r, 1, "x", 1) == CUTPOINT_NOT_STARTED, "send before start");
    CHECK(cutpoint_protect_host(r, "state", state, sizeof state, 3) == CUTPOINT_INVALID, "element size 3");
    CHECK(cutpoint_protect_host(r, "state", state, 12, 8) == CUTPOINT_INVALID, "12 bytes of 8-byte elements");
    CHECK(cutpoint_protect_host(r, "", state, sizeof state, 8) == CUTPOINT_INVALID, "empty name");
    CHECK(cutpoint_protect_host(r, "state", state, sizeof state, 8) == CUTPOINT_OK, "protect: %s", cutpoint_last_error());
    CHECK(cutpoint_protect_host(r, "state", state, sizeof state, 8) != CUTPOINT_OK, "duplicate name accepted");
#ifndef ABI_CUDA
    CHECK(cutpoint_protect_cuda(r, "dev", 0x1000, 64, 8) == CUTPOINT_NO_CUDA, "protect_cuda in the default build");
#endif
    CHECK(cutpoint_start(r, &step) == CUTPOINT_OK && step == 0, "start: step %lld", (long long)step);
    CHECK(cutpoint_protect_host(r, "late", state, sizeof state, 8) == CUTPOINT_PROTECT_AFTER_START, "protect after start");
    CHECK(cutpoint_send(r, 3, "x", 1) == CUTPOINT_INVALID, "send to rank 3 of 3");
    if (me != 1) CHECK(cutpoint_send(r, 2 - me, "x", 1) == CUTPOINT_INVALID, "send to a rank not declared a peer");
    CHECK(cutpoint_recv(r, -1, small, sizeof small, &n) == CUTPOINT_INVALID, "recv from -1");
    CHECK(cutpoint_safe_point(r, 1, NULL) == CUTPOINT_INVALID, "safe_point NULL");
    CHECK(cutpoint_send(12345, 0, "x", 1) == CUTPOINT_INVALID, "unknown handle");
    CHECK(strstr(cutpoint_last_error(), "12345") != NULL, "last error %s", cutpoint_last_error());

    for (i = 0; i < (int)sizeof msg; i++) msg[i] = (unsigned char)(i * 3 + 1);
    if (me == 0) {
        CHECK(cutpoint_send(r, 1, msg, sizeof msg) == CUTPOINT_OK, "send: %s", cutpoint_last_error());
        CHECK(cutpoint_recv(r, 1, &verdict, 1, &n) == CUTPOINT_OK && n == 1, "recv verdict");
        if (verdict) failed = 1;
    } else if (me == 2) {
        /* Rank 2's verdict reaches rank 0 through rank 1. */
        verdict = (unsigned char)failed;
        CHECK(cutpoint_send(r, 1, &verdict, 1) == CUTPOINT_OK, "send verdict");
    } else {
        unsigned char v2 = 1;
        int clean = 0;
        CHECK(cutpoint_recv(r, 2, &v2, 1, &n) == CUTPOINT_OK && n == 1, "recv rank 2's verdict");
        if (v2) failed = 1;
        pthread_t t;
        /* Too small: the size is reported and the message kept. */
        rc = cutpoint_recv(r, 0, small, sizeof small, &n);
        CHECK(rc == CUTPOINT_TOO_SMALL && n == sizeof msg, "recv into 10 bytes: rc %d n %zu", rc, n);
        CHECK(strlen(cutpoint_last_error()) > 0, "no message for TOO_SMALL");
        pthread_create(&t, NULL, other_thread, &clean);
        pthread_join(t, NULL);
        CHECK(clean, "another thread sees this thread's last error");
        memset(big, 0, sizeof big);
        rc = cutpoint_recv(r, 0, big, sizeof big, &n);
        CHECK(rc == CUTPOINT_OK && n == sizeof msg && memcmp(big, msg, sizeof msg) == 0, "kept message: rc %d n %zu", rc, n);
        verdict = (unsigned char)failed;
        CHECK(cutpoint_send(r, 0, &verdict, 1) == CUTPOINT_OK, "send verdict");
    }
    /* Self-channel and an empty message. */
    CHECK(cutpoint_send(r, me, "", 0) == CUTPOINT_OK, "empty send to self");
    CHECK(cutpoint_recv(r, me, NULL, 0, &n) == CUTPOINT_OK && n == 0, "empty recv from self");
    CHECK(cutpoint_safe_point(r, 1, &s) == CUTPOINT_OK && s == 1, "safe point 1 -> %lld", (long long)s);
    CHECK(cutpoint_stats(r, &caps, &rbs) == CUTPOINT_OK && rbs == 0, "stats rollbacks %lld", (long long)rbs);
    {
        uint8_t d[32];
        const char *word = failed ? "fail" : "ok";
        cutpoint_sha256(word, strlen(word), d);
        rc = me == 0 ? cutpoint_finish(r, d, sizeof d) : cutpoint_finish(r, NULL, 0);
    }
    if (rc != CUTPOINT_OK) fprintf(stderr, "finish: %s\n", cutpoint_last_error());
    CHECK(cutpoint_close(r) == CUTPOINT_OK, "close");
    CHECK(cutpoint_close(r) == CUTPOINT_INVALID, "second close");
    return rc == CUTPOINT_OK ? 0 : 1;
}
