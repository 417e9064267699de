/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kova metadata: the vfat config drive (kova/metadata.h), built as Nova's (64 MiB, label
 * "config-2") with Debian's dosfstools and mtools, without a mount: the files are written into a
 * temporary dir beside the image, mkfs.vfat creates IMAGE.tmp, mcopy -s copies the tree in, the
 * image is synced and renamed into place; the temporary dir and a failed IMAGE.tmp are removed.
 */
#include "kova/metadata.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kova/common.h"

#define MKFS_VFAT "/sbin/mkfs.vfat"
#define MCOPY     "/usr/bin/mcopy"

/* Whether p is a relative path of components [A-Za-z0-9_.-] not starting with '.'. */
static bool valid_rel_path(const char *p)
{
    size_t n = strnlen(p, KOVA_MD_FILE_PATH);
    if (n == 0 || n >= KOVA_MD_FILE_PATH)
        return false;
    bool start = true;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '/') {
            if (start)
                return false; /* leading '/' or "//" */
            start = true;
            continue;
        }
        if (start && c == '.')
            return false;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
        start = false;
    }
    return !start; /* not ending with '/' */
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    if (remove(path) && errno != ENOENT)
        kova_log(KOVA_LOG_WARNING, "config drive: cannot remove %s: %s", path, strerror(errno));
    return 0;
}

/* Removes the temporary dir we made and everything in it (no symlink is followed). */
static void rm_tree(const char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Creates dir/path's parent directories and the file with data. */
static int write_file(const char *dir, const struct kova_md_file *f, char *err, size_t errlen)
{
    char p[PATH_MAX];
    if (snprintf(p, sizeof(p), "%s/%s", dir, f->path) >= (int)sizeof(p))
        return kova_err(err, errlen, -ENAMETOOLONG, "config drive: path too long: %s", f->path);
    size_t base = strlen(dir) + 1;
    for (char *s = p + base; (s = strchr(s, '/')); s++) {
        *s = '\0';
        int r = mkdir(p, 0700);
        *s = '/';
        if (r && errno != EEXIST)
            return kova_err(err, errlen, -errno, "config drive: mkdir %s: %s", f->path,
                            strerror(errno));
    }
    int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        if (e == EEXIST || e == EISDIR || e == ENOTDIR)
            return kova_err(err, errlen, -EINVAL, "config drive: %s given twice or as a dir",
                            f->path);
        return kova_err(err, errlen, -e, "config drive: create %s: %s", f->path, strerror(e));
    }
    int rc = kova_write_all(fd, f->data, f->len);
    if (close(fd) && !rc)
        rc = -errno;
    if (rc)
        return kova_err(err, errlen, rc, "config drive: write %s: %s", f->path, strerror(-rc));
    return 0;
}

/* Runs argv (argv[0] an absolute path) with stdin /dev/null, stdout and stderr to the file
 * outpath, a clean environment; 0 when it exits 0, else -EIO with err saying why. */
static int run_tool(const char *const *argv, const char *outpath, char *err, size_t errlen)
{
    static const char *const envp[] = {"MTOOLS_SKIP_CHECK=1", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                                       "LC_ALL=C", NULL};
    const char *tool = strrchr(argv[0], '/') + 1;
    int out = open(outpath, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (out < 0) {
        int e = errno;
        return kova_err(err, errlen, -e, "config drive: %s: %s", outpath, strerror(e));
    }
    pid_t pid = kova_spawn(argv, envp, out, false);
    close(out);
    if (pid < 0)
        return kova_err(err, errlen, (int)pid, "config drive: cannot run %s: %s", tool,
                        strerror((int)-pid));
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return kova_err(err, errlen, -errno, "config drive: waitpid %s: %s", tool,
                            strerror(errno));
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    char line[200];
    kova_file_last_line(outpath, line, sizeof(line));
    if (WIFEXITED(st))
        return kova_err(err, errlen, -EIO, "config drive: %s exited %d: %s", tool, WEXITSTATUS(st),
                        line);
    return kova_err(err, errlen, -EIO, "config drive: %s killed by signal %d", tool, WTERMSIG(st));
}

static int fsync_path(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) ? -errno : 0;
    close(fd);
    return rc;
}

int kova_md_write_config_drive(const char *image_path, const struct kova_md_file *files, size_t n,
                               char *err, size_t errlen)
{
    if (!image_path || !*image_path || strlen(image_path) > PATH_MAX - 64 ||
        image_path[strlen(image_path) - 1] == '/')
        return kova_err(err, errlen, -EINVAL, "config drive: bad image path");
    unsigned long long total = 0;
    for (size_t i = 0; i < n; i++) {
        if (!valid_rel_path(files[i].path) || (files[i].len && !files[i].data))
            return kova_err(err, errlen, -EINVAL, "config drive: bad file path \"%.*s\"",
                            (int)strnlen(files[i].path, KOVA_MD_FILE_PATH - 1), files[i].path);
        total += files[i].len;
    }
    if (total > KOVA_MD_DRIVE_KIB * 1024ull)
        return kova_err(err, errlen, -ENOSPC, "config drive: %llu bytes of files do not fit",
                        total);

    /* "./" before a relative path, so that no argument starts with '-' */
    const char *pre = image_path[0] == '/' ? "" : "./";
    char img[PATH_MAX], tmpimg[PATH_MAX], dir[PATH_MAX], tmpdir[PATH_MAX], outpath[PATH_MAX];
    /* (image_path is at most PATH_MAX - 64 bytes: none of these is cut) */
    if (snprintf(img, sizeof(img), "%s%s", pre, image_path) >= (int)sizeof(img) ||
        snprintf(tmpimg, sizeof(tmpimg), "%s.tmp", img) >= (int)sizeof(tmpimg) ||
        snprintf(dir, sizeof(dir), "%s", img) >= (int)sizeof(dir))
        return kova_err(err, errlen, -ENAMETOOLONG, "config drive: image path too long");
    char *slash = strrchr(dir, '/');
    const char *base = img + (slash - dir) + 1;
    if (slash == dir)
        dir[1] = '\0'; /* "/disk.config" */
    else
        *slash = '\0';
    if (snprintf(tmpdir, sizeof(tmpdir), "%s/.%s.files.XXXXXX", dir, base) >= (int)sizeof(tmpdir))
        return kova_err(err, errlen, -ENAMETOOLONG, "config drive: image path too long");
    if (!mkdtemp(tmpdir))
        return kova_err(err, errlen, -errno, "config drive: mkdtemp in %s: %s", dir,
                        strerror(errno));
    if (snprintf(outpath, sizeof(outpath), "%s/.out", tmpdir) >= (int)sizeof(outpath)) {
        rm_tree(tmpdir);
        return kova_err(err, errlen, -ENAMETOOLONG, "config drive: image path too long");
    }

    int rc = 0;
    const char **argv = NULL;
    bool made_img = false;
    for (size_t i = 0; i < n; i++)
        if ((rc = write_file(tmpdir, &files[i], err, errlen)))
            goto out;

    if (unlink(tmpimg) && errno != ENOENT) { /* a crash's leftover */
        rc = kova_err(err, errlen, -errno, "config drive: unlink %s: %s", tmpimg, strerror(errno));
        goto out;
    }
    char kib[16];
    snprintf(kib, sizeof(kib), "%u", KOVA_MD_DRIVE_KIB);
    const char *mkfs[] = {MKFS_VFAT, "-n", KOVA_MD_LABEL, "-C", tmpimg, kib, NULL};
    made_img = true;
    if ((rc = run_tool(mkfs, outpath, err, errlen)))
        goto out;
    if (chmod(tmpimg, 0644)) {
        rc = kova_err(err, errlen, -errno, "config drive: chmod: %s", strerror(errno));
        goto out;
    }

    /* mcopy -s -Q -i IMAGE.tmp TMPDIR/<each top-level name> ::/ */
    argv = calloc(n + 8, sizeof(*argv));
    char **tops = calloc(n + 1, sizeof(*tops));
    if (!argv || !tops) {
        free(tops);
        rc = kova_err(err, errlen, -ENOMEM, "config drive: out of memory");
        goto out;
    }
    size_t na = 0, nt = 0;
    argv[na++] = MCOPY;
    argv[na++] = "-s";
    argv[na++] = "-Q";
    argv[na++] = "-i";
    argv[na++] = tmpimg;
    for (size_t i = 0; i < n && !rc; i++) {
        size_t len = strcspn(files[i].path, "/");
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcspn(files[j].path, "/") == len && !memcmp(files[j].path, files[i].path, len);
        if (seen)
            continue;
        size_t sz = strlen(tmpdir) + len + 2;
        if (!(tops[nt] = malloc(sz))) {
            rc = kova_err(err, errlen, -ENOMEM, "config drive: out of memory");
            break;
        }
        snprintf(tops[nt], sz, "%s/%.*s", tmpdir, (int)len, files[i].path);
        argv[na++] = tops[nt++];
    }
    argv[na++] = "::/";
    argv[na] = NULL;
    if (!rc && nt)
        rc = run_tool(argv, outpath, err, errlen);
    for (size_t i = 0; i < nt; i++)
        free(tops[i]);
    free(tops);
    if (rc)
        goto out;

    if ((rc = fsync_path(tmpimg, O_RDONLY))) {
        kova_err(err, errlen, rc, "config drive: fsync: %s", strerror(-rc));
        goto out;
    }
    if (rename(tmpimg, img)) {
        rc = kova_err(err, errlen, -errno, "config drive: rename to %s: %s", img, strerror(errno));
        goto out;
    }
    made_img = false;
    fsync_path(dir, O_RDONLY | O_DIRECTORY); /* best effort: the rename's directory entry */
out:
    free(argv);
    if (made_img)
        unlink(tmpimg);
    rm_tree(tmpdir);
    return rc;
}
