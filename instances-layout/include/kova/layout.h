/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kova_layout: how kova-agent lays out its instances on disk (Nova's libvirt layout).
 *
 *   STATE/instances/<uuid>/disk          qcow2 overlay over the cached base image
 *   STATE/instances/<uuid>/disk.info     {"<abs path of disk>": "qcow2"} (one JSON line)
 *   STATE/instances/<uuid>/disk.config   the config drive (vfat "config-2"), when it has one
 *   STATE/instances/<uuid>/console.log   guest serial console (rotated: console.log.0 .. .2)
 *   STATE/instances/<uuid>/vmm.sock      kova-vmm's control socket
 *   STATE/instances/<uuid>/vmm.pid       kova-vmm's PID file
 *   STATE/instances/_base/<sha1 hex of the image id>   base image cache
 *   STATE/instances/locks/kova-<sha1 hex>               flock(2) files guarding the cache
 *   STATE/instances/.partial-<uuid>/                    an instance dir being built
 *
 * Errors: every int function returns 0 on success or a negative errno. Functions taking
 * `err`/`errlen` also write a one-line message there on failure (may be NULL).
 * There is no global mutable state: everything lives in the caller's struct kova_layout (which
 * is read-only after kova_layout_init(), so one may be shared by threads) or in a
 * struct kova_console_writer owned by one writer.
 *
 * Instance ids: only the canonical lowercase form 8-4-4-4-12 of hex digits names a directory,
 * so one instance has exactly one directory. Every function validates the id before building
 * any path from it (-EINVAL otherwise: "", "../x", "%2e%2e", upper case, braces, too long...).
 * kova_uuid_normalize() turns an upper/mixed case canonical id from a client into that form.
 *
 * Path lengths: the longest path is the control socket, STATE/instances/<uuid>/vmm.sock, which
 * must fit sockaddr_un.sun_path (108 bytes with its NUL). That leaves KOVA_LAYOUT_STATE_MAX (51)
 * bytes for STATE; kova_layout_init() refuses a longer (deeper) state dir with -ENAMETOOLONG
 * and a message saying so, so the agent fails at start-up instead of at its first boot. A
 * path builder given a too small buffer also answers -ENAMETOOLONG.
 */
#ifndef KOVA_LAYOUT_H
#define KOVA_LAYOUT_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "kova/common.h"
#include "kova/qcow2.h"

/* Length of a canonical UUID string, without its NUL. */
/* Longest state dir (after trailing slashes are dropped): 108 - 1 - strlen("/instances/") -
 * 36 - strlen("/vmm.sock"). */
#define KOVA_LAYOUT_STATE_MAX 51
/* Buffer size that holds any path this library builds. */
#define KOVA_LAYOUT_PATH_MAX 256

/* Console log: rotated by kova/common.h's writer (KOVA_CONSOLE_ROTATE_SIZE, KOVA_CONSOLE_BACKUPS);
 * os-getConsoleOutput reads at most the last 100 KiB. */
#define KOVA_CONSOLE_READ_MAX (100u * 1024u)
/* `length` for kova_console_read() meaning "not given" (Nova: null / absent): all lines. */
#define KOVA_CONSOLE_ALL INT64_MIN

/* kova_layout_create_instance() returns this (and only in this case) when the base image's
 * virtual size is larger than the flavor's root disk: the API maps it to Nova's
 * FlavorDiskSmallerThanImage (400 badRequest). */
#define KOVA_LAYOUT_EFLAVOR_DISK_SMALLER (-EFBIG)

struct kova_layout {
    char state_dir[KOVA_LAYOUT_STATE_MAX + 1]; /* absolute, no trailing slash ("" for "/") */
    size_t state_len;
};

enum kova_instance_file {
    KOVA_INSTANCE_DIR = 0, /* STATE/instances/<uuid> */
    KOVA_INSTANCE_DISK,
    KOVA_INSTANCE_DISK_INFO,
    KOVA_INSTANCE_CONSOLE_LOG,
    KOVA_INSTANCE_VMM_SOCK, /* guaranteed to fit sun_path (< 108 bytes) */
    KOVA_INSTANCE_VMM_PID,
    KOVA_INSTANCE_CONFIG_DRIVE,
};

/* --- ids and paths (pure: no file system access) -------------------------------------------- */

/* Instance ids are lowercase canonical UUIDs: kova_is_uuid_lower() (kova/common.h). */

/* `state_dir` must be absolute; trailing slashes are dropped. -EINVAL (relative, empty, NULL),
 * -ENAMETOOLONG (longer than KOVA_LAYOUT_STATE_MAX: the control socket would not fit). */
int kova_layout_init(struct kova_layout *l, const char *state_dir, char *err, size_t errlen);

/* STATE/instances, STATE/instances/_base, STATE/instances/locks. */
int kova_layout_instances_dir(const struct kova_layout *l, char *out, size_t outlen);
int kova_layout_base_dir(const struct kova_layout *l, char *out, size_t outlen);
int kova_layout_locks_dir(const struct kova_layout *l, char *out, size_t outlen);
/* A file of one instance. -EINVAL for an invalid id or kind, -ENAMETOOLONG when `out` is too
 * small (or, for the socket, when the path would not fit sun_path). */
int kova_layout_instance_path(const struct kova_layout *l, const char *uuid,
                              enum kova_instance_file which, char *out, size_t outlen);
/* The lowercase SHA-1 hex (40 chars) of the image id: the base cache's file name. Any non-empty
 * image id is accepted (it never becomes a path itself); -EINVAL for "" or NULL. */
int kova_layout_image_key(const char *image_id, char hex[41]);
/* STATE/instances/_base/<sha1 hex of image_id>. */
int kova_layout_base_path(const struct kova_layout *l, const char *image_id, char *out,
                          size_t outlen);

/* --- base image cache ------------------------------------------------------------------------ */

/* Makes sure _base/<sha1(image_id)> exists, taking it from `src_path` (a file of the agent's
 * image store) when it does not: under an exclusive flock on locks/kova-<sha1>, it hard-links the
 * source when they share a file system (the store's files must then never be modified in place)
 * or else copies it (sparse: holes are kept) to a temporary name in _base, fsyncs it and renames
 * it into place, then fsyncs _base. Concurrent callers (threads or processes) for the same image
 * copy it once; the others wait on the lock and find it present. Creates STATE/instances, _base
 * and locks as needed (STATE itself must exist). Writes the base path to `base_out` (may be
 * NULL). A base that already exists is never replaced. */
int kova_layout_cache_image(const struct kova_layout *l, const char *image_id, const char *src_path,
                            char *base_out, size_t base_len, char *err, size_t errlen);

/* --- instance directories -------------------------------------------------------------------- */

struct kova_instance_spec {
    const char *uuid;     /* canonical lowercase */
    const char *image_id; /* its base must already be cached (kova_layout_cache_image) */
    enum kova_disk_format base_format; /* format of the base image: raw or qcow2 */
    uint64_t root_bytes; /* flavor root disk in bytes (root_gb << 30); 0: the image's size */
};

/* Creates STATE/instances/<uuid>/ (-EEXIST when present; an existing dir is never touched) with
 * `disk` (qcow2 v3 overlay, backing file = the absolute _base path and its format, virtual size
 * root_bytes or, for 0, the base's virtual size), `disk.info` (tmp + fsync + rename) and an
 * empty `console.log` (0600). It is built as STATE/instances/.partial-<uuid>/, fsynced, and
 * renamed into place (RENAME_NOREPLACE) only when complete, then STATE/instances is fsynced:
 * an instance dir that exists is whole, even after a crash or SIGKILL half-way (which leaves a
 * .partial-<uuid> dir for kova_layout_sweep_partial()). -EEXIST also while another create of
 * the same uuid runs. When the base's virtual size is larger than root_bytes:
 * KOVA_LAYOUT_EFLAVOR_DISK_SMALLER with Nova's message, nothing created. -ENOENT when the base
 * is not cached. On any failure nothing half-made is left. (Nova also checks the image's size
 * against root_gb in the API before answering 202, from Glance's metadata; this is the build-time
 * check on the real virtual size, which ends as the instance's fault.) `disk_bytes_out` (may be
 * NULL) receives the overlay's virtual size (rounded up to 512 bytes). */
int kova_layout_create_instance(const struct kova_layout *l, const struct kova_instance_spec *spec,
                                uint64_t *disk_bytes_out, char *err, size_t errlen);

/* Removes STATE/instances/<uuid>/ and everything in it, without following any symlink: when
 * instances/<uuid> itself is a symlink → -ELOOP and nothing is touched; symlinks inside are
 * unlinked (the links, never their targets); a mount point inside → -EXDEV (stops there).
 * -ENOENT when absent. Callers stop the VMM first. */
int kova_layout_remove_instance(const struct kova_layout *l, const char *uuid, char *err,
                                size_t errlen);

/* Removes every STATE/instances/.partial-<uuid>/ left by a create that was killed half-way (as
 * kova_layout_remove_instance does). Call it at agent start-up, before any create runs: it would
 * also remove the dir of a create in progress. `removed` (may be NULL) gets the count. A
 * missing STATE/instances is not an error. */
int kova_layout_sweep_partial(const struct kova_layout *l, unsigned *removed, char *err,
                              size_t errlen);

/* Lists the instance directories present (real directories named by a canonical lowercase
 * UUID; _base, locks, symlinks and anything else are skipped), sorted. `*uuids` is one malloc'd
 * array (free() it; NULL when *count is 0). A missing STATE/instances gives 0 entries. */
int kova_layout_list_instances(const struct kova_layout *l, char (**uuids)[KOVA_UUID_STRLEN + 1],
                               size_t *count, char *err, size_t errlen);

/* --- console log -------------------------------------------------------------------------------
 */

/* os-getConsoleOutput. Reads the last KOVA_CONSOLE_READ_MAX bytes across `log_path`,
 * `log_path`.0, .1, ... (newest first, stopping at the first missing file; the result is in
 * chronological order), then applies Nova's semantics:
 *   length == KOVA_CONSOLE_ALL (null/absent): everything read;
 *   length == 0: "";
 *   length  > 0: split on "\n", the last `length` pieces re-joined with "\n";
 *   length  < 0: as Python's pieces[-length:], i.e. all pieces but the first |length|
 *                (Nova's schema admits -1 as an integer; a string may carry any negative);
 * then every byte >= 0x80 becomes U+FFFD (Nova decodes as ASCII with "replace"; the result is
 * valid UTF-8 for JSON) and control bytes other than \t and \n (0x00-0x08, 0x0b-0x1f) are
 * removed. A missing console.log gives "" (as Nova). `*out` is malloc'd and NUL-terminated;
 * free() it. */
int kova_console_read(const char *log_path, int64_t length, char **out, size_t *outlen, char *err,
                      size_t errlen);

#endif
