/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-blk (block device, type 2) over a kova_disk (raw or qcow2, vmm/qcow2). One request
 * queue; requests are taken off the queue and completed by worker threads, so disk I/O never
 * runs on a vCPU thread: a notify is an ioeventfd write in KVM (or, without one, an eventfd
 * write by the vCPU's MMIO exit) that wakes a worker; completions are MSI-X through irqfds.
 * Offers indirect descriptors and EVENT_IDX. Every request is validated in
 * blk_request() (header and status sizes, type, sector range against the capacity, data length a
 * multiple of 512, writes to a read-only disk); a malformed request gets an error status.
 *
 * The disk handle belongs to the caller (kova-vmm opens the disks once and keeps them across
 * guest resets); the device only does I/O on it.
 */
#ifndef KOVA_VMM_VIRTIO_BLK_H
#define KOVA_VMM_VIRTIO_BLK_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "virtio_pci.h"

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
#define BLK_SEG_MAX            254 /* data segments per request (+ header + status = 256) */
#define BLK_QUEUE_SIZE         256
#define BLK_MAX_DZ_SECT        (1u << 22) /* sectors per discard / write-zeroes segment (2 GiB) */
#define BLK_MAX_DZ_SEG         8          /* segments per discard / write-zeroes request */
#define BLK_WORKERS            4          /* worker threads per disk */
#define KOVA_VMM_MAX_DISK_SPEC 4096
#define BLK_MAX_DISKS          16

/* One --disk option, parsed. */
struct blk_spec {
    char path[PATH_MAX];
    int format; /* enum kova_disk_format */
    bool readonly;
    char serial[VIRTIO_BLK_ID_BYTES + 1];
};

/* Parses "path=FILE,format=raw|qcow2[,readonly=on|off][,serial=S]". 0 or -EINVAL with a
 * message in err. */
int blk_spec_parse(const char *spec, struct blk_spec *out, char *err, size_t errlen);

/* What the device needs to know about its disk. */
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
    struct blk_backend *be; /* n entries, for struct vm_params */
};

/* Parses and opens each --disk spec (read-only ones with KOVA_DISK_RDONLY). On failure logs a
 * message naming the disk, closes what it opened and returns -errno. */
int blk_disks_open(struct blk_disks *out, const char *const *specs, unsigned n);
/* Flushes the writable disks and closes them all (the VM's devices are gone by then). */
void blk_disks_close(struct blk_disks *d);

/* Creates the device and its worker threads. The backend is copied (the disk handle and the
 * serial string must outlive the device). */
int virtio_blk_create(struct virtio_pci_dev **out, const struct guest_mem *mem,
                      const struct irq_sink *irq, const struct blk_backend *be);
/* Stops the workers (after the requests in flight complete) and frees the device; the disk is
 * left open. */
void virtio_blk_free(struct virtio_pci_dev *d);

#endif
