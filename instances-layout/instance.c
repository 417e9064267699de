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
        return lerr(err, errlen, rc == -EFBIG ? -EIO : rc, "base image %s (%s): %s", base,
                    kova_disk_format_name(fmt), msg);
    *size = kova_disk_size(d);
    kova_disk_close(d);
    return 0;
}

int kova_layout_create_instance(const struct kova_layout *l, const struct kova_instance_spec *spec,
                                uint64_t *disk_bytes_out, char *err, size_t errlen)
{
    char dir[KOVA_LAYOUT_PATH_MAX], disk[KOVA_LAYOUT_PATH_MAX], info[KOVA_LAYOUT_PATH_MAX];
    char log[KOVA_LAYOUT_PATH_MAX], base[KOVA_LAYOUT_PATH_MAX], inst_dir[KOVA_LAYOUT_PATH_MAX];
    char json[2 * KOVA_LAYOUT_PATH_MAX + 32];
    uint64_t vsize = 0, size;
    int rc;

    if (disk_bytes_out)
        *disk_bytes_out = 0;
    if (!spec || !kova_uuid_valid(spec->uuid))
        return lerr(err, errlen, -EINVAL, "invalid instance id");
    if (spec->base_format != KOVA_DISK_RAW && spec->base_format != KOVA_DISK_QCOW2)
        return lerr(err, errlen, -EINVAL, "base image format must be raw or qcow2");
    rc = kova_layout_base_path(l, spec->image_id, base, sizeof(base));
    if (rc < 0)
        return lerr(err, errlen, rc, "invalid image id");
    if (kova_layout_instances_dir(l, inst_dir, sizeof(inst_dir)) < 0 ||
        kova_layout_instance_path(l, spec->uuid, KOVA_INSTANCE_DIR, dir, sizeof(dir)) < 0 ||
        kova_layout_instance_path(l, spec->uuid, KOVA_INSTANCE_DISK, disk, sizeof(disk)) < 0 ||
        kova_layout_instance_path(l, spec->uuid, KOVA_INSTANCE_DISK_INFO, info, sizeof(info)) < 0 ||
        kova_layout_instance_path(l, spec->uuid, KOVA_INSTANCE_CONSOLE_LOG, log, sizeof(log)) < 0)
        return lerr(err, errlen, -ENAMETOOLONG, "path too long");

    struct stat st;
    if (stat(base, &st) < 0)
        return lerr(err, errlen, -errno, "base image for %s not cached (%s): %s", spec->image_id,
                    base, strerror(errno));
    rc = image_virtual_size(base, spec->base_format, &vsize, err, errlen);
    if (rc < 0)
        return rc;
    if (spec->root_bytes != 0 && vsize > spec->root_bytes)
        return lerr(err, errlen, KOVA_LAYOUT_EFLAVOR_DISK_SMALLER,
                    "Flavor's disk is too small for requested image. Flavor disk is %" PRIu64
                    " bytes, image is %" PRIu64 " bytes.",
                    spec->root_bytes, vsize);
    size = spec->root_bytes ? spec->root_bytes : vsize;

    size_t pos = 0;
    if (json_str(json, sizeof(json), &pos, disk) < 0 ||
        pos + sizeof(": \"qcow2\"}\n") + 1 > sizeof(json))
        return lerr(err, errlen, -ENAMETOOLONG, "disk.info does not fit");
    memmove(json + 1, json, pos + 1);
    json[0] = '{';
    strcat(json, ": \"qcow2\"}\n");

    rc = lmkdir(inst_dir, 0755);
    if (rc < 0)
        return lerr(err, errlen, rc, "create %s: %s", inst_dir, strerror(-rc));
    if (mkdir(dir, 0755) < 0)
        return lerr(err, errlen, -errno, "create %s: %s", dir, strerror(errno));

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
        lerr(err, errlen, rc == -EFBIG ? -EINVAL : rc, "create overlay %s: %s", disk, msg);
        rc = rc == -EFBIG ? -EINVAL : rc;
        goto undo_disk;
    }

    rc = lwrite_atomic(dir, info, json, strlen(json), 0644);
    if (rc < 0) {
        lerr(err, errlen, rc, "write %s: %s", info, strerror(-rc));
        goto undo_info;
    }

    int fd = open(log, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        rc = lerr(err, errlen, -errno, "create %s: %s", log, strerror(errno));
        goto undo_info;
    }
    close(fd);

    if ((rc = lfsync_dir(dir)) < 0 || (rc = lfsync_dir(inst_dir)) < 0) {
        lerr(err, errlen, rc, "fsync %s: %s", dir, strerror(-rc));
        goto undo_log;
    }
    if (disk_bytes_out)
        *disk_bytes_out = (size + 511) & ~(uint64_t)511;
    return 0;

undo_log:
    unlink(log);
undo_info:
    unlink(info);
    {
        char tmp[KOVA_LAYOUT_PATH_MAX + 8];
        if (lpath(tmp, sizeof(tmp), "%s.tmp", info) == 0)
            unlink(tmp);
    }
undo_disk:
    unlink(disk);
    rmdir(dir);
    return rc;
}

/* Removes everything in the directory `dfd` (which it closes), never following a symlink and
 * never crossing into another file system. */
static int remove_tree(int dfd, dev_t dev, int depth, char *err, size_t errlen)
{
    int rc = 0;
    if (depth > 64) {
        close(dfd);
        return lerr(err, errlen, -ELOOP, "directory tree too deep");
    }
    DIR *d = fdopendir(dfd);
    if (!d) {
        rc = -errno;
        close(dfd);
        return lerr(err, errlen, rc, "fdopendir: %s", strerror(-rc));
    }
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
            if (errno)
                rc = lerr(err, errlen, -errno, "readdir: %s", strerror(errno));
            break;
        }
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT)
                continue;
            rc = lerr(err, errlen, -errno, "stat %s: %s", e->d_name, strerror(errno));
            break;
        }
        if (S_ISDIR(st.st_mode)) {
            if (st.st_dev != dev) {
                rc = lerr(err, errlen, -EXDEV, "%s is a mount point: not removed", e->d_name);
                break;
            }
            int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0) {
                rc = lerr(err, errlen, -errno, "open %s: %s", e->d_name, strerror(errno));
                break;
            }
            rc = remove_tree(sub, dev, depth + 1, err, errlen);
            if (rc < 0)
                break;
            if (unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR) < 0) {
                rc = lerr(err, errlen, -errno, "rmdir %s: %s", e->d_name, strerror(errno));
                break;
            }
        } else if (unlinkat(dirfd(d), e->d_name, 0) < 0 && errno != ENOENT) {
            rc = lerr(err, errlen, -errno, "unlink %s: %s", e->d_name, strerror(errno));
            break;
        }
    }
    closedir(d);
    return rc;
}

int kova_layout_remove_instance(const struct kova_layout *l, const char *uuid, char *err,
                                size_t errlen)
{
    char inst_dir[KOVA_LAYOUT_PATH_MAX];
    if (!kova_uuid_valid(uuid))
        return lerr(err, errlen, -EINVAL, "invalid instance id");
    if (kova_layout_instances_dir(l, inst_dir, sizeof(inst_dir)) < 0)
        return lerr(err, errlen, -ENAMETOOLONG, "path too long");
    int pfd = open(inst_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (pfd < 0)
        return lerr(err, errlen, -errno, "open %s: %s", inst_dir, strerror(errno));
    int rc;
    struct stat st;
    if (fstatat(pfd, uuid, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        rc = lerr(err, errlen, -errno, "%s/%s: %s", inst_dir, uuid, strerror(errno));
        goto out;
    }
    if (S_ISLNK(st.st_mode)) {
        rc = lerr(err, errlen, -ELOOP, "%s/%s is a symlink: refusing to remove", inst_dir, uuid);
        goto out;
    }
    if (!S_ISDIR(st.st_mode)) {
        rc = lerr(err, errlen, -ENOTDIR, "%s/%s is not a directory", inst_dir, uuid);
        goto out;
    }
    int dfd = openat(pfd, uuid, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0) {
        rc = lerr(err, errlen, -errno, "open %s/%s: %s", inst_dir, uuid, strerror(errno));
        goto out;
    }
    struct stat dst;
    if (fstat(dfd, &dst) < 0 || dst.st_ino != st.st_ino || dst.st_dev != st.st_dev) {
        close(dfd);
        rc = lerr(err, errlen, -EAGAIN, "%s/%s changed while being removed", inst_dir, uuid);
        goto out;
    }
    rc = remove_tree(dfd, dst.st_dev, 0, err, errlen);
    if (rc < 0)
        goto out;
    if (unlinkat(pfd, uuid, AT_REMOVEDIR) < 0) {
        rc = lerr(err, errlen, -errno, "rmdir %s/%s: %s", inst_dir, uuid, strerror(errno));
        goto out;
    }
    rc = fsync(pfd) < 0 ? -errno : 0;
out:
    close(pfd);
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
        return lerr(err, errlen, -ENAMETOOLONG, "path too long");
    DIR *d = opendir(inst_dir);
    if (!d) {
        if (errno == ENOENT)
            return 0;
        return lerr(err, errlen, -errno, "open %s: %s", inst_dir, strerror(errno));
    }
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
            if (errno)
                rc = lerr(err, errlen, -errno, "readdir %s: %s", inst_dir, strerror(errno));
            break;
        }
        if (!kova_uuid_valid(e->d_name))
            continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            void *nv = realloc(v, ncap * sizeof(*v));
            if (!nv) {
                rc = lerr(err, errlen, -ENOMEM, "out of memory");
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
