/* SPDX-License-Identifier: Apache-2.0 */
/* The vfat config drive (kova_md_write_config_drive) checked with real peers: blkid sees
 * LABEL=config-2 TYPE=vfat; mdir/mtype read every file back byte-identical; as root, a real
 * read-only loop mount lists openstack/latest (skipped, saying so, where loop devices do not
 * work). Failures (files too big, the disk filling up in mcopy, the target a directory, a missing
 * or read-only directory, bad paths) leave no .tmp and no temporary dir, and the old drive as it
 * was. */
#include "kova/metadata.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "../common/kova_test.h"

#define UUID "0d9b3f6e-1a2b-4c3d-8e4f-5a6b7c8d9e0f"
#define KEY  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITestKeyOnly k@host"

/* The output of a shell command line (paths in it are the test's own mkdtemp paths), malloc'd;
 * *rc its exit status. */
static char *run(const char *cmd, size_t *len, int *rc)
{
    FILE *p = popen(cmd, "r");
    if (!p) {
        *rc = -1;
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += r;
        if (cap - n < 2) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    int st = pclose(p);
    *rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
    if (buf)
        buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

/* The names in dir, sorted, one a line. */
static void list_dir(const char *dir, char *out, size_t outlen)
{
    out[0] = '\0';
    struct dirent **ents;
    int n = scandir(dir, &ents, NULL, alphasort);
    for (int i = 0; i < n; i++) {
        if (strcmp(ents[i]->d_name, ".") && strcmp(ents[i]->d_name, "..")) {
            strncat(out, ents[i]->d_name, outlen - strlen(out) - 2);
            strcat(out, "\n");
        }
        free(ents[i]);
    }
    if (n >= 0)
        free(ents);
}

static void expect_dir(const char *dir, const char *want, const char *when)
{
    char got[1024];
    list_dir(dir, got, sizeof(got));
    if (strcmp(got, want)) {
        fprintf(stderr, "%s: %s holds \"%s\", wanted \"%s\"\n", when, dir, got, want);
        failures++;
    }
}

/* The whole file (also /proc files, whose size reads 0), malloc'd and NUL-terminated. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0, r;
    char *b = malloc(cap);
    while (b && (r = fread(b + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n < 2) {
            char *nb = realloc(b, cap * 2);
            if (!nb) {
                free(b);
                b = NULL;
                break;
            }
            b = nb;
            cap *= 2;
        }
    }
    bool bad = ferror(f);
    fclose(f);
    if (b && bad) {
        free(b);
        return NULL;
    }
    if (b) {
        b[n] = '\0';
        *len = n;
    }
    return b;
}

static const struct kova_md_file *find(const struct kova_md_file *f, size_t n, const char *p)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(f[i].path, p))
            return &f[i];
    return NULL;
}

/* Every file read back with mtype is byte-identical. */
static void check_with_mtools(const char *img, const struct kova_md_file *f, size_t n)
{
    char cmd[1024];
    int rc;
    snprintf(cmd, sizeof(cmd), "mdir -b -i '%s' ::/openstack/latest/", img);
    char *s = run(cmd, NULL, &rc);
    CHECK(rc == 0 && s && strstr(s, "::/openstack/latest/meta_data.json") &&
          strstr(s, "::/openstack/latest/user_data") &&
          strstr(s, "::/openstack/latest/network_data.json") &&
          strstr(s, "::/openstack/latest/vendor_data.json") &&
          strstr(s, "::/openstack/latest/vendor_data2.json"));
    if (rc || !s)
        fprintf(stderr, "mdir: %d: %s\n", rc, s ? s : "");
    free(s);
    snprintf(cmd, sizeof(cmd), "mdir -b -i '%s' ::/", img);
    s = run(cmd, NULL, &rc);
    CHECK(rc == 0 && s && !strcmp(s, "::/ec2/\n::/openstack/\n"));
    free(s);
    unsigned same = 0;
    for (size_t i = 0; i < n; i++) {
        snprintf(cmd, sizeof(cmd), "mtype -i '%s' '::/%s'", img, f[i].path);
        size_t len;
        s = run(cmd, &len, &rc);
        if (rc == 0 && s && len == f[i].len && !memcmp(s, f[i].data, len))
            same++;
        else
            fprintf(stderr, "mtype %s: rc %d, %zu bytes, wanted %zu\n", f[i].path, rc, s ? len : 0,
                    f[i].len);
        free(s);
    }
    CHECK(same == n);
}

static void check_blkid(const char *img)
{
    char cmd[1024];
    int rc;
    snprintf(cmd, sizeof(cmd), "blkid -c /dev/null -o export '%s'", img);
    char *s = run(cmd, NULL, &rc);
    CHECK(rc == 0 && s && strstr(s, "\nLABEL=config-2\n") && strstr(s, "\nTYPE=vfat\n"));
    if (rc || !s || !strstr(s, "LABEL=config-2"))
        fprintf(stderr, "blkid: %d: %s\n", rc, s ? s : "");
    free(s);
    /* and dosfstools' own checker finds the filesystem clean */
    snprintf(cmd, sizeof(cmd), "fsck.vfat -n '%s' 2>&1", img);
    s = run(cmd, NULL, &rc);
    CHECK(rc == 0);
    if (rc)
        fprintf(stderr, "fsck.vfat: %d: %s\n", rc, s ? s : "");
    free(s);
}

/* Whether this kernel knows vfat (/proc/filesystems, after an attempt to load it). */
static bool kernel_has_vfat(void)
{
    int rc;
    free(run("modprobe -q vfat 2>/dev/null", NULL, &rc));
    size_t len;
    char *s = slurp("/proc/filesystems", &len);
    bool yes = s && strstr(s, "\tvfat\n");
    free(s);
    return yes;
}

/* As root where loop devices work: a real read-only mount. */
static void check_mount(const char *img, const char *mnt, const struct kova_md_file *f, size_t n)
{
    int rc;
    if (geteuid() != 0) {
        printf("metadata.config_drive: not root: the loop mount is skipped (mtools checked)\n");
        return;
    }
    char *s = run("losetup -f 2>&1", NULL, &rc);
    free(s);
    if (rc != 0) {
        printf("metadata.config_drive: losetup -f fails here: the loop mount is skipped "
               "(mtools checked)\n");
        return;
    }
    if (!kernel_has_vfat()) {
        printf("metadata.config_drive: this kernel has no vfat (not in /proc/filesystems, no "
               "module to load): the loop mount is skipped (mtools, blkid, fsck.vfat checked)\n");
        return;
    }
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "mount -o loop,ro -t vfat '%s' '%s' 2>&1", img, mnt);
    s = run(cmd, NULL, &rc);
    if (rc != 0) {
        printf("metadata.config_drive: the loop mount fails here (%s): skipped (mtools "
               "checked)\n",
               s ? s : "");
        free(s);
        return;
    }
    free(s);
    char p[1024];
    snprintf(p, sizeof(p), "%s/openstack/latest", mnt);
    expect_dir(p,
               "meta_data.json\nnetwork_data.json\nuser_data\nvendor_data.json\n"
               "vendor_data2.json\n",
               "mounted");
    snprintf(p, sizeof(p), "%s/ec2/latest", mnt);
    expect_dir(p, "meta-data.json\nuser-data\n", "mounted");
    unsigned same = 0;
    for (size_t i = 0; i < n; i++) {
        snprintf(p, sizeof(p), "%s/%s", mnt, f[i].path);
        size_t len;
        char *b = slurp(p, &len);
        same += b && len == f[i].len && !memcmp(b, f[i].data, len);
        free(b);
    }
    CHECK(same == n);
    snprintf(cmd, sizeof(cmd), "umount '%s'", mnt);
    s = run(cmd, NULL, &rc);
    CHECK(rc == 0);
    free(s);
    printf("metadata.config_drive: mounted read-only through a loop device: %zu files checked\n",
           n);
}

int main(void)
{
    setenv("MTOOLS_SKIP_CHECK", "1", 1);
    char dir[256], mnt[300], img[400], err[256];
    kt_mkdtemp(dir, sizeof(dir), "kova-md-drive");
    snprintf(mnt, sizeof(mnt), "%s/mnt", dir);
    char work[300];
    snprintf(work, sizeof(work), "%s/inst", dir);
    CHECK(mkdir(mnt, 0700) == 0 && mkdir(work, 0700) == 0);
    snprintf(img, sizeof(img), "%s/disk.config", work);

    static const struct kova_md_key key = {"k", "ssh", KEY};
    static const struct kova_md_nic nic = {.port_id = "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9",
                                           .mac = "fa:16:3e:12:34:56",
                                           .network_id = "11111111-2222-4333-8444-555555555555",
                                           .ip = 0x0a000005,
                                           .gateway = 0x0a000001,
                                           .prefix = 24,
                                           .dns = {0x0a000001},
                                           .ndns = 1,
                                           .mtu = 1500};
    /* user data with a NUL, high bytes and CRLF: "#!/bin/sh\r\n\0\xff\xfe" */
    struct kova_md_instance in = {.uuid = UUID,
                                  .name = "vm1",
                                  .project_id = "p",
                                  .availability_zone = "nova",
                                  .image_id = "a1b2c3d4-0000-4000-8000-000000000001",
                                  .flavor_name = "m1.small",
                                  .seq = 7,
                                  .keys = &key,
                                  .nkeys = 1,
                                  .meta_json = "{}",
                                  .user_data_b64 = "IyEvYmluL3NoDQoA//4=",
                                  .nics = &nic,
                                  .nnics = 1};
    struct kova_md_file *f = NULL;
    size_t n = 0;
    CHECK(kova_md_config_drive_files(&in, &f, &n) == 0 && n > 0);

    /* build it */
    int r = kova_md_write_config_drive(img, f, n, err, sizeof(err));
    if (r)
        fprintf(stderr, "write_config_drive: %d %s\n", r, err);
    CHECK(r == 0);
    struct stat st;
    CHECK(stat(img, &st) == 0 && st.st_size == 64 * 1024 * 1024 && (st.st_mode & 0777) == 0644);
    expect_dir(work, "disk.config\n", "after a build");
    check_blkid(img);
    check_with_mtools(img, f, n);
    const struct kova_md_file *ud = find(f, n, "openstack/latest/user_data");
    CHECK(ud && ud->len == 14 && !memcmp(ud->data, "#!/bin/sh\r\n\0\xff\xfe", 14));
    check_mount(img, mnt, f, n);

    /* rebuilt over the old one: the new content (a fresh random_seed) */
    struct kova_md_file *f2 = NULL;
    size_t n2 = 0;
    CHECK(kova_md_config_drive_files(&in, &f2, &n2) == 0 && n2 == n);
    CHECK(kova_md_write_config_drive(img, f2, n2, err, sizeof(err)) == 0);
    expect_dir(work, "disk.config\n", "after a rebuild");
    check_with_mtools(img, f2, n2);
    size_t oldlen;
    char *old = slurp(img, &oldlen);
    CHECK(old && oldlen == 64u * 1024 * 1024);

    /* failures: the old drive stays as it was, nothing else left behind */
    struct kova_md_file big[2] = {{.path = "openstack/latest/meta_data.json"},
                                  {.path = "openstack/latest/user_data"}};
    big[0].data = (char *)"{}";
    big[0].len = 2;
    big[1].len = 65u * 1024 * 1024;
    big[1].data = calloc(1, big[1].len);
    CHECK(big[1].data != NULL);
    err[0] = '\0';
    r = kova_md_write_config_drive(img, big, 2, err, sizeof(err));
    CHECK(r == -ENOSPC && err[0]);
    expect_dir(work, "disk.config\n", "after too big files");
    /* fits the count but not the filesystem: mcopy fails after mkfs */
    big[1].len = 64u * 1024 * 1024 - 4096;
    err[0] = '\0';
    r = kova_md_write_config_drive(img, big, 2, err, sizeof(err));
    printf("metadata.config_drive: a full disk: %d: %s\n", r, err);
    CHECK(r == -EIO && strstr(err, "mcopy"));
    expect_dir(work, "disk.config\n", "after a full disk");
    free(big[1].data);
    size_t nowlen;
    char *now = slurp(img, &nowlen);
    CHECK(now && old && nowlen == oldlen && !memcmp(now, old, oldlen));
    free(now);
    free(old);

    /* the target a (non-empty) directory: rename fails at the very end */
    char asdir[420];
    snprintf(asdir, sizeof(asdir), "%s/d.config", work);
    CHECK(mkdir(asdir, 0700) == 0);
    char keep[440];
    snprintf(keep, sizeof(keep), "%s/keep", asdir);
    FILE *k = fopen(keep, "w");
    CHECK(k && fclose(k) == 0);
    err[0] = '\0';
    r = kova_md_write_config_drive(asdir, f, n, err, sizeof(err));
    printf("metadata.config_drive: the target a directory: %d: %s\n", r, err);
    CHECK(r < 0 && strstr(err, "rename"));
    expect_dir(work, "d.config\ndisk.config\n", "after a failed rename");
    expect_dir(asdir, "keep\n", "after a failed rename");

    /* a missing directory */
    char missing[440];
    snprintf(missing, sizeof(missing), "%s/nope/disk.config", work);
    CHECK(kova_md_write_config_drive(missing, f, n, err, sizeof(err)) == -ENOENT);

    /* a read-only directory: chmod for a user, a read-only tmpfs for root */
    char ro[320];
    snprintf(ro, sizeof(ro), "%s/ro", dir);
    CHECK(mkdir(ro, 0500) == 0);
    bool ro_ok = geteuid() != 0 || mount("tmpfs", ro, "tmpfs", MS_RDONLY, "size=1m") == 0;
    if (ro_ok) {
        char rimg[340];
        snprintf(rimg, sizeof(rimg), "%s/disk.config", ro);
        r = kova_md_write_config_drive(rimg, f, n, err, sizeof(err));
        printf("metadata.config_drive: a read-only dir: %d: %s\n", r, err);
        CHECK(r == -EROFS || r == -EACCES);
        expect_dir(ro, "", "after a read-only dir");
        if (geteuid() == 0)
            CHECK(umount(ro) == 0);
    } else {
        printf("metadata.config_drive: cannot mount a read-only tmpfs: that case skipped\n");
    }

    /* bad paths: refused before anything is made */
    static const char *const badpaths[] = {"../x",   "/abs", ".hidden", "a//b", "a/",
                                           "a/../b", "a/.b", "a b",     "a\\b", ""};
    for (size_t i = 0; i < sizeof(badpaths) / sizeof(badpaths[0]); i++) {
        struct kova_md_file bf = {.data = (char *)"x", .len = 1};
        snprintf(bf.path, sizeof(bf.path), "%s", badpaths[i]);
        if (kova_md_write_config_drive(img, &bf, 1, err, sizeof(err)) != -EINVAL) {
            fprintf(stderr, "path \"%s\" accepted\n", badpaths[i]);
            failures++;
        }
    }
    /* a path given twice */
    struct kova_md_file twice[2] = {{.path = "a/b", .data = (char *)"1", .len = 1},
                                    {.path = "a/b", .data = (char *)"2", .len = 1}};
    CHECK(kova_md_write_config_drive(img, twice, 2, err, sizeof(err)) == -EINVAL);
    CHECK(kova_md_write_config_drive("", f, n, err, sizeof(err)) == -EINVAL);
    CHECK(kova_md_write_config_drive("x/", f, n, err, sizeof(err)) == -EINVAL);
    expect_dir(work, "d.config\ndisk.config\n", "after bad paths");
    check_with_mtools(img, f2, n2);

    /* a relative image path starting with '-', in the current directory */
    CHECK(chdir(work) == 0);
    CHECK(kova_md_write_config_drive("-n.config", f, n, err, sizeof(err)) == 0);
    expect_dir(work, "-n.config\nd.config\ndisk.config\n", "after a relative build");
    check_blkid("./-n.config");
    CHECK(chdir("/") == 0);

    kova_md_files_free(f, n);
    kova_md_files_free(f2, n2);
    kt_rm_tree(dir);
    return kt_finish("metadata.config_drive");
}
