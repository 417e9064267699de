/* SPDX-License-Identifier: Apache-2.0 */
/* kova_layout: creating, removing and listing STATE/instances/<uuid>/. */
#include "kova/layout.h"
#include "layout_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Appends `s` as a JSON string (with quotes) to buf; -ENAMETOOLONG when it does not fit. */
static int json_str(char *buf, size_t cap, size_t *pos, const char *s)
{
    size_t p = *pos;
    if (p + 1 >= cap)
        return -ENAMETOOLONG;
    buf[p++] = '"';
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        char esc[8];
        size_t n;
        if (*c == '"' || *c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*c;
            n = 2;
        } else if (*c < 0x20) {
            snprintf(esc, sizeof(esc), "\\u%04x", *c);
            n = 6;
        } else {
            esc[0] = (char)*c;
            n = 1;
        }
        if (p + n + 1 >= cap)
            return -ENAMETOOLONG;
        memcpy(buf + p, esc, n);
        p += n;
    }
    buf[p++] = '"';
    buf[p] = '\0';
    *pos = p;
    return 0;
}

static int image_virtual_size(const char *base, enum kova_disk_format fmt, uint64_t *size,
                              char *err, size_t errlen)
{
    struct kova_disk *d = NULL;
    char msg[256] = "";
    int rc =
        kova_disk_open(&d, base, fmt, KOVA_DISK_RDONLY | KOVA_DISK_NO_BACKING, msg, sizeof(msg));
    if (rc < 0)
        return kova_err(err, errlen, rc == -EFBIG ? -EIO : rc, "base image %s (%s): %s", base,
                        kova_disk_format_name(fmt), msg);
    *size = kova_disk_size(d);
    kova_disk_close(d);
    return 0;
}

/* Building happens in instances/.partial-<uuid>/, renamed to instances/<uuid> when complete:
 * an instance dir that exists is whole, even after a crash (or SIGKILL) half-way. */
#define PARTIAL_PREFIX ".partial-"

int kova_layout_create_instance(const struct kova_layout *l, const struct kova_instance_spec *spec,
                                uint64_t *disk_bytes_out, char *err, size_t errlen)
{
    char dir[KOVA_LAYOUT_PATH_MAX], final_disk[KOVA_LAYOUT_PATH_MAX];
    char base[KOVA_LAYOUT_PATH_MAX], inst_dir[KOVA_LAYOUT_PATH_MAX];
    char part[KOVA_LAYOUT_PATH_MAX], disk[KOVA_LAYOUT_PATH_MAX + 16];
    char info[KOVA_LAYOUT_PATH_MAX + 16], log[KOVA_LAYOUT_PATH_MAX + 16];
    char info_tmp[KOVA_LAYOUT_PATH_MAX + 32];
    char json[2 * KOVA_LAYOUT_PATH_MAX + 32];
    uint64_t vsize = 0, size;
    int rc;

    if (disk_bytes_out)
        *disk_bytes_out = 0;
    if (!spec || !kova_is_uuid_lower(spec->uuid))
        return kova_err(err, errlen, -EINVAL, "invalid instance id");
    if (spec->base_format != KOVA_DISK_RAW && spec->base_format != KOVA_DISK_QCOW2)
        return kova_err(err, errlen, -EINVAL, "base image format must be raw or qcow2");
    rc = kova_layout_base_path(l, spec->image_id, base, sizeof(base));
    if (rc < 0)
        return kova_err(err, errlen, rc, "invalid image id");
    if (kova_layout_instances_dir(l, inst_dir, sizeof(inst_dir)) < 0 ||
        kova_layout_instance_path(l, spec->uuid, KOVA_INSTANCE_DIR, dir, sizeof(dir)) < 0 ||
        kova_layout_instance_path(l, spec->uuid, KOVA_INSTANCE_DISK, final_disk,
                                  sizeof(final_disk)) < 0 ||
        lpath(part, sizeof(part), "%s/" PARTIAL_PREFIX "%s", inst_dir, spec->uuid) < 0 ||
        lpath(disk, sizeof(disk), "%s/disk", part) < 0 ||
        lpath(info, sizeof(info), "%s/disk.info", part) < 0 ||
        lpath(info_tmp, sizeof(info_tmp), "%s.tmp", info) < 0 ||
        lpath(log, sizeof(log), "%s/console.log", part) < 0)
        return kova_err(err, errlen, -ENAMETOOLONG, "path too long");

    struct stat st;
    if (lstat(dir, &st) == 0)
        return kova_err(err, errlen, -EEXIST, "%s exists", dir);
    if (stat(base, &st) < 0)
        return kova_err(err, errlen, -errno, "base image for %s not cached (%s): %s",
                        spec->image_id, base, strerror(errno));
    rc = image_virtual_size(base, spec->base_format, &vsize, err, errlen);
    if (rc < 0)
        return rc;
    if (spec->root_bytes != 0 && vsize > spec->root_bytes)
        return kova_err(err, errlen, KOVA_LAYOUT_EFLAVOR_DISK_SMALLER,
                        "Flavor's disk is too small for requested image. Flavor disk is %" PRIu64
                        " bytes, image is %" PRIu64 " bytes.",
                        spec->root_bytes, vsize);
    size = spec->root_bytes ? spec->root_bytes : vsize;

    /* disk.info names the disk where it will live: in instances/<uuid>/. */
    size_t pos = 0;
    if (json_str(json, sizeof(json), &pos, final_disk) < 0 ||
        pos + sizeof(": \"qcow2\"}\n") + 1 > sizeof(json))
        return kova_err(err, errlen, -ENAMETOOLONG, "disk.info does not fit");
    memmove(json + 1, json, pos + 1);
    json[0] = '{';
    strcat(json, ": \"qcow2\"}\n");

    rc = lmkdir(inst_dir, 0755);
    if (rc < 0)
        return kova_err(err, errlen, rc, "create %s: %s", inst_dir, strerror(-rc));
    if (mkdir(part, 0755) < 0) {
        rc = -errno;
        return kova_err(err, errlen, rc, "create %s: %s%s", part, strerror(-rc),
                        rc == -EEXIST ? " (another create of this instance is running, or a "
                                        "crashed one left it: kova_layout_sweep_partial)"
                                      : "");
    }

    char msg[256] = "";
    struct kova_qcow2_create_opts o = {
        .size = size,
        .backing_file = base,
        .backing_format = spec->base_format,
        .exclusive = 1,
    };
    rc = kova_qcow2_create(disk, &o, msg, sizeof(msg));
    if (rc < 0) {
        /* -EFBIG is reserved for FlavorDiskSmallerThanImage. */
        rc = rc == -EFBIG ? -EIO : rc;
        kova_err(err, errlen, rc, "create overlay %s: %s", disk, msg);
        goto undo_disk;
    }

    rc = lwrite_atomic(part, info, json, strlen(json), 0644);
    if (rc < 0) {
        rc = rc == -EFBIG ? -EIO : rc;
        kova_err(err, errlen, rc, "write %s: %s", info, strerror(-rc));
        goto undo_info;
    }

    int fd = open(log, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        rc = kova_err(err, errlen, -errno, "create %s: %s", log, strerror(errno));
        goto undo_info;
    }
    close(fd);

    if ((rc = lfsync_dir(part)) < 0) {
        kova_err(err, errlen, rc, "fsync %s: %s", part, strerror(-rc));
        goto undo_log;
    }
    /* NOREPLACE: an empty directory made meanwhile at instances/<uuid> is not overwritten. */
    if (renameat2(AT_FDCWD, part, AT_FDCWD, dir, RENAME_NOREPLACE) < 0) {
        rc = kova_err(err, errlen, -errno, "rename %s to %s: %s", part, dir, strerror(errno));
        goto undo_log;
    }
    if ((rc = lfsync_dir(inst_dir)) < 0) {
        kova_err(err, errlen, rc, "fsync %s: %s", inst_dir, strerror(-rc));
        goto undo_final;
    }
    if (disk_bytes_out)
        *disk_bytes_out = (size + 511) & ~(uint64_t)511;
    return 0;

undo_final:
    /* Moved into place but not durable: take it out again, the same files by their new names. */
    if (lpath(part, sizeof(part), "%s", dir) < 0 || lpath(disk, sizeof(disk), "%s/disk", dir) < 0 ||
        lpath(info, sizeof(info), "%s/disk.info", dir) < 0 ||
        lpath(info_tmp, sizeof(info_tmp), "%s.tmp", info) < 0 ||
        lpath(log, sizeof(log), "%s/console.log", dir) < 0)
        return rc; /* cannot happen: these are shorter than the .partial- names */
undo_log:
    unlink(log);
undo_info:
    unlink(info);
    unlink(info_tmp);
undo_disk:
    unlink(disk);
    rmdir(part);
    return rc;
}

/* The next entry of d into *e: 1, 0 at the end, or -errno of readdir (written to err naming
 * what, the directory). */
static int next_entry(DIR *d, const char *what, struct dirent **e, char *err, size_t errlen)
{
    errno = 0;
    *e = readdir(d);
    if (*e)
        return 1;
    return errno ? kova_err(err, errlen, -errno, "readdir %s: %s", what, strerror(errno)) : 0;
}

/* Removes everything in the directory `dfd` (which it closes), never following a symlink and
 * never crossing into another file system. */
static int remove_tree(int dfd, dev_t dev, int depth, char *err, size_t errlen)
{
    int rc = 0;
    if (depth > 64) {
        close(dfd);
        return kova_err(err, errlen, -ELOOP, "directory tree too deep");
    }
    DIR *d = fdopendir(dfd);
    if (!d) {
        rc = -errno;
        close(dfd);
        return kova_err(err, errlen, rc, "fdopendir: %s", strerror(-rc));
    }
    for (;;) {
        struct dirent *e;
        if ((rc = next_entry(d, "a directory", &e, err, errlen)) <= 0)
            break;
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT)
                continue;
            rc = kova_err(err, errlen, -errno, "stat %s: %s", e->d_name, strerror(errno));
            break;
        }
        if (S_ISDIR(st.st_mode)) {
            if (st.st_dev != dev) {
                rc = kova_err(err, errlen, -EXDEV, "%s is a mount point: not removed", e->d_name);
                break;
            }
            int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0) {
                rc = kova_err(err, errlen, -errno, "open %s: %s", e->d_name, strerror(errno));
                break;
            }
            rc = remove_tree(sub, dev, depth + 1, err, errlen);
            if (rc < 0)
                break;
            if (unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR) < 0) {
                rc = kova_err(err, errlen, -errno, "rmdir %s: %s", e->d_name, strerror(errno));
                break;
            }
        } else if (unlinkat(dirfd(d), e->d_name, 0) < 0 && errno != ENOENT) {
            rc = kova_err(err, errlen, -errno, "unlink %s: %s", e->d_name, strerror(errno));
            break;
        }
    }
    closedir(d);
    return rc;
}

/* Removes instances/<name> (a real directory, never a symlink) and its contents; pfd is the
 * instances directory. */
static int remove_entry(int pfd, const char *inst_dir, const char *name, char *err, size_t errlen)
{
    struct stat st;
    if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return kova_err(err, errlen, -errno, "%s/%s: %s", inst_dir, name, strerror(errno));
    if (S_ISLNK(st.st_mode))
        return kova_err(err, errlen, -ELOOP, "%s/%s is a symlink: refusing to remove", inst_dir,
                        name);
    if (!S_ISDIR(st.st_mode))
        return kova_err(err, errlen, -ENOTDIR, "%s/%s is not a directory", inst_dir, name);
    int dfd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return kova_err(err, errlen, -errno, "open %s/%s: %s", inst_dir, name, strerror(errno));
    struct stat dst;
    if (fstat(dfd, &dst) < 0 || dst.st_ino != st.st_ino || dst.st_dev != st.st_dev) {
        close(dfd);
        return kova_err(err, errlen, -EAGAIN, "%s/%s changed while being removed", inst_dir, name);
    }
    int rc = remove_tree(dfd, dst.st_dev, 0, err, errlen);
    if (rc < 0)
        return rc;
    if (unlinkat(pfd, name, AT_REMOVEDIR) < 0)
        return kova_err(err, errlen, -errno, "rmdir %s/%s: %s", inst_dir, name, strerror(errno));
    return 0;
}

static int open_instances_dir(const struct kova_layout *l, char *inst_dir, size_t len, char *err,
                              size_t errlen)
{
    if (kova_layout_instances_dir(l, inst_dir, len) < 0)
        return kova_err(err, errlen, -ENAMETOOLONG, "path too long");
    int pfd = open(inst_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (pfd < 0)
        return kova_err(err, errlen, -errno, "open %s: %s", inst_dir, strerror(errno));
    return pfd;
}

int kova_layout_remove_instance(const struct kova_layout *l, const char *uuid, char *err,
                                size_t errlen)
{
    char inst_dir[KOVA_LAYOUT_PATH_MAX];
    if (!kova_is_uuid_lower(uuid))
        return kova_err(err, errlen, -EINVAL, "invalid instance id");
    int pfd = open_instances_dir(l, inst_dir, sizeof(inst_dir), err, errlen);
    if (pfd < 0)
        return pfd;
    int rc = remove_entry(pfd, inst_dir, uuid, err, errlen);
    if (rc == 0 && fsync(pfd) < 0)
        rc = kova_err(err, errlen, -errno, "fsync %s: %s", inst_dir, strerror(errno));
    close(pfd);
    return rc;
}

int kova_layout_sweep_partial(const struct kova_layout *l, unsigned *removed, char *err,
                              size_t errlen)
{
    char inst_dir[KOVA_LAYOUT_PATH_MAX];
    const size_t plen = sizeof(PARTIAL_PREFIX) - 1;
    unsigned n = 0;
    int rc = 0;

    if (removed)
        *removed = 0;
    int pfd = open_instances_dir(l, inst_dir, sizeof(inst_dir), err, errlen);
    if (pfd == -ENOENT)
        return 0;
    if (pfd < 0)
        return pfd;
    int lfd = dup(pfd);
    DIR *d = lfd < 0 ? NULL : fdopendir(lfd);
    if (!d) {
        rc = kova_err(err, errlen, -errno, "open %s: %s", inst_dir, strerror(errno));
        if (lfd >= 0)
            close(lfd);
        close(pfd);
        return rc;
    }
    for (;;) {
        struct dirent *e;
        if ((rc = next_entry(d, inst_dir, &e, err, errlen)) <= 0)
            break;
        if (strncmp(e->d_name, PARTIAL_PREFIX, plen) != 0 || !kova_is_uuid_lower(e->d_name + plen))
            continue;
        struct stat st; /* only real directories (remove_entry would refuse the rest) */
        if (fstatat(pfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
            continue;
        rc = remove_entry(pfd, inst_dir, e->d_name, err, errlen);
        if (rc < 0)
            break;
        n++;
    }
    closedir(d);
    if (rc == 0 && n > 0 && fsync(pfd) < 0)
        rc = kova_err(err, errlen, -errno, "fsync %s: %s", inst_dir, strerror(errno));
    close(pfd);
    if (removed)
        *removed = n;
    return rc;
}

static int cmp_uuid(const void *a, const void *b)
{
    return strcmp(a, b);
}

int kova_layout_list_instances(const struct kova_layout *l, char (**uuids)[KOVA_UUID_STRLEN + 1],
                               size_t *count, char *err, size_t errlen)
{
    char inst_dir[KOVA_LAYOUT_PATH_MAX];
    char(*v)[KOVA_UUID_STRLEN + 1] = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;

    *uuids = NULL;
    *count = 0;
    if (kova_layout_instances_dir(l, inst_dir, sizeof(inst_dir)) < 0)
        return kova_err(err, errlen, -ENAMETOOLONG, "path too long");
    DIR *d = opendir(inst_dir);
    if (!d) {
        if (errno == ENOENT)
            return 0;
        return kova_err(err, errlen, -errno, "open %s: %s", inst_dir, strerror(errno));
    }
    for (;;) {
        struct dirent *e;
        if ((rc = next_entry(d, inst_dir, &e, err, errlen)) <= 0)
            break;
        if (!kova_is_uuid_lower(e->d_name))
            continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            void *nv = realloc(v, ncap * sizeof(*v));
            if (!nv) {
                rc = kova_err(err, errlen, -ENOMEM, "out of memory");
                break;
            }
            v = nv;
            cap = ncap;
        }
        memcpy(v[n], e->d_name, KOVA_UUID_STRLEN + 1);
        n++;
    }
    closedir(d);
    if (rc < 0) {
        free(v);
        return rc;
    }
    if (n)
        qsort(v, n, sizeof(*v), cmp_uuid);
    *uuids = v;
    *count = n;
    return 0;
}
