/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-blk (block device, type 2) over a kova_disk (raw or qcow2, vmm/qcow2): the device type
 * virtio_blk_type (virtio.h), on any transport. One request queue; requests are taken off the
 * queue and completed by worker threads, so disk I/O never runs on a vCPU thread: a notify is
 * an eventfd write (by KVM's ioeventfd or the transport's exit handler) that wakes a worker;
 * completions go back through the transport (MSI-X through irqfds on PCI). Offers indirect
 * descriptors and EVENT_IDX. Every request is validated in blk_request() (header and status
 * sizes, type, sector range against the capacity, data length a multiple of 512, writes to a
 * read-only disk); a malformed request gets an error status.
 *
 * The disks belong to the process (blk_disks_open, from the parsed --disk options: cli.h): they
 * are opened once and kept across guest resets; a device only does I/O on its disk.
 */
#ifndef KOVA_VMM_VIRTIO_BLK_H
#define KOVA_VMM_VIRTIO_BLK_H

#include <stdbool.h>
#include <stdint.h>

#include "cli.h"
#include "virtio.h"
#include "virtq.h"

struct kova_disk;

#define VIRTIO_BLK_ID_BYTES 20 /* the serial returned by GET_ID */
#define BLK_SECTOR          512ULL

/* Request types (virtio 1.x 5.2.6). */
#define VIRTIO_BLK_T_IN           0
#define VIRTIO_BLK_T_OUT          1
#define VIRTIO_BLK_T_FLUSH        4
#define VIRTIO_BLK_T_GET_ID       8
#define VIRTIO_BLK_T_DISCARD      11
#define VIRTIO_BLK_T_WRITE_ZEROES 13

#define VIRTIO_BLK_S_OK     0
#define VIRTIO_BLK_S_IOERR  1
#define VIRTIO_BLK_S_UNSUPP 2

/* Limits the device advertises (and enforces). */
#define BLK_SEG_MAX     254 /* data segments per request (+ header + status = 256) */
#define BLK_QUEUE_SIZE  256
#define BLK_MAX_DZ_SECT (1u << 22) /* sectors per discard / write-zeroes segment (2 GiB) */
#define BLK_MAX_DZ_SEG  8          /* segments per discard / write-zeroes request */
#define BLK_WORKERS     4          /* worker threads per disk */
#define BLK_MAX_DISKS   16

/* What the device needs to know about its disk (dev_config.disks, device.h). */
struct blk_backend {
    struct kova_disk *disk;
    bool readonly;
    const char *serial; /* up to 20 bytes; may be NULL */
};

/* Serves one popped chain: validates it, does the I/O and writes the status byte. Returns the
 * number of bytes written into the chain's writable buffers (for the used ring). No locks are
 * taken; exposed for the unit tests. */
uint32_t blk_request(const struct blk_backend *be, const struct vq_chain *c);

/* The disks of one kova-vmm process: opened once (before the VM exists) and kept open across
 * guest resets. */
struct blk_disks {
    unsigned n;
    struct blk_spec *specs;
    struct blk_backend *be; /* n entries, for struct dev_config (device.h) */
};

/* Opens the disk of each parsed --disk option (read-only ones with KOVA_DISK_RDONLY), keeping a
 * copy of the options. On failure logs a message naming the disk, closes what it opened and
 * returns -errno. */
int blk_disks_open(struct blk_disks *out, const struct blk_spec *specs, unsigned n);
/* Flushes the writable disks and closes them all (the VM's devices are gone by then). */
void blk_disks_close(struct blk_disks *d);

#endif
