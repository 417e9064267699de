/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kova common: the floor every kova library stands on: one logger, timestamps, UUIDs.
 *
 * Contract:
 *  - kova_log() writes one line to stderr: "<UTC time, ms> <program> <LEVEL> <message>". The
 * program name and the level are the process's one logging setting (kova_log_setup()); the default
 * is "kova", level 1 (warnings and info). Thread-safe (one fprintf per line).
 *  - Error convention: functions return 0 or -errno; those that explain a failure to a user take
 *    (char *err, size_t errlen) and write one line there (err may be NULL).
 */
#ifndef KOVA_COMMON_H
#define KOVA_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

enum { KOVA_LOG_ERROR = -1, KOVA_LOG_WARNING = 0, KOVA_LOG_INFO = 1, KOVA_LOG_DEBUG = 2 };

/* Sets the program name shown in each line (kept by pointer: a string literal or argv) and the
 * level: lines of that level and more severe ones are written (-1 errors only, 0 warnings, 1
 * info, 2 debug). */
void kova_log_setup(const char *prog, int level);
int kova_log_get_level(void);
/* The level named "error", "warning" (or "warn"), "info" or "debug", in any case: 0 and *level
 * set, or -EINVAL (*level untouched). */
int kova_log_level_parse(const char *name, int *level);
void kova_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The error convention's one helper: writes the message to err (when err && errlen) and returns
 * rc, so that a failure reads `return kova_err(err, errlen, -EINVAL, "bad %s", what);`. */
int kova_err(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Forks and execs argv[0] (an absolute path) with argv, envp (NULL: this environment), stdin
 * /dev/null, stdout and stderr to out (-1: /dev/null), no other descriptor, signals unblocked and
 * at their defaults, in a session of its own when new_session. The child's pid, or -errno (the
 * exec's failure shows as exit status 127). out stays the caller's. */
pid_t kova_spawn(const char *const *argv, const char *const *envp, int out, bool new_session);

/* The last non-empty line of the file at path (read from its last 4 KiB; a symlink is not
 * followed), control characters as spaces, cut to outlen - 1 bytes: a helper's or a child's
 * last words from its log. "" when there is none or the file cannot be read. */
void kova_file_last_line(const char *path, char *out, size_t outlen);

/* write(2) of all len bytes (EINTR retried); 0 or -errno. */
int kova_write_all(int fd, const void *buf, size_t len);

/* "2026-11-26T07:11:32Z" (z=true) or "2026-11-26T07:11:32.123456" (microseconds). */
void kova_time_iso(char out[32], bool z);
/* An ISO 8601 time as clients and Keystone send it, to seconds since the epoch (UTC): a date
 * "YYYY-MM-DD" (midnight), optionally followed by 'T' or ' ' and "HH:MM[:SS[.fraction]]", then
 * optionally "Z", "+HH:MM", "+HHMM" or "+HH" (or '-'); no zone means UTC. A fraction is dropped
 * (the time is rounded down to the second). -EINVAL (out untouched) for anything else, a field out
 * of range (month 13, hour 24, second 61 …) or a time before 1970. */
int kova_parse_time(const char *s, time_t *out);
/* The value of a hex digit (either case), or -1. */
int kova_hexval(char c);

#define KOVA_UUID_STRLEN 36

/* A random (version 4) UUID in canonical lowercase form. */
void kova_uuid(char out[KOVA_UUID_STRLEN + 1]);
/* Whether s is exactly 36 characters of 8-4-4-4-12 hex digits (either case), as Nova accepts
 * ids from clients. NULL: false. */
bool kova_is_uuid(const char *s);
/* The same in lowercase only: the form kova writes, and the only one that names a path. */
bool kova_is_uuid_lower(const char *s);

/* ---- little-endian fields (PCI config space, virtio, fw_cfg, ACPI): size 0..8 bytes; bytes past
 * the 8th are ignored. ---- */
static inline uint64_t kova_le_get(const uint8_t *p, uint32_t size)
{
    uint64_t v = 0;
    for (uint32_t i = 0; i < size && i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}
static inline void kova_le_put(uint8_t *p, uint32_t size, uint64_t v)
{
    for (uint32_t i = 0; i < size && i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* ---- the console log writer (kova-vmm's serial port writes the guest console through it) ----
 * Rotated at 2 MiB with 3 backups (console.log.0 newest .. .2 oldest), as virtlogd does for
 * Nova. */
#define KOVA_CONSOLE_ROTATE_SIZE (2u * 1024u * 1024u)
#define KOVA_CONSOLE_BACKUPS     3u
#define KOVA_CONSOLE_PATH_MAX    256

/* A rotating writer for console.log, for whoever writes the guest's console (one writer per
 * log). Each write goes to the current file; when it would pass max_size, the part that fits
 * (cut after the last newline within its final 80 bytes when there is one) is written, the files
 * rotate (log.(n-2) → log.(n-1), ..., log → log.0; the oldest falls off) and writing goes on in a
 * new, empty log. The writer works relative to a descriptor of the log's directory, never by its
 * full path: a sandboxed writer (kova-vmm runs as a user who may not search the directories
 * above its instance dir) rotates where it could not even look the path up. */
struct kova_console_writer {
    int fd;
    int dirfd; /* the log's directory (O_PATH), owned by the writer */
    uint64_t size;
    uint64_t max_size;
    unsigned backups;
    char name[KOVA_CONSOLE_PATH_MAX]; /* the log's name in dirfd, no '/' */
};

/* `fd`: an open descriptor for `path` the writer takes over (e.g. passed by the agent), or -1
 * to open (create) `path` for appending. max_size 0: KOVA_CONSOLE_ROTATE_SIZE. backups 0 is
 * allowed (the log is truncated by rotating it away); at most 99. `fd` is taken over on success
 * only. Opens path's directory (for the writer's dirfd). */
int kova_console_open(struct kova_console_writer *w, const char *path, int fd, uint64_t max_size,
                      unsigned backups);
/* As kova_console_open, for the log `name` (no '/') in the directory `dirfd` (any descriptor of
 * it, O_PATH will do; the writer keeps a duplicate, the caller keeps its own). */
int kova_console_openat(struct kova_console_writer *w, int dirfd, const char *name, int fd,
                        uint64_t max_size, unsigned backups);
/* Writes all of `buf` (rotating as needed); -errno from write(2)/renameat(2)/openat(2). */
int kova_console_write(struct kova_console_writer *w, const void *buf, size_t len);
/* Rotates now (also when the log is small). */
int kova_console_rotate(struct kova_console_writer *w);
void kova_console_close(struct kova_console_writer *w);

#endif
