/* SPDX-License-Identifier: Apache-2.0 */
/* kova_layout: helpers shared by the library's sources (not installed, not public). */
#ifndef KOVA_LAYOUT_INTERNAL_H
#define KOVA_LAYOUT_INTERNAL_H

#include <stddef.h>

#include "kova/common.h" /* kova_err */

/* snprintf into out; -ENAMETOOLONG when it does not fit. */
int lpath(char *out, size_t outlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* mkdir that treats an existing directory as success (-ENOTDIR when something else is there). */
int lmkdir(const char *path, unsigned mode);

/* fsync(2) of a directory by path. */
int lfsync_dir(const char *path);

/* Writes `len` bytes to `path` atomically: `path`.tmp (O_EXCL after removing a stale one),
 * fsync, rename, fsync of the directory `dir`. */
int lwrite_atomic(const char *dir, const char *path, const void *buf, size_t len, unsigned mode);

#endif
