/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kova common: the floor every kova library stands on: one logger, timestamps, UUIDs.
 *
 * Contract:
 *  - kova_log() writes one line to stderr: "<UTC time> <program> <LEVEL> <message>". The program
 *    name and the level are the process's one logging setting (kova_log_setup()); the default is
 *    "kova", level 1 (warnings and info). Thread-safe (one fprintf per line).
 *  - Error convention: functions return 0 or -errno; those that explain a failure to a user take
 *    (char *err, size_t errlen) and write one line there (err may be NULL).
 */
#ifndef KOVA_COMMON_H
#define KOVA_COMMON_H

#include <stdbool.h>
#include <stddef.h>

enum { KOVA_LOG_WARNING = 0, KOVA_LOG_INFO = 1, KOVA_LOG_DEBUG = 2 };

/* Sets the program name shown in each line (kept by pointer: a string literal or argv) and the
 * level: 0 warnings, 1 info, 2 debug. */
void kova_log_setup(const char *prog, int level);
int kova_log_get_level(void);
void kova_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "2026-11-26T07:11:32Z" (z=true) or "2026-11-26T07:11:32.123456" (microseconds). */
void kova_time_iso(char out[32], bool z);

/* A random (version 4) UUID in canonical lowercase form. */
void kova_uuid(char out[37]);
/* Whether s is 8-4-4-4-12 hex digits (either case), as Nova accepts ids from clients. */
bool kova_is_uuid(const char *s);

#endif
