/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kova-vmm's command line. cli.c implements kova_vmm_parse_args and kova_vmm_usage (kova/vmm.h)
 * and parses the --disk option, "path=FILE,format=raw|qcow2[,readonly=on|off][,serial=S]", into
 * a plain struct blk_spec, which the virtio-blk backend consumes (devices/virtio_blk.h:
 * blk_disks_open). Parsing only: files are opened by kova_vmm_run, never here; the format is
 * never guessed.
 */
#ifndef KOVA_VMM_CLI_H
#define KOVA_VMM_CLI_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#define KOVA_VMM_MAX_DISK_SPEC 4096 /* bytes of one --disk option */
#define BLK_SPEC_SERIAL_MAX    20   /* serial= bytes (the virtio-blk GET_ID string) */

/* One --disk option, parsed. */
struct blk_spec {
    char path[PATH_MAX];
    int format; /* enum kova_disk_format */
    bool readonly;
    char serial[BLK_SPEC_SERIAL_MAX + 1]; /* printable ASCII without spaces; "" for none */
};

/* Parses one --disk option into *out. 0 or -EINVAL with a message in err (up to errlen). */
int blk_spec_parse(const char *spec, struct blk_spec *out, char *err, size_t errlen);

#endif
