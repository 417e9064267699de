/* SPDX-License-Identifier: Apache-2.0 */
/* kova-img: create, inspect and check disk images (qemu-img's conventions where they exist). */
#include "kova/qcow2.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: kova-img create [-b BACKING -F raw|qcow2] [-c CLUSTER_SIZE] FILE [SIZE]\n"
               "       kova-img info [--json] FILE\n"
               "       kova-img check FILE\n"
               "SIZE: bytes, or with a K/M/G/T suffix (powers of 1024). Without SIZE the\n"
               "backing file's size is used.\n"
               "check exits 0 when clean, 2 on corruption, 3 when only leaks were found,\n"
               "1 when the image could not be checked.\n");
}

static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!*s || *s == '-')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -1;
    unsigned shift = 0;
    if (*end) {
        switch (*end) {
        case 'k':
        case 'K':
            shift = 10;
            break;
        case 'm':
        case 'M':
            shift = 20;
            break;
        case 'g':
        case 'G':
            shift = 30;
            break;
        case 't':
        case 'T':
            shift = 40;
            break;
        case 'b':
        case 'B':
            shift = 0;
            break;
        default:
            return -1;
        }
        if (end[1] && !(end[1] == 'i' && end[2] == 'B' && !end[3]) &&
            !((end[1] == 'B' || end[1] == 'b') && !end[2]))
            return -1;
    }
    if (shift && v > (UINT64_MAX >> shift))
        return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

static int cmd_create(int argc, char **argv)
{
    struct kova_qcow2_create_opts o = {0};
    const char *fmt = NULL;
    int i = 0;
    for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
        if (i + 1 >= argc)
            goto bad;
        if (!strcmp(argv[i], "-b"))
            o.backing_file = argv[++i];
        else if (!strcmp(argv[i], "-F"))
            fmt = argv[++i];
        else if (!strcmp(argv[i], "-c")) {
            uint64_t c;
            if (parse_size(argv[++i], &c) < 0 || c < 512 || c > (2u << 20) || (c & (c - 1))) {
                fprintf(stderr,
                        "kova-img: invalid cluster size '%s' (a power of two, "
                        "512 B .. 2 MiB)\n",
                        argv[i]);
                return 1;
            }
            o.cluster_bits = (unsigned)__builtin_ctzll(c);
        } else
            goto bad;
    }
    if (argc - i < 1 || argc - i > 2)
        goto bad;
    const char *file = argv[i];
    if (argc - i == 2) {
        if (parse_size(argv[i + 1], &o.size) < 0 || o.size == 0) {
            fprintf(stderr, "kova-img: invalid size '%s'\n", argv[i + 1]);
            return 1;
        }
    } else if (!o.backing_file) {
        fprintf(stderr, "kova-img: SIZE is required without a backing file\n");
        return 1;
    }
    if (o.backing_file) {
        if (!fmt) {
            fprintf(stderr, "kova-img: -b needs -F raw|qcow2 (kova never guesses "
                            "formats)\n");
            return 1;
        }
        o.backing_format = kova_disk_format_parse(fmt);
        if (!o.backing_format) {
            fprintf(stderr, "kova-img: unknown backing format '%s'\n", fmt);
            return 1;
        }
    } else if (fmt) {
        fprintf(stderr, "kova-img: -F without -b\n");
        return 1;
    }
    char err[512];
    int rc = kova_qcow2_create(file, &o, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "kova-img: %s\n", err);
        return 1;
    }
    return 0;
bad:
    usage(stderr);
    return 1;
}

static int open_ro(const char *file, struct kova_disk **d)
{
    char err[512];
    int rc = kova_disk_open(d, file, KOVA_DISK_QCOW2, KOVA_DISK_RDONLY | KOVA_DISK_NO_BACKING, err,
                            sizeof(err));
    if (rc < 0)
        fprintf(stderr, "kova-img: %s\n", err);
    return rc;
}

static int cmd_info(int argc, char **argv)
{
    int json = 0;
    const char *file = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (!file && argv[i][0] != '-')
            file = argv[i];
        else {
            usage(stderr);
            return 1;
        }
    }
    if (!file) {
        usage(stderr);
        return 1;
    }
    struct kova_disk *d;
    if (open_ro(file, &d) < 0)
        return 1;
    struct kova_qcow2_info in;
    kova_qcow2_get_info(d, &in);
    kova_disk_close(d);
    const char *ctype = in.compression_type ? "zstd" : "zlib";
    int lazy = (in.compatible & 1) != 0;
    int corrupt = (in.incompatible & 2) != 0;
    if (json) {
        json_t *o =
            json_pack("{s:s, s:s, s:I, s:I, s:I, s:i, s:b}", "filename", file, "format", "qcow2",
                      "virtual-size", (json_int_t)in.size, "actual-size", (json_int_t)in.file_size,
                      "cluster-size", (json_int_t)(1ull << in.cluster_bits), "snapshots",
                      (int)in.nb_snapshots, "dirty-flag", (int)((in.incompatible & 1) != 0));
        json_t *spec =
            json_pack("{s:s, s:s, s:b, s:i, s:b, s:b}", "compat", in.version == 2 ? "0.10" : "1.1",
                      "compression-type", ctype, "lazy-refcounts", lazy, "refcount-bits",
                      (int)in.refcount_bits, "corrupt", corrupt, "extended-l2", 0);
        if (!o || !spec) {
            fprintf(stderr, "kova-img: out of memory\n");
            return 1;
        }
        json_object_set_new(o, "format-specific", spec);
        if (in.backing_file[0]) {
            json_object_set_new(o, "backing-filename", json_string(in.backing_file));
            if (in.backing_format[0])
                json_object_set_new(o, "backing-filename-format", json_string(in.backing_format));
        }
        char *s = json_dumps(o, JSON_INDENT(4) | JSON_PRESERVE_ORDER);
        json_decref(o);
        if (!s)
            return 1;
        printf("%s\n", s);
        free(s);
        return 0;
    }
    printf("image: %s\nfile format: qcow2\nvirtual size: %llu bytes\ndisk size: %llu bytes\n"
           "cluster_size: %llu\n",
           file, (unsigned long long)in.size, (unsigned long long)in.file_size,
           1ull << in.cluster_bits);
    if (in.backing_file[0]) {
        printf("backing file: %s\n", in.backing_file);
        if (in.backing_format[0])
            printf("backing file format: %s\n", in.backing_format);
    }
    if (in.nb_snapshots)
        printf("snapshots: %u\n", in.nb_snapshots);
    printf("Format specific information:\n    compat: %s\n    compression type: %s\n"
           "    lazy refcounts: %s\n    refcount bits: %u\n    corrupt: %s\n",
           in.version == 2 ? "0.10" : "1.1", ctype, lazy ? "true" : "false", in.refcount_bits,
           corrupt ? "true" : "false");
    return 0;
}

static void print_problem(const char *msg, void *ctx)
{
    unsigned *n = ctx;
    if ((*n)++ < 1000)
        fprintf(stderr, "%s\n", msg);
}

static int cmd_check(int argc, char **argv)
{
    if (argc != 1 || argv[0][0] == '-') {
        usage(stderr);
        return 1;
    }
    struct kova_disk *d;
    if (open_ro(argv[0], &d) < 0)
        return 1;
    struct kova_qcow2_check res;
    unsigned shown = 0;
    int rc = kova_qcow2_check(d, &res, print_problem, &shown);
    kova_disk_close(d);
    if (rc < 0) {
        fprintf(stderr, "kova-img: check failed: %s\n", strerror(-rc));
        return 1;
    }
    if (res.corruptions)
        printf("\n%llu errors were found on the image.\n"
               "Data may be corrupted, or further writes to the image may corrupt it.\n",
               (unsigned long long)res.corruptions);
    if (res.leaks)
        printf("\n%llu leaked clusters were found on the image.\n"
               "This means waste of disk space, but no harm to data.\n",
               (unsigned long long)res.leaks);
    if (!res.corruptions && !res.leaks)
        printf("No errors were found on the image.\n");
    printf("%llu host clusters in use; the virtual disk has %llu clusters\n",
           (unsigned long long)res.allocated_clusters, (unsigned long long)res.total_clusters);
    return res.corruptions ? 2 : res.leaks ? 3 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    if (!strcmp(argv[1], "create"))
        return cmd_create(argc - 2, argv + 2);
    if (!strcmp(argv[1], "info"))
        return cmd_info(argc - 2, argv + 2);
    if (!strcmp(argv[1], "check"))
        return cmd_check(argc - 2, argv + 2);
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "kova-img: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 1;
}
