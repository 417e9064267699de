/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared helpers for kova's C test programs (header-only; include it from one .c file per test
 * program, as "../common/kova_test.h").
 *
 * Contract:
 *   failures              count of failed checks in this program; tests may add to it directly
 *                         when they report a failure their own way.
 *   CHECK(cond)           evaluates cond once; if false, prints "FILE:LINE: CHECK failed: cond" on
 *                         stderr and counts a failure. Never aborts: the test goes on.
 *   kt_mkdtemp(buf, n, prefix)
 *                         creates a fresh directory /tmp/PREFIX.XXXXXX, its path in buf (n bytes);
 *                         on failure prints why and exits with status 2.
 *   kt_path(dir, name)    "DIR/NAME" in one of 8 rotating static buffers (512 bytes each): valid
 *                         until 8 more calls; not thread-safe.
 *   kt_rm_tree(dir)       removes dir and everything under it ("rm -rf"); a failure is reported on
 *                         stderr but is not counted as a check failure.
 *   kt_finish(what)       the exit status for main: prints "WHAT: N check(s) failed" on stderr and
 *                         returns 1 when any check failed, else prints "WHAT: all checks passed" on
 *                         stdout and returns 0.
 */
#ifndef KOVA_TEST_H
#define KOVA_TEST_H

#include <stdio.h>
#include <stdlib.h>

static int failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static inline void kt_mkdtemp(char *buf, size_t n, const char *prefix)
{
    snprintf(buf, n, "/tmp/%s.XXXXXX", prefix);
    if (!mkdtemp(buf)) {
        perror("mkdtemp");
        exit(2);
    }
}

static inline const char *kt_path(const char *dir, const char *name)
{
    static char bufs[8][512];
    static unsigned k;
    char *b = bufs[k++ % 8];
    snprintf(b, sizeof(bufs[0]), "%s/%s", dir, name);
    return b;
}

static inline void kt_rm_tree(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

static inline int kt_finish(const char *what)
{
    if (failures) {
        fprintf(stderr, "%s: %d check(s) failed\n", what, failures);
        return 1;
    }
    printf("%s: all checks passed\n", what);
    return 0;
}

#endif
