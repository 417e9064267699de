/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kova-vmm's command line. cli.c implements kova_vmm_parse_args and kova_vmm_usage (kova/vmm.h)
 * and parses the --disk option, "path=FILE,format=raw|qcow2[,readonly=on|off][,serial=S]", into
 * a plain struct blk_spec, which the virtio-blk backend consumes (devices/virtio_blk.h:
 * blk_disks_open). Parsing only: files are opened by kova_vmm_run, never here; the format is
 * never guessed. The --net option, "tap=NAME|fd=N,mac=MAC[,vhost=on|off|auto]", is parsed into a
 * struct net_spec (devices/virtio_net.h: net_backends_open opens the taps).
 */
#ifndef KOVA_VMM_CLI_H
#define KOVA_VMM_CLI_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#define KOVA_VMM_MAX_DISK_SPEC 4096 /* bytes of one --disk option */
#define BLK_SPEC_SERIAL_MAX    20   /* serial= bytes (the virtio-blk GET_ID string) */
#define NET_SPEC_IFNAME_MAX    15   /* tap= bytes (IFNAMSIZ - 1) */

/* One --disk option, parsed. */
struct blk_spec {
    char path[PATH_MAX];
    int format; /* enum kova_disk_format */
    bool readonly;
    char serial[BLK_SPEC_SERIAL_MAX + 1]; /* printable ASCII without spaces; "" for none */
};

/* Parses one --disk option into *out. 0 or -EINVAL with a message in err (up to errlen). */
int blk_spec_parse(const char *spec, struct blk_spec *out, char *err, size_t errlen);

enum net_vhost { NET_VHOST_AUTO, NET_VHOST_OFF, NET_VHOST_ON };

/* One --net option, parsed: exactly one of tap (a name) and fd (>= 0) is set; mac is required
 * (unicast: the multicast bit clear). */
struct net_spec {
    char tap[NET_SPEC_IFNAME_MAX + 1]; /* "" with fd= */
    int fd;                            /* -1 with tap= */
    unsigned char mac[6];
    enum net_vhost vhost;
};

/* Parses one --net option into *out. 0 or -EINVAL with a message in err (up to errlen). */
int net_spec_parse(const char *spec, struct net_spec *out, char *err, size_t errlen);

#endif
