/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: a hostile guest's virtio-blk queue. The input is a ring set-up and the
 * guest's memory: virtq_enable() checks the ring addresses, virtq_pop() walks the descriptor
 * chains (loops, indexes and buffers out of range, huge lengths, indirect tables, readable after
 * writable), and every chain it accepts is served by blk_request() on a small raw or qcow2 disk,
 * then completed with virtq_push() as the device's workers do. Besides ASan/UBSan, the target
 * checks the promises of virtq.h and virtio_blk.h: a refused chain breaks the queue, an accepted
 * one lies wholly inside one guest RAM region, the iovecs of a chain add up to what was asked,
 * the used length never exceeds the chain's writable bytes and the status byte is a status.
 *
 * Input (little-endian):
 *   0  u8  flags: 1 INDIRECT_DESC, 2 EVENT_IDX, 4 read-only disk, 8 qcow2 disk,
 *          0x10 the disk has a serial, 0x20 RAM split: 16 KiB low RAM, the rest at 4 GiB
 *   1  u8  queue size: 1 << (v % 9)
 *   2  u8  chains to serve at most: v % 65
 *   3  u8  reserved
 *   4  u16 the ring's start index (last_avail and used_idx after enable)
 *   6  u16 reserved
 *   8  u64 descriptor table address, 16 avail ring address, 24 used ring address
 *  32  u32 skip, 36 u32 length: a vq_chain_iov() probe of every chain
 *  40  ... guest memory, from guest address 0 (split: from its 16 KiB on at 4 GiB)
 */
#include "mem.h"
#include "virtio_blk.h"
#include "virtq.h"
#include "fuzz_chain.h"

#include "kova/common.h"
#include "kova/qcow2.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#define HDR_BYTES  40
#define MEM_BYTES  (128u * 1024)
#define DISK_BYTES (64u * 1024)
#define MAX_CHAINS 64
#define SPLIT_LOW  (16u * 1024)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The backends: raw and qcow2, each read-write and read-only. */
static struct blk_backend backends[2][2];
static uint8_t *ram; /* one heap block: ASan sees any access past it */
static struct vq_chain chain;
static bool trace; /* KOVA_FUZZ_TRACE: one line per chain, to check what a seed reaches */
static struct iovec iov[VQ_MAX_CHAIN];

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_virtio_blk: broken promise: %s\n", what);
    abort();
}

static struct kova_disk *open_disk(int fd, enum kova_disk_format fmt, unsigned flags)
{
    struct kova_disk *d;
    char err[256];
    if (kova_disk_open_fd(&d, fd, NULL, fmt, flags, err, sizeof(err)) < 0) {
        fprintf(stderr, "fuzz_virtio_blk: cannot open the test disk: %s\n", err);
        abort();
    }
    return d;
}

static void make_backends(void)
{
    int raw = memfd_create("fuzz-blk-raw", MFD_CLOEXEC);
    if (raw < 0 || ftruncate(raw, DISK_BYTES) < 0)
        fail("memfd for the raw disk");
    /* tmpfs where there is one: a FLUSH request syncs the file */
    char path[64];
    snprintf(path, sizeof(path), "%s/kova-fuzz-blk.XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    int q = mkstemp(path);
    if (q < 0)
        fail("temporary qcow2 file");
    /* 512-byte clusters: every request touches L2 and refcount metadata */
    struct kova_qcow2_create_opts o = {.size = DISK_BYTES, .cluster_bits = 9};
    char err[256];
    if (kova_qcow2_create(path, &o, err, sizeof(err)) < 0) {
        fprintf(stderr, "fuzz_virtio_blk: kova_qcow2_create: %s\n", err);
        abort();
    }
    unlink(path);
    int fds[2] = {raw, q};
    enum kova_disk_format fmts[2] = {KOVA_DISK_RAW, KOVA_DISK_QCOW2};
    for (int f = 0; f < 2; f++) {
        backends[f][0] = (struct blk_backend){open_disk(fds[f], fmts[f], 0), false, NULL};
        backends[f][1] =
            (struct blk_backend){open_disk(fds[f], fmts[f], KOVA_DISK_RDONLY), true, NULL};
        close(fds[f]);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* a broken queue and a failed request log a line each: far too many while fuzzing */
    kova_log_setup("fuzz-virtio-blk", getenv("KOVA_FUZZ_LOG") ? KOVA_LOG_DEBUG : -2);
    trace = getenv("KOVA_FUZZ_TRACE") != NULL;
    ram = malloc(MEM_BYTES);
    if (!ram)
        fail("guest memory");
    make_backends();
    return 0;
}

static void check_chain(const struct virtq *vq, const struct guest_mem *gm,
                        const struct vq_chain *c)
{
    const char *why = fuzz_chain_broken(vq, gm, c);
    if (why)
        fail(why);
}

/* vq_chain_iov() gives exactly [skip, skip + len) of the chosen bytes, or -EINVAL when the
 * chain has fewer. */
static void probe_iov(const struct vq_chain *c, bool writable, uint64_t skip, uint64_t len)
{
    uint64_t have = writable ? c->writable : c->readable;
    int n = vq_chain_iov(c, writable, skip, len, iov);
    if (skip > have || len > have - skip) {
        if (n >= 0)
            fail("vq_chain_iov accepted a range past the chain");
        return;
    }
    if (n < 0 || n > VQ_MAX_CHAIN)
        fail("vq_chain_iov refused a range inside the chain");
    uint64_t sum = 0;
    for (int i = 0; i < n; i++) {
        if (iov[i].iov_len == 0)
            fail("vq_chain_iov gave an empty piece");
        sum += iov[i].iov_len;
    }
    if (sum != len)
        fail("vq_chain_iov pieces do not add up");
}

/* A chain with a writable byte gets a status in its last one; used counts it. */
static int check_status(const struct vq_chain *c, uint32_t used)
{
    if (!c->writable) {
        if (used)
            fail("used length without a status byte");
        return -1;
    }
    if (used == 0)
        fail("no status for a chain with a writable byte");
    unsigned i = c->n;
    while (i-- > 0 && !c->buf[i].len) {
    }
    uint8_t st = c->buf[i].ptr[c->buf[i].len - 1];
    if (st != VIRTIO_BLK_S_OK && st != VIRTIO_BLK_S_IOERR && st != VIRTIO_BLK_S_UNSUPP)
        fail("status byte is not a status");
    return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < HDR_BYTES)
        return 0;
    uint8_t flags = data[0];
    struct guest_mem gm;
    gm_layout(&gm, MEM_BYTES);
    if (flags & 0x20) {
        gm.low_size = SPLIT_LOW;
        gm.high_size = MEM_BYTES - gm.low_size;
    }
    gm.host = ram;
    size_t img = size - HDR_BYTES < MEM_BYTES ? size - HDR_BYTES : MEM_BYTES;
    memcpy(ram, data + HDR_BYTES, img);
    memset(ram + img, 0, MEM_BYTES - img);

    struct virtq vq;
    virtq_reset(&vq, BLK_QUEUE_SIZE);
    vq.size = (uint16_t)(1u << (data[1] % 9));
    vq.indirect = flags & 1;
    vq.event_idx = flags & 2;
    vq.desc_gpa = kova_le_get(data + 8, 8);
    vq.avail_gpa = kova_le_get(data + 16, 8);
    vq.used_gpa = kova_le_get(data + 24, 8);
    if (virtq_enable(&vq, &gm) < 0) {
        if (trace)
            fprintf(stderr, "virtq_enable refused the rings\n");
        if (vq.enabled)
            fail("a refused queue is enabled");
        return 0;
    }
    uint16_t start = (uint16_t)kova_le_get(data + 4, 2);
    vq.last_avail = vq.used_idx = start;

    const struct blk_backend *be = &backends[(flags >> 3) & 1][(flags >> 2) & 1];
    struct blk_backend with_serial = *be;
    if (flags & 0x10) {
        with_serial.serial = "KOVA-FUZZ-SERIAL-020";
        be = &with_serial;
    }
    uint64_t skip = kova_le_get(data + 32, 4), len = kova_le_get(data + 36, 4);
    unsigned max = data[2] % (MAX_CHAINS + 1);
    for (unsigned k = 0; k < max; k++) {
        uint16_t before = vq.last_avail;
        int r = virtq_pop(&vq, &gm, &chain);
        if (trace)
            fprintf(stderr, "pop %u: %d%s\n", k, r, vq.broken ? " (broken)" : "");
        if (r < 0) {
            if (!vq.broken || vq.last_avail != before)
                fail("a refused chain left the queue usable or moved it");
            if (virtq_pop(&vq, &gm, &chain) != -EINVAL)
                fail("a broken queue gave another chain");
            break;
        }
        if (r == 0) {
            if (vq.last_avail != before)
                fail("an empty ring moved last_avail");
            break;
        }
        if (r != 1 || vq.last_avail != (uint16_t)(before + 1))
            fail("virtq_pop result");
        check_chain(&vq, &gm, &chain);
        probe_iov(&chain, false, skip, len);
        probe_iov(&chain, true, skip, len);
        probe_iov(&chain, true, 0, chain.writable);
        uint32_t used = blk_request(be, &chain);
        if (used > chain.writable)
            fail("used length past the writable bytes");
        int st = check_status(&chain, used);
        if (trace)
            fprintf(stderr, "chain %u: head %u, %u buffers, %llu+%llu bytes, used %u, status %d\n",
                    k, chain.head, chain.n, (unsigned long long)chain.readable,
                    (unsigned long long)chain.writable, used, st);
        virtq_push(&vq, chain.head, used);
        virtq_should_notify(&vq);
    }
    return 0;
}
