/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-blk without KVM: --disk parsing, request validation and I/O (blk_request on hand-built
 * descriptor chains over real raw and qcow2 disks), and the whole device through its virtio-pci
 * BAR with guest memory, rings, worker threads and MSI-X delivery to a recording irq sink.
 */
#include "virtio_blk.h"
#include "virtio_pci.h"
#include "virtq.h"

#include "kova/qcow2.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/kova_test.h"

#define DISK_BYTES (4ULL << 20)

/* ---- --disk parsing ---- */

static void test_spec(void)
{
    struct blk_spec s;
    char err[256];
    CHECK(blk_spec_parse("path=/a/b.qcow2,format=qcow2,readonly=on,serial=ABC-1", &s, err,
                         sizeof(err)) == 0);
    CHECK(strcmp(s.path, "/a/b.qcow2") == 0 && s.format == KOVA_DISK_QCOW2 && s.readonly &&
          strcmp(s.serial, "ABC-1") == 0);
    CHECK(blk_spec_parse("format=raw,path=x", &s, err, sizeof(err)) == 0);
    CHECK(s.format == KOVA_DISK_RAW && !s.readonly && s.serial[0] == 0);
    CHECK(blk_spec_parse("path=x,format=raw,readonly=off", &s, err, sizeof(err)) == 0 &&
          !s.readonly);
    CHECK(blk_spec_parse("path=x,format=vmdk", &s, err, sizeof(err)) == -EINVAL &&
          strstr(err, "unknown format"));
    CHECK(blk_spec_parse("path=x", &s, err, sizeof(err)) == -EINVAL && strstr(err, "format"));
    CHECK(blk_spec_parse("format=raw", &s, err, sizeof(err)) == -EINVAL && strstr(err, "path"));
    CHECK(blk_spec_parse("path=,format=raw", &s, err, sizeof(err)) == -EINVAL);
    CHECK(blk_spec_parse("path=x,format=raw,readonly=yes", &s, err, sizeof(err)) == -EINVAL);
    CHECK(blk_spec_parse("path=x,format=raw,serial=123456789012345678901", &s, err, sizeof(err)) ==
              -EINVAL &&
          strstr(err, "20 bytes"));
    CHECK(blk_spec_parse("path=x,format=raw,serial=12345678901234567890", &s, err, sizeof(err)) ==
          0);
    CHECK(blk_spec_parse("path=x,format=raw,cache=none", &s, err, sizeof(err)) == -EINVAL &&
          strstr(err, "unknown key"));
    CHECK(blk_spec_parse("x.img", &s, err, sizeof(err)) == -EINVAL);
    CHECK(blk_spec_parse("", &s, err, sizeof(err)) == -EINVAL);
}

/* ---- requests on hand-built chains ---- */

struct req {
    struct vq_chain c;
    uint8_t hdr[16];
    uint8_t status;
};

static void chain_add(struct vq_chain *c, void *p, uint32_t len, bool w)
{
    c->buf[c->n++] = (struct vq_buf){p, len, w};
    if (w)
        c->writable += len;
    else
        c->readable += len;
}

static void req_init(struct req *r, uint32_t type, uint64_t sector)
{
    memset(&r->c, 0, sizeof(r->c));
    memset(r->hdr, 0, sizeof(r->hdr));
    for (int i = 0; i < 4; i++)
        r->hdr[i] = (uint8_t)(type >> (8 * i));
    for (int i = 0; i < 8; i++)
        r->hdr[8 + i] = (uint8_t)(sector >> (8 * i));
    r->status = 0xaa;
}

/* header | data... (readable or writable) | status */
static uint32_t run_req(const struct blk_backend *be, struct req *r, uint8_t *data, uint32_t len,
                        bool data_writable)
{
    chain_add(&r->c, r->hdr, 16, false);
    if (len)
        chain_add(&r->c, data, len, data_writable);
    chain_add(&r->c, &r->status, 1, true);
    return blk_request(be, &r->c);
}

static int make_disk(char *path, enum kova_disk_format fmt)
{
    int fd = mkstemp(path);
    if (fd < 0)
        return -errno;
    close(fd);
    if (fmt == KOVA_DISK_RAW)
        return truncate(path, (off_t)DISK_BYTES) < 0 ? -errno : 0;
    struct kova_qcow2_create_opts o = {.size = DISK_BYTES};
    return kova_qcow2_create(path, &o, NULL, 0);
}

static void test_requests(enum kova_disk_format fmt)
{
    char path[] = "/tmp/kova-blk-test.XXXXXX";
    CHECK(make_disk(path, fmt) == 0);
    struct kova_disk *disk = NULL, *rodisk = NULL;
    char err[256];
    CHECK(kova_disk_open(&disk, path, fmt, 0, err, sizeof(err)) == 0);
    if (!disk) {
        unlink(path);
        return;
    }
    struct blk_backend be = {disk, false, "SER-42"};
    uint64_t cap = DISK_BYTES / 512;
    static uint8_t buf[8192], back[8192];
    struct req r;

    /* OUT then IN, data split over several descriptors, header split too. */
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(i * 7 + 3);
    req_init(&r, VIRTIO_BLK_T_OUT, 10);
    chain_add(&r.c, r.hdr, 5, false);
    chain_add(&r.c, r.hdr + 5, 11, false);
    chain_add(&r.c, buf, 1000, false);
    chain_add(&r.c, buf + 1000, 3096, false);
    chain_add(&r.c, &r.status, 1, true);
    CHECK(blk_request(&be, &r.c) == 1 && r.status == VIRTIO_BLK_S_OK);
    memset(back, 0, sizeof(back));
    req_init(&r, VIRTIO_BLK_T_IN, 10);
    chain_add(&r.c, r.hdr, 16, false);
    chain_add(&r.c, back, 100, true);
    chain_add(&r.c, back + 100, 3996, true);
    chain_add(&r.c, &r.status, 1, true);
    CHECK(blk_request(&be, &r.c) == 4097 && r.status == VIRTIO_BLK_S_OK);
    CHECK(memcmp(buf, back, 4096) == 0);
    /* Status byte sharing the last data descriptor. */
    static uint8_t tail[513];
    req_init(&r, VIRTIO_BLK_T_IN, 10);
    chain_add(&r.c, r.hdr, 16, false);
    chain_add(&r.c, tail, 513, true);
    CHECK(blk_request(&be, &r.c) == 513 && tail[512] == VIRTIO_BLK_S_OK &&
          memcmp(tail, buf, 512) == 0);

    /* Last sector is fine; one past the end, a wrapping sector, a partial sector are not. */
    req_init(&r, VIRTIO_BLK_T_OUT, cap - 1);
    CHECK(run_req(&be, &r, buf, 512, false) == 1 && r.status == VIRTIO_BLK_S_OK);
    req_init(&r, VIRTIO_BLK_T_OUT, cap - 1);
    CHECK(run_req(&be, &r, buf, 1024, false) == 1 && r.status == VIRTIO_BLK_S_IOERR);
    req_init(&r, VIRTIO_BLK_T_IN, cap);
    CHECK(run_req(&be, &r, back, 512, true) == 1 && r.status == VIRTIO_BLK_S_IOERR);
    req_init(&r, VIRTIO_BLK_T_IN, UINT64_MAX);
    CHECK(run_req(&be, &r, back, 512, true) == 1 && r.status == VIRTIO_BLK_S_IOERR);
    req_init(&r, VIRTIO_BLK_T_IN, UINT64_MAX / 512 + 1); /* sector * 512 would wrap */
    CHECK(run_req(&be, &r, back, 512, true) == 1 && r.status == VIRTIO_BLK_S_IOERR);
    req_init(&r, VIRTIO_BLK_T_OUT, 0);
    CHECK(run_req(&be, &r, buf, 100, false) == 1 && r.status == VIRTIO_BLK_S_IOERR);
    req_init(&r, VIRTIO_BLK_T_IN, 0);
    CHECK(run_req(&be, &r, back, 511, true) == 1 && r.status == VIRTIO_BLK_S_IOERR);
    /* Data in the wrong direction. */
    req_init(&r, VIRTIO_BLK_T_IN, 0);
    CHECK(run_req(&be, &r, back, 512, false) == 1 && r.status == VIRTIO_BLK_S_IOERR);
    req_init(&r, VIRTIO_BLK_T_OUT, 0);
    CHECK(run_req(&be, &r, back, 512, true) == 1 && r.status == VIRTIO_BLK_S_IOERR);
    /* Short header; no status byte at all (nothing written, nothing crashes). */
    req_init(&r, VIRTIO_BLK_T_IN, 0);
    chain_add(&r.c, r.hdr, 15, false);
    chain_add(&r.c, &r.status, 1, true);
    CHECK(blk_request(&be, &r.c) == 1 && r.status == VIRTIO_BLK_S_IOERR);
    req_init(&r, VIRTIO_BLK_T_OUT, 0);
    chain_add(&r.c, r.hdr, 16, false);
    chain_add(&r.c, buf, 512, false);
    CHECK(blk_request(&be, &r.c) == 0 && r.status == 0xaa);
    req_init(&r, VIRTIO_BLK_T_IN, 0);
    CHECK(blk_request(&be, &r.c) == 0); /* empty chain */

    /* Unknown type, flush, get-id. */
    req_init(&r, 77, 0);
    CHECK(run_req(&be, &r, NULL, 0, false) == 1 && r.status == VIRTIO_BLK_S_UNSUPP);
    req_init(&r, VIRTIO_BLK_T_FLUSH, 0);
    CHECK(run_req(&be, &r, NULL, 0, false) == 1 && r.status == VIRTIO_BLK_S_OK);
    req_init(&r, VIRTIO_BLK_T_FLUSH, 0);
    CHECK(run_req(&be, &r, buf, 512, false) == 1 && r.status == VIRTIO_BLK_S_IOERR);
    uint8_t id[20];
    memset(id, 0xee, sizeof(id));
    req_init(&r, VIRTIO_BLK_T_GET_ID, 0);
    CHECK(run_req(&be, &r, id, 20, true) == 21 && r.status == VIRTIO_BLK_S_OK);
    CHECK(memcmp(id, "SER-42", 6) == 0 && id[6] == 0 && id[19] == 0);
    memset(id, 0xee, sizeof(id));
    req_init(&r, VIRTIO_BLK_T_GET_ID, 0);
    CHECK(run_req(&be, &r, id, 3, true) == 4 && memcmp(id, "SER", 3) == 0 && id[3] == 0xee);

    /* Write zeroes and discard. */
    struct {
        uint8_t b[16];
    } seg[9];
    memset(seg, 0, sizeof(seg));
    seg[0].b[0] = 10; /* sector 10 */
    seg[0].b[8] = 4;  /* 4 sectors */
    req_init(&r, VIRTIO_BLK_T_WRITE_ZEROES, 0);
    CHECK(run_req(&be, &r, (uint8_t *)seg, 16, false) == 1 && r.status == VIRTIO_BLK_S_OK);
    req_init(&r, VIRTIO_BLK_T_IN, 10);
    memset(back, 0xff, 2048);
    CHECK(run_req(&be, &r, back, 2048, true) == 2049 && r.status == VIRTIO_BLK_S_OK);
    int zero = 1;
    for (int i = 0; i < 2048; i++)
        zero &= back[i] == 0;
    CHECK(zero);
    req_init(&r, VIRTIO_BLK_T_DISCARD, 0);
    CHECK(run_req(&be, &r, (uint8_t *)seg, 16, false) == 1 && r.status == VIRTIO_BLK_S_OK);
    seg[0].b[12] = 1; /* unmap: fine for write-zeroes, unsupported for discard */
    req_init(&r, VIRTIO_BLK_T_DISCARD, 0);
    CHECK(run_req(&be, &r, (uint8_t *)seg, 16, false) == 1 && r.status == VIRTIO_BLK_S_UNSUPP);
    req_init(&r, VIRTIO_BLK_T_WRITE_ZEROES, 0);
    CHECK(run_req(&be, &r, (uint8_t *)seg, 16, false) == 1 && r.status == VIRTIO_BLK_S_OK);
    seg[0].b[12] = 2; /* reserved flag */
    req_init(&r, VIRTIO_BLK_T_WRITE_ZEROES, 0);
    CHECK(run_req(&be, &r, (uint8_t *)seg, 16, false) == 1 && r.status == VIRTIO_BLK_S_UNSUPP);
    seg[0].b[12] = 0;
    req_init(&r, VIRTIO_BLK_T_DISCARD, 0);
    CHECK(run_req(&be, &r, (uint8_t *)seg, 9 * 16, false) == 1 && r.status == VIRTIO_BLK_S_IOERR);
    req_init(&r, VIRTIO_BLK_T_DISCARD, 0);
    CHECK(run_req(&be, &r, (uint8_t *)seg, 20, false) == 1 && r.status == VIRTIO_BLK_S_IOERR);
    req_init(&r, VIRTIO_BLK_T_DISCARD, 0);
    CHECK(run_req(&be, &r, NULL, 0, false) == 1 && r.status == VIRTIO_BLK_S_IOERR);
    memset(seg, 0, sizeof(seg));
    for (int i = 0; i < 8; i++)
        seg[0].b[i] = (uint8_t)((cap - 2) >> (8 * i));
    seg[0].b[8] = 3; /* runs one sector past the end */
    req_init(&r, VIRTIO_BLK_T_WRITE_ZEROES, 0);
    CHECK(run_req(&be, &r, (uint8_t *)seg, 16, false) == 1 && r.status == VIRTIO_BLK_S_IOERR);
    kova_disk_close(disk);

    /* Read-only: reads and flush work, writes, zeroes and discards are refused. */
    CHECK(kova_disk_open(&rodisk, path, fmt, KOVA_DISK_RDONLY, err, sizeof(err)) == 0);
    if (rodisk) {
        struct blk_backend ro = {rodisk, true, NULL};
        req_init(&r, VIRTIO_BLK_T_IN, 10);
        CHECK(run_req(&ro, &r, back, 512, true) == 513 && r.status == VIRTIO_BLK_S_OK);
        req_init(&r, VIRTIO_BLK_T_OUT, 10);
        CHECK(run_req(&ro, &r, buf, 512, false) == 1 && r.status == VIRTIO_BLK_S_IOERR);
        memset(seg, 0, sizeof(seg));
        seg[0].b[8] = 1;
        req_init(&r, VIRTIO_BLK_T_WRITE_ZEROES, 0);
        CHECK(run_req(&ro, &r, (uint8_t *)seg, 16, false) == 1 && r.status == VIRTIO_BLK_S_IOERR);
        req_init(&r, VIRTIO_BLK_T_DISCARD, 0);
        CHECK(run_req(&ro, &r, (uint8_t *)seg, 16, false) == 1 && r.status == VIRTIO_BLK_S_IOERR);
        req_init(&r, VIRTIO_BLK_T_FLUSH, 0);
        CHECK(run_req(&ro, &r, NULL, 0, false) == 1 && r.status == VIRTIO_BLK_S_OK);
        memset(id, 0xee, sizeof(id));
        req_init(&r, VIRTIO_BLK_T_GET_ID, 0);
        CHECK(run_req(&ro, &r, id, 20, true) == 21 && id[0] == 0 && id[19] == 0);
        kova_disk_close(rodisk);
    }
    unlink(path);
}

/* ---- the whole device through its BAR ---- */

struct irq_rec {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned msis;
    uint32_t last_data;
};

static int rec_level(void *o, uint32_t gsi, int level)
{
    return 0;
}
static int rec_msi(void *o, uint64_t addr, uint32_t data)
{
    struct irq_rec *r = o;
    pthread_mutex_lock(&r->lock);
    r->msis++;
    r->last_data = data;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    return 0;
}

/* Waits (at most 30 s: a hang is a failure, not a timing check) for the n-th MSI. */
static bool wait_msis(struct irq_rec *r, unsigned n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 30;
    pthread_mutex_lock(&r->lock);
    while (r->msis < n && pthread_cond_timedwait(&r->cond, &r->lock, &ts) == 0) {
    }
    bool ok = r->msis >= n;
    pthread_mutex_unlock(&r->lock);
    return ok;
}

static void bar_wr(struct virtio_pci_dev *d, uint64_t off, uint32_t size, uint64_t v)
{
    uint8_t b[8];
    kova_le_put(b, size, v);
    d->pci.bar_ops[0]->write(d->pci.bar_opaque[0], off, b, size);
}
static uint64_t bar_rd(struct virtio_pci_dev *d, uint64_t off, uint32_t size)
{
    uint8_t b[8];
    d->pci.bar_ops[0]->read(d->pci.bar_opaque[0], off, b, size);
    return kova_le_get(b, size);
}

#define RING_DESC  0x10000ULL
#define RING_AVAIL 0x11000ULL
#define RING_USED  0x12000ULL
#define DATA_AT    0x20000ULL

static void put_desc(struct guest_mem *gm, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
                     uint16_t next)
{
    uint8_t e[16];
    kova_le_put(e, 8, addr);
    kova_le_put(e + 8, 4, len);
    kova_le_put(e + 12, 2, flags);
    kova_le_put(e + 14, 2, next);
    gm_write(gm, RING_DESC + 16ULL * i, e, 16);
}

static void driver_setup(struct virtio_pci_dev *d, bool ro)
{
    bar_wr(d, 0x14, 1, 0); /* reset */
    bar_wr(d, 0x14, 1, 1 | 2);
    bar_wr(d, 0x00, 4, 0);
    uint32_t f0 = (uint32_t)bar_rd(d, 0x04, 4);
    CHECK(f0 & (1u << 9));             /* FLUSH */
    CHECK(!!(f0 & (1u << 5)) == ro);   /* RO */
    CHECK(!!(f0 & (1u << 13)) == !ro); /* DISCARD */
    bar_wr(d, 0x08, 4, 0);
    bar_wr(d, 0x0c, 4, f0);
    bar_wr(d, 0x08, 4, 1);
    bar_wr(d, 0x0c, 4, 1); /* VERSION_1 */
    bar_wr(d, 0x14, 1, 1 | 2 | 8);
    CHECK(bar_rd(d, 0x14, 1) & 8);
    bar_wr(d, 0x16, 2, 0);
    bar_wr(d, 0x18, 2, 16);
    bar_wr(d, 0x1a, 2, 1); /* MSI-X vector 1 */
    bar_wr(d, 0x20, 8, RING_DESC);
    bar_wr(d, 0x28, 8, RING_AVAIL);
    bar_wr(d, 0x30, 8, RING_USED);
    bar_wr(d, 0x1c, 2, 1);
    /* MSI-X: vector 1 unmasked, then enable. */
    bar_wr(d, VPCI_MSIX_OFF + 16 + 0, 4, 0xfee00000);
    bar_wr(d, VPCI_MSIX_OFF + 16 + 8, 4, 0x41);
    bar_wr(d, VPCI_MSIX_OFF + 16 + 12, 4, 0);
    d->pci.cfg[0x40 + 3] |= 0x80; /* MSI-X enable (the guest does this via config space) */
    bar_wr(d, 0x14, 1, 1 | 2 | 8 | 4);
}

static void avail_add(struct guest_mem *gm, uint16_t *idx, uint16_t head)
{
    uint8_t b[2];
    kova_le_put(b, 2, head);
    gm_write(gm, RING_AVAIL + 4 + 2ULL * (*idx % 16), b, 2);
    (*idx)++;
    kova_le_put(b, 2, *idx);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    gm_write(gm, RING_AVAIL + 2, b, 2);
}

static void test_device(void)
{
    char path[] = "/tmp/kova-blk-dev.XXXXXX";
    CHECK(make_disk(path, KOVA_DISK_QCOW2) == 0);
    struct kova_disk *disk = NULL;
    CHECK(kova_disk_open(&disk, path, KOVA_DISK_QCOW2, 0, NULL, 0) == 0);
    struct guest_mem gm;
    CHECK(gm_alloc(&gm, 64ULL << 20) == 0);
    struct irq_rec rec = {.msis = 0};
    pthread_mutex_init(&rec.lock, NULL);
    pthread_cond_init(&rec.cond, NULL);
    struct irq_sink irq = {.opaque = &rec, .set_level = rec_level, .msi = rec_msi};
    struct blk_backend be = {disk, false, "dev-serial"};
    struct virtio_pci_dev *d = NULL;
    CHECK(virtio_blk_create(&d, &gm, &irq, &be) == 0);
    if (!d || !disk) {
        unlink(path);
        return;
    }
    /* Config space: capacity, seg_max, blk_size. */
    CHECK(bar_rd(d, VPCI_DEVICE_OFF, 8) == DISK_BYTES / 512);
    CHECK(bar_rd(d, VPCI_DEVICE_OFF + 0x0c, 4) == BLK_SEG_MAX);
    CHECK(bar_rd(d, VPCI_DEVICE_OFF + 0x14, 4) == 512);
    CHECK(bar_rd(d, VPCI_DEVICE_OFF + 0x2c, 4) == 65536 / 512);
    driver_setup(d, false);

    /* 5 writes of 4 KiB (header, data, status) in one notify: the workers take them in
     * parallel. */
    uint16_t avail = 0;
    for (unsigned i = 0; i < 5; i++) {
        uint64_t hdr = DATA_AT + 0x100 * i, data = DATA_AT + 0x10000 + 0x1000ULL * i;
        uint8_t h[16] = {0};
        h[0] = VIRTIO_BLK_T_OUT;
        h[8] = (uint8_t)(8 * i + 1);
        gm_write(&gm, hdr, h, 16);
        uint8_t pat[4096];
        memset(pat, 0x30 + (int)i, sizeof(pat));
        gm_write(&gm, data, pat, sizeof(pat));
        put_desc(&gm, 3 * i, hdr, 16, 1, (uint16_t)(3 * i + 1));
        put_desc(&gm, 3 * i + 1, data, 4096, 1, (uint16_t)(3 * i + 2));
        put_desc(&gm, 3 * i + 2, DATA_AT + 0x8000 + i, 1, 2, 0);
        avail_add(&gm, &avail, (uint16_t)(3 * i));
    }
    bar_wr(d, VPCI_NOTIFY_OFF, 2, 0);
    CHECK(wait_msis(&rec, 1));
    /* Wait until all 5 are in the used ring. */
    for (int tries = 0; tries < 3000; tries++) {
        uint8_t u[2];
        gm_read(&gm, RING_USED + 2, u, 2);
        if (kova_le_get(u, 2) == 5)
            break;
        if (!wait_msis(&rec, rec.msis + 1))
            break;
    }
    uint8_t u[2];
    gm_read(&gm, RING_USED + 2, u, 2);
    CHECK(kova_le_get(u, 2) == 5);
    for (unsigned i = 0; i < 5; i++) {
        uint8_t st = 0xff;
        gm_read(&gm, DATA_AT + 0x8000 + i, &st, 1);
        CHECK(st == VIRTIO_BLK_S_OK);
        uint8_t back[4096];
        CHECK(kova_disk_pread(disk, back, sizeof(back), (8ULL * i + 1) * 512) == 0);
        CHECK(back[0] == 0x30 + i && back[4095] == 0x30 + i);
    }

    /* A looping chain breaks the queue: the device asks for a reset, nothing crashes. */
    put_desc(&gm, 0, DATA_AT, 16, 1, 1);
    put_desc(&gm, 1, DATA_AT, 16, 1, 0);
    avail_add(&gm, &avail, 0);
    bar_wr(d, VPCI_NOTIFY_OFF, 2, 0);
    for (int tries = 0; tries < 300 && !(bar_rd(d, 0x14, 1) & 0x40); tries++)
        usleep(10000);
    CHECK(bar_rd(d, 0x14, 1) & 0x40);
    /* Reset and set up again: the device works again (get-id). */
    driver_setup(d, false);
    avail = 0;
    put_desc(&gm, 0, DATA_AT, 16, 1, 1);
    put_desc(&gm, 1, DATA_AT + 0x200, 20, 3, 2);
    put_desc(&gm, 2, DATA_AT + 0x300, 1, 2, 0);
    uint8_t h[16] = {VIRTIO_BLK_T_GET_ID};
    gm_write(&gm, DATA_AT, h, 16);
    unsigned before = rec.msis;
    avail_add(&gm, &avail, 0);
    bar_wr(d, VPCI_NOTIFY_OFF, 2, 0);
    CHECK(wait_msis(&rec, before + 1));
    char id[21] = {0};
    gm_read(&gm, DATA_AT + 0x200, id, 20);
    CHECK(strcmp(id, "dev-serial") == 0);

    virtio_blk_free(d);
    kova_disk_close(disk);
    gm_free(&gm);
    pthread_mutex_destroy(&rec.lock);
    pthread_cond_destroy(&rec.cond);
    unlink(path);
}

/* ---- vectored disk I/O (what virtio-blk requests become) against a reference ---- */

static uint64_t xs(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* Random preadv/pwritev with many small, odd-sized segments, at sector-aligned and unaligned
 * offsets, across cluster boundaries: over raw, qcow2 (4 KiB and 64 KiB clusters) and a qcow2
 * overlay on a raw backing file filled with a pattern. Every read is compared with a reference;
 * the image is checked at the end. */
static void test_vectored(enum kova_disk_format fmt, unsigned cluster_bits, bool backing)
{
    const uint64_t size = 1ULL << 20;
    char path[] = "/tmp/kova-blk-vec.XXXXXX", bpath[] = "/tmp/kova-blk-vecb.XXXXXX";
    uint8_t *ref = malloc(size), *buf = malloc(size), *rd = malloc(size);
    struct kova_disk *d = NULL;
    char err[256];
    int fd = mkstemp(path);
    CHECK(fd >= 0 && ref && buf && rd);
    if (fd < 0 || !ref || !buf || !rd)
        goto out;
    close(fd);
    memset(ref, 0, size);
    uint64_t x = 0x9e3779b97f4a7c15ULL ^ cluster_bits ^ (backing ? 77 : 0);
    if (backing) {
        int bfd = mkstemp(bpath);
        CHECK(bfd >= 0);
        if (bfd < 0)
            goto out;
        for (uint64_t i = 0; i < size - 4096; i++) /* shorter than the overlay: zeros after */
            ref[i] = (uint8_t)(xs(&x) >> 24);
        CHECK(pwrite(bfd, ref, size - 4096, 0) == (ssize_t)(size - 4096));
        close(bfd);
    }
    if (fmt == KOVA_DISK_RAW) {
        CHECK(truncate(path, (off_t)size) == 0);
    } else {
        struct kova_qcow2_create_opts o = {.size = size, .cluster_bits = cluster_bits};
        if (backing) {
            o.backing_file = bpath;
            o.backing_format = KOVA_DISK_RAW;
        }
        CHECK(kova_qcow2_create(path, &o, err, sizeof(err)) == 0);
    }
    CHECK(kova_disk_open(&d, path, fmt, 0, err, sizeof(err)) == 0);
    if (!d)
        goto out;
    for (int op = 0; op < 600; op++) {
        bool wr = xs(&x) & 1;
        uint64_t len = 1 + xs(&x) % (256 * 1024);
        if (xs(&x) % 3 == 0) /* what the guest sends: whole sectors */
            len = (len + 511) & ~511ULL;
        uint64_t off = xs(&x) % (size - len + 1);
        if (xs(&x) % 3 == 0)
            off &= ~511ULL;
        struct iovec iov[300];
        int n = 0;
        uint64_t at = 0;
        while (at < len) {
            uint64_t m = n == 299 ? len - at : 1 + xs(&x) % (xs(&x) % 4 ? 8192 : 70000);
            if (m > len - at)
                m = len - at;
            iov[n].iov_base = (wr ? buf : rd) + at;
            iov[n].iov_len = (size_t)m;
            n++;
            at += m;
        }
        if (wr) {
            for (uint64_t i = 0; i < len; i++)
                buf[i] = (uint8_t)(xs(&x) >> 32);
            CHECK(kova_disk_pwritev(d, iov, n, off) == 0);
            memcpy(ref + off, buf, len);
        } else {
            memset(rd, 0xee, len);
            CHECK(kova_disk_preadv(d, iov, n, off) == 0);
            CHECK(memcmp(rd, ref + off, len) == 0);
        }
        if (op % 97 == 0)
            CHECK(kova_disk_flush(d) == 0);
    }
    CHECK(kova_disk_pread(d, rd, size, 0) == 0);
    CHECK(memcmp(rd, ref, size) == 0);
    if (fmt == KOVA_DISK_QCOW2) {
        struct kova_qcow2_check res;
        CHECK(kova_disk_flush(d) == 0);
        CHECK(kova_qcow2_check(d, &res, NULL, NULL) == 0);
        CHECK(res.corruptions == 0 && res.leaks == 0);
    }
out:
    kova_disk_close(d);
    unlink(path);
    if (backing)
        unlink(bpath);
    free(ref);
    free(buf);
    free(rd);
}

/* ---- concurrent vectored writes (several virtio-blk workers on one qcow2 overlay) ---- */

#define TW_SIZE    (4ULL << 20)
#define TW_STRIPE  (256ULL << 10)
#define TW_SHARED  (512ULL << 10) /* the last bytes: overlapping writes of two threads */
#define TW_THREADS 6

struct tw {
    struct kova_disk *d;
    uint8_t *ref; /* each writer owns its stripes of it */
    unsigned id;
    int ok;
};

static void *tw_thread(void *arg)
{
    struct tw *t = arg;
    uint64_t x = 0x51ed27ULL * (t->id + 1);
    uint8_t *buf = malloc(160 << 10), *rd = malloc(160 << 10);
    t->ok = buf && rd;
    for (int op = 0; t->ok && op < 250; op++) {
        uint64_t off, len;
        if (t->id < 4) { /* own stripes: stripe s belongs to thread s % 4 */
            uint64_t nstripes = (TW_SIZE - TW_SHARED) / TW_STRIPE;
            uint64_t s = (xs(&x) % (nstripes / 4)) * 4 + t->id;
            off = s * TW_STRIPE + (xs(&x) % (TW_STRIPE / 512)) * 512;
            len = 512 * (1 + xs(&x) % 320);
            if (off + len > (s + 1) * TW_STRIPE)
                len = (s + 1) * TW_STRIPE - off;
        } else { /* shared tail: cluster-aligned runs that overlap the other thread's */
            off = TW_SIZE - TW_SHARED + (xs(&x) % (TW_SHARED / 4096)) * 4096;
            len = 4096 * (1 + xs(&x) % 40);
            if (off + len > TW_SIZE)
                len = TW_SIZE - off;
        }
        struct iovec iov[64];
        int n = 0;
        for (uint64_t at = 0; at < len; n++) {
            uint64_t m = n == 63 ? len - at : 512 * (1 + xs(&x) % 16);
            if (m > len - at)
                m = len - at;
            iov[n] = (struct iovec){buf + at, (size_t)m};
            at += m;
        }
        for (uint64_t i = 0; i < len; i++)
            buf[i] = (uint8_t)(xs(&x) >> 40);
        if (kova_disk_pwritev(t->d, iov, n, off) < 0)
            t->ok = 0;
        if (t->id >= 4) {
            if (op % 25 == 0 && kova_disk_discard(t->d, off, 4096) < 0)
                t->ok = 0;
            continue;
        }
        memcpy(t->ref + off, buf, len);
        if (kova_disk_pread(t->d, rd, len, off) < 0 || memcmp(rd, buf, len) != 0)
            t->ok = 0;
        if (op % 125 == 60 && kova_disk_flush(t->d) < 0)
            t->ok = 0;
    }
    free(buf);
    free(rd);
    return NULL;
}

/* Writers in their own stripes (contents checked) and two overlapping ones, with the new
 * clusters written with the image lock dropped: the image must stay clean (no leaks). */
static void test_threaded_writes(unsigned cluster_bits)
{
    char path[] = "/tmp/kova-blk-tw.XXXXXX", bpath[] = "/tmp/kova-blk-twb.XXXXXX";
    uint8_t *ref = malloc(TW_SIZE), *rd = malloc(TW_SIZE);
    struct kova_disk *d = NULL;
    char err[256];
    int fd = mkstemp(path), bfd = mkstemp(bpath);
    CHECK(fd >= 0 && bfd >= 0 && ref && rd);
    if (fd < 0 || bfd < 0 || !ref || !rd)
        goto out;
    close(fd);
    uint64_t x = 99;
    for (uint64_t i = 0; i < TW_SIZE; i++)
        ref[i] = (uint8_t)(xs(&x) >> 24);
    CHECK(pwrite(bfd, ref, TW_SIZE, 0) == (ssize_t)TW_SIZE);
    close(bfd);
    struct kova_qcow2_create_opts o = {.size = TW_SIZE,
                                       .cluster_bits = cluster_bits,
                                       .backing_file = bpath,
                                       .backing_format = KOVA_DISK_RAW};
    CHECK(kova_qcow2_create(path, &o, err, sizeof(err)) == 0);
    CHECK(kova_disk_open(&d, path, KOVA_DISK_QCOW2, 0, err, sizeof(err)) == 0);
    if (!d)
        goto out;
    pthread_t th[TW_THREADS];
    struct tw t[TW_THREADS];
    for (unsigned i = 0; i < TW_THREADS; i++) {
        t[i] = (struct tw){d, ref, i, 0};
        CHECK(pthread_create(&th[i], NULL, tw_thread, &t[i]) == 0);
    }
    for (unsigned i = 0; i < TW_THREADS; i++) {
        pthread_join(th[i], NULL);
        CHECK(t[i].ok);
    }
    CHECK(kova_disk_pread(d, rd, TW_SIZE - TW_SHARED, 0) == 0);
    CHECK(memcmp(rd, ref, TW_SIZE - TW_SHARED) == 0);
    struct kova_qcow2_check res;
    CHECK(kova_disk_flush(d) == 0);
    CHECK(kova_qcow2_check(d, &res, NULL, NULL) == 0);
    CHECK(res.corruptions == 0 && res.leaks == 0);
out:
    kova_disk_close(d);
    unlink(path);
    unlink(bpath);
    free(ref);
    free(rd);
}

int main(void)
{
    test_spec();
    test_requests(KOVA_DISK_RAW);
    test_requests(KOVA_DISK_QCOW2);
    test_vectored(KOVA_DISK_RAW, 0, false);
    test_vectored(KOVA_DISK_QCOW2, 12, false);
    test_vectored(KOVA_DISK_QCOW2, 16, false);
    test_vectored(KOVA_DISK_QCOW2, 12, true);
    test_vectored(KOVA_DISK_QCOW2, 16, true);
    test_threaded_writes(12);
    test_threaded_writes(16);
    test_device();
    return kt_finish("blk units");
}
