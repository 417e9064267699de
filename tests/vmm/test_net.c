/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of virtio-net's data path (vmm/src/devices/virtio_net.h) and the --net option: a
 * fake guest memory with a hand-built split ring, and an AF_UNIX SOCK_DGRAM socketpair standing
 * in for the tap (one datagram = one frame with its 12-byte header, as a tap with IFF_VNET_HDR).
 * No KVM and no tap needed. */
#include "cli.h"
#include "mem.h"
#include "vhost_net.h"
#include "virtio_net.h"
#include "virtio_pci.h"
#include "virtq.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/kova_test.h"

#define QSIZE     16
#define DESC_GPA  0x10000ULL
#define AVAIL_GPA 0x11000ULL
#define USED_GPA  0x12000ULL
#define DATA_GPA  0x100000ULL /* buffers from here on, 128 KiB apart */
#define F_NEXT    1
#define F_WRITE   2

struct ring {
    struct guest_mem *gm;
    struct virtq vq;
    uint64_t dg, ag, ug; /* desc, avail, used */
    uint16_t next_desc, avail_idx, used_seen;
};

/* The ring's memory at DESC_GPA + off (3 pages); vq: the device's queue, set up and enabled. */
static void ring_at(struct ring *r, struct guest_mem *gm, uint64_t off, struct virtq *vq)
{
    memset(r, 0, sizeof(*r));
    r->gm = gm;
    r->dg = DESC_GPA + off;
    r->ag = AVAIL_GPA + off;
    r->ug = USED_GPA + off;
    memset(gm_ptr(gm, r->dg, 0x3000), 0, 0x3000);
    virtq_reset(vq, QSIZE);
    vq->desc_gpa = r->dg;
    vq->avail_gpa = r->ag;
    vq->used_gpa = r->ug;
    vq->event_idx = true;
    CHECK(virtq_enable(vq, gm) == 0);
}

static void ring_init(struct ring *r, struct guest_mem *gm)
{
    ring_at(r, gm, 0, &r->vq);
}

static uint8_t *buf(struct guest_mem *gm, unsigned i)
{
    return gm_ptr(gm, DATA_GPA + 0x20000ULL * i, 0x20000);
}

/* Writes descriptor slot i (raw: any address and length). */
static void desc(struct ring *r, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
                 uint16_t next)
{
    uint8_t *d = gm_ptr(r->gm, r->dg + 16ULL * i, 16);
    kova_le_put(d, 8, addr);
    kova_le_put(d + 8, 4, len);
    kova_le_put(d + 12, 2, flags);
    kova_le_put(d + 14, 2, next);
}

/* Makes a chain of n buffers (addr/len/writable each) available; returns its head. */
static uint16_t chain(struct ring *r, unsigned n, const uint64_t *addr, const uint32_t *len,
                      const bool *w)
{
    uint16_t head = r->next_desc;
    for (unsigned i = 0; i < n; i++) {
        uint16_t at = (uint16_t)((head + i) % QSIZE);
        desc(r, at, addr[i], len[i], (uint16_t)((w[i] ? F_WRITE : 0) | (i + 1 < n ? F_NEXT : 0)),
             (uint16_t)((at + 1) % QSIZE));
    }
    r->next_desc = (uint16_t)((head + n) % QSIZE);
    uint8_t *av = gm_ptr(r->gm, r->ag, 6 + 2 * QSIZE);
    kova_le_put(av + 4 + 2 * (r->avail_idx % QSIZE), 2, head);
    r->avail_idx++;
    kova_le_put(av + 2, 2, r->avail_idx);
    return head;
}

static uint16_t chain1(struct ring *r, uint64_t addr, uint32_t len, bool w)
{
    return chain(r, 1, &addr, &len, &w);
}

static uint16_t used_idx(struct ring *r)
{
    return (uint16_t)kova_le_get(gm_ptr(r->gm, r->ug, 4) + 2, 2);
}

/* The k-th used entry: its id and len. */
static void used(struct ring *r, uint16_t k, uint32_t *id, uint32_t *len)
{
    uint8_t *e = gm_ptr(r->gm, r->ug + 4 + 8ULL * (k % QSIZE), 8);
    *id = (uint32_t)kova_le_get(e, 4);
    *len = (uint32_t)kova_le_get(e + 4, 4);
}

struct bed {
    struct guest_mem gm;
    struct ring ring;
    int sv[2]; /* sv[0]: the device's backend, sv[1]: the "network" */
    struct net_stats st;
    struct net_path p;
};

static void bed_init(struct bed *b, bool mrg)
{
    memset(&b->st, 0, sizeof(b->st));
    CHECK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, b->sv) == 0);
    ring_init(&b->ring, &b->gm);
    CHECK(net_path_init(&b->p, b->sv[0], &b->st) == 0);
    b->p.mrg_rxbuf = mrg;
}

static void bed_free(struct bed *b)
{
    net_path_free(&b->p);
    close(b->sv[0]);
    close(b->sv[1]);
}

/* A frame with its header: hdr bytes 0..9 = 0xa0 + i, payload byte i = (seed + i) & 0xff. */
static void fill_frame(uint8_t *f, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        f[i] = i < NET_HDR_LEN ? (uint8_t)(0xa0 + i) : (uint8_t)(seed + i);
}

static bool frame_ok(const uint8_t *f, size_t len, unsigned seed, size_t from)
{
    for (size_t i = from; i < len; i++)
        if (f[i - from] != (i < NET_HDR_LEN ? (uint8_t)(0xa0 + i) : (uint8_t)(seed + i)))
            return false;
    return true;
}

static void test_check(void)
{
    struct vq_chain *c = calloc(1, sizeof(*c));
    c->readable = NET_HDR_LEN + 60;
    CHECK(net_chain_check(c, false) == 0);
    CHECK(net_chain_check(c, true) != 0); /* readable bytes on the RX queue */
    c->readable = NET_HDR_LEN - 1;
    CHECK(net_chain_check(c, false) != 0); /* short header */
    c->readable = NET_HDR_LEN + NET_MIN_FRAME - 1;
    CHECK(net_chain_check(c, false) != 0); /* runt */
    c->readable = NET_HDR_LEN + NET_MAX_FRAME;
    CHECK(net_chain_check(c, false) == 0);
    c->readable = NET_HDR_LEN + NET_MAX_FRAME + 1;
    CHECK(net_chain_check(c, false) != 0); /* oversized */
    c->readable = NET_HDR_LEN + 60;
    c->writable = 1;
    CHECK(net_chain_check(c, false) != 0); /* writable bytes on the TX queue */
    c->readable = 0;
    c->writable = NET_HDR_LEN;
    CHECK(net_chain_check(c, true) == 0);
    c->writable = NET_HDR_LEN - 1;
    CHECK(net_chain_check(c, true) != 0); /* RX buffer smaller than the header */
    free(c);
}

static void test_tx(void)
{
    struct bed b;
    CHECK(gm_alloc(&b.gm, 32ULL << 20) == 0);
    bed_init(&b, false);
    struct ring *r = &b.ring;
    unsigned n;
    uint8_t got[NET_HDR_LEN + NET_MAX_FRAME + 16];

    /* Empty ring. */
    CHECK(net_tx_run(&b.p, &r->vq, &b.gm, 64, &n) == NET_DONE && n == 0);

    /* Header and frame in separate descriptors, a zero-length one between them. */
    fill_frame(buf(&b.gm, 0), NET_HDR_LEN + 100, 7);
    uint64_t a3[3] = {DATA_GPA, DATA_GPA + 5, DATA_GPA + NET_HDR_LEN};
    uint32_t l3[3] = {NET_HDR_LEN, 0, 100};
    bool w3[3] = {false, false, false};
    uint16_t h = chain(r, 3, a3, l3, w3);
    CHECK(net_tx_run(&b.p, &r->vq, &b.gm, 64, &n) == NET_DONE && n == 1);
    ssize_t k = recv(b.sv[1], got, sizeof(got), MSG_DONTWAIT);
    CHECK(k == NET_HDR_LEN + 100 && frame_ok(got, (size_t)k, 7, 0));
    uint32_t id, len;
    used(r, 0, &id, &len);
    CHECK(used_idx(r) == 1 && id == h && len == 0);
    CHECK(b.st.tx_frames == 1 && b.st.tx_bytes == 100 && b.st.bad_chains == 0);

    /* Hostile chains: each completed with 0 bytes, counted, nothing sent. */
    chain1(r, DATA_GPA, NET_HDR_LEN - 4, false);                 /* short header */
    chain1(r, DATA_GPA, NET_HDR_LEN + 5, false);                 /* runt frame */
    chain1(r, DATA_GPA, NET_HDR_LEN + NET_MAX_FRAME + 1, false); /* oversized frame */
    uint64_t a2[2] = {DATA_GPA, DATA_GPA + 0x1000};
    uint32_t l2[2] = {NET_HDR_LEN + 60, 64};
    bool w2[2] = {false, true};
    chain(r, 2, a2, l2, w2);       /* a writable buffer in a TX chain */
    chain1(r, DATA_GPA, 0, false); /* zero length */
    CHECK(net_tx_run(&b.p, &r->vq, &b.gm, 64, &n) == NET_DONE && n == 5);
    CHECK(b.st.bad_chains == 5 && b.st.tx_frames == 1);
    CHECK(recv(b.sv[1], got, sizeof(got), MSG_DONTWAIT) < 0 && errno == EAGAIN);
    CHECK(used_idx(r) == 6);
    for (uint16_t i = 1; i < 6; i++) {
        used(r, i, &id, &len);
        CHECK(len == 0);
    }

    /* The largest frame goes out whole. */
    fill_frame(buf(&b.gm, 0), NET_HDR_LEN + NET_MAX_FRAME, 3);
    chain1(r, DATA_GPA, NET_HDR_LEN + NET_MAX_FRAME, false);
    int sz = 1 << 20;
    setsockopt(b.sv[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    setsockopt(b.sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    CHECK(net_tx_run(&b.p, &r->vq, &b.gm, 64, &n) == NET_DONE && n == 1);
    k = recv(b.sv[1], got, sizeof(got), MSG_DONTWAIT);
    CHECK(k == NET_HDR_LEN + NET_MAX_FRAME && frame_ok(got, (size_t)k, 3, 0));

    /* Backpressure: the peer reads nothing; the chain the backend refused stays in the ring. */
    fill_frame(buf(&b.gm, 1), NET_HDR_LEN + 60, 9);
    sz = 4096;
    setsockopt(b.sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    unsigned sent = 0;
    enum net_rc rc = NET_DONE;
    for (unsigned i = 0; i < 5000 && rc != NET_STALLED; i++) {
        chain1(r, DATA_GPA + 0x20000, NET_HDR_LEN + 60, false);
        rc = net_tx_run(&b.p, &r->vq, &b.gm, 64, &n);
        sent += n;
    }
    CHECK(rc == NET_STALLED);
    uint16_t before = r->vq.last_avail;
    CHECK((uint16_t)(r->avail_idx - before) == 1); /* the refused one is still available */
    while (recv(b.sv[1], got, sizeof(got), MSG_DONTWAIT) > 0) {
    }
    CHECK(net_tx_run(&b.p, &r->vq, &b.gm, 64, &n) == NET_DONE && n == 1);
    CHECK(b.st.tx_frames == 2 + sent + 1 && b.st.tx_errors == 0);
    while (recv(b.sv[1], got, sizeof(got), MSG_DONTWAIT) > 0) {
    }

    /* A chain pointing outside guest memory breaks the queue: no crash, no frame. */
    chain1(r, 64ULL << 30, NET_HDR_LEN + 60, false);
    CHECK(net_tx_run(&b.p, &r->vq, &b.gm, 64, &n) == NET_BROKEN && r->vq.broken);
    CHECK(net_tx_run(&b.p, &r->vq, &b.gm, 64, &n) == NET_BROKEN && n == 0);
    CHECK(recv(b.sv[1], got, sizeof(got), MSG_DONTWAIT) < 0);

    /* A looping chain (after a reset of the ring). */
    ring_init(r, &b.gm);
    desc(r, 0, DATA_GPA, 8, F_NEXT, 1);
    desc(r, 1, DATA_GPA, 8, F_NEXT, 0);
    uint8_t *av = gm_ptr(&b.gm, AVAIL_GPA, 8);
    kova_le_put(av + 4, 2, 0);
    kova_le_put(av + 2, 2, 1);
    CHECK(net_tx_run(&b.p, &r->vq, &b.gm, 64, &n) == NET_BROKEN && r->vq.broken);

    bed_free(&b);
    gm_free(&b.gm);
}

static void test_rx(void)
{
    struct bed b;
    CHECK(gm_alloc(&b.gm, 32ULL << 20) == 0);
    bed_init(&b, false);
    struct ring *r = &b.ring;
    unsigned n;
    uint8_t f[NET_HDR_LEN + 3000];
    uint32_t id, len;

    /* No buffers: the frame stays in the backend (never read, never dropped). */
    fill_frame(f, NET_HDR_LEN + 1000, 1);
    CHECK(send(b.sv[1], f, NET_HDR_LEN + 1000, 0) == NET_HDR_LEN + 1000);
    CHECK(net_rx_run(&b.p, &r->vq, &b.gm, 64, &n) == NET_STALLED && n == 0);
    CHECK(recv(b.sv[0], f + 1, 1, MSG_PEEK | MSG_DONTWAIT) == 1);
    CHECK(b.p.frame_len == 0);
    /* avail_event armed: the driver will kick when it adds a buffer */
    CHECK(kova_le_get(gm_ptr(&b.gm, USED_GPA + 4 + 8 * QSIZE, 2), 2) == 0);

    /* A buffer smaller than the header: completed with 0, counted, skipped; a readable one
     * too; the next buffer gets the frame with num_buffers 1. */
    chain1(r, DATA_GPA, 8, true);
    chain1(r, DATA_GPA + 0x20000, 2048, false);
    uint16_t h = chain1(r, DATA_GPA + 0x40000, 2048, true);
    CHECK(net_rx_run(&b.p, &r->vq, &b.gm, 64, &n) == NET_STALLED && n == 3); /* ring empty */
    CHECK(b.st.bad_chains == 2 && b.st.rx_frames == 1 && b.st.rx_bytes == 1000);
    used(r, 0, &id, &len);
    CHECK(len == 0);
    used(r, 1, &id, &len);
    CHECK(len == 0);
    used(r, 2, &id, &len);
    CHECK(id == h && len == NET_HDR_LEN + 1000);
    uint8_t *g = buf(&b.gm, 2);
    CHECK(kova_le_get(g + 10, 2) == 1 && frame_ok(g + NET_HDR_LEN, 1000, 1, NET_HDR_LEN));

    /* Without MRG_RXBUF a frame bigger than the buffer is dropped; the buffer stays. */
    fill_frame(f, NET_HDR_LEN + 3000, 2);
    CHECK(send(b.sv[1], f, NET_HDR_LEN + 3000, 0) == NET_HDR_LEN + 3000);
    chain1(r, DATA_GPA, 1500, true);
    CHECK(net_rx_run(&b.p, &r->vq, &b.gm, 64, &n) == NET_DONE && n == 0);
    CHECK(b.st.rx_dropped == 1 && (uint16_t)(r->avail_idx - r->vq.last_avail) == 1);
    /* Runts from the backend are dropped too. */
    CHECK(send(b.sv[1], f, NET_HDR_LEN + 3, 0) == NET_HDR_LEN + 3);
    CHECK(net_rx_run(&b.p, &r->vq, &b.gm, 64, &n) == NET_DONE && n == 0 && b.st.rx_dropped == 2);
    /* The next big frame meets the same small buffer: dropped as well. */
    CHECK(send(b.sv[1], f, NET_HDR_LEN + 3000, 0) == NET_HDR_LEN + 3000);
    CHECK(net_rx_run(&b.p, &r->vq, &b.gm, 64, &n) == NET_DONE && n == 0);
    CHECK(b.st.rx_dropped == 3 && b.st.rx_frames == 1);
    bed_free(&b);

    /* MRG_RXBUF: one frame over three buffers, num_buffers 3. */
    bed_init(&b, true);
    r = &b.ring;
    fill_frame(f, NET_HDR_LEN + 3000, 5);
    CHECK(send(b.sv[1], f, NET_HDR_LEN + 3000, 0) == NET_HDR_LEN + 3000);
    uint16_t h0 = chain1(r, DATA_GPA, 1024, true);
    uint64_t a2[2] = {DATA_GPA + 0x60000, DATA_GPA + 0x80000};
    uint32_t l2[2] = {NET_HDR_LEN + 10, 4000};
    bool w2[2] = {true, true};
    uint16_t h1 = chain(r, 2, a2, l2, w2); /* one buffer in two descriptors, 22 + 4000 bytes */
    CHECK(net_rx_run(&b.p, &r->vq, &b.gm, 64, &n) == NET_STALLED && n == 2);
    used(r, 0, &id, &len);
    CHECK(id == h0 && len == 1024);
    used(r, 1, &id, &len);
    CHECK(id == h1 && len == NET_HDR_LEN + 3000 - 1024);
    CHECK(kova_le_get(buf(&b.gm, 0) + 10, 2) == 2);

    /* Not enough buffers: both given back, the frame waits in the device, not in the socket. */
    fill_frame(f, NET_HDR_LEN + 3000, 6);
    CHECK(send(b.sv[1], f, NET_HDR_LEN + 3000, 0) == NET_HDR_LEN + 3000);
    chain1(r, DATA_GPA, 1024, true);
    chain1(r, DATA_GPA + 0x20000, 8, true); /* too small: bad, after a good one */
    chain1(r, DATA_GPA + 0x40000, 1024, true);
    uint16_t ui = used_idx(r);
    CHECK(net_rx_run(&b.p, &r->vq, &b.gm, 64, &n) == NET_STALLED && n == 0);
    CHECK(used_idx(r) == ui && (uint16_t)(r->avail_idx - r->vq.last_avail) == 3);
    CHECK(b.p.frame_len == NET_HDR_LEN + 3000);
    CHECK(recv(b.sv[0], f, 1, MSG_PEEK | MSG_DONTWAIT) < 0 && errno == EAGAIN);
    /* Refilled: the frame spans the three good buffers; the bad one is completed with 0. */
    chain1(r, DATA_GPA + 0x60000, 1024, true);
    chain1(r, DATA_GPA + 0x80000, 1024, true);
    uint64_t bad0 = b.st.bad_chains;
    CHECK(net_rx_run(&b.p, &r->vq, &b.gm, 64, &n) == NET_DONE && n == 4); /* one left */
    CHECK(b.st.bad_chains == bad0 + 1 && b.p.frame_len == 0);
    uint32_t lens[4], total = 0;
    for (unsigned i = 0; i < 4; i++) {
        used(r, (uint16_t)(ui + i), &id, &lens[i]);
        total += lens[i];
    }
    CHECK(lens[0] == 1024 && lens[1] == 0 && lens[2] == 1024 && lens[3] == 964);
    CHECK(total == NET_HDR_LEN + 3000);
    CHECK(kova_le_get(buf(&b.gm, 0) + 10, 2) == 3);
    CHECK(frame_ok(buf(&b.gm, 0) + NET_HDR_LEN, 1024 - NET_HDR_LEN, 6, NET_HDR_LEN));
    CHECK(frame_ok(buf(&b.gm, 2), 1024, 6, 1024));
    CHECK(frame_ok(buf(&b.gm, 4), 964, 6, 2048));

    /* An RX buffer outside guest memory breaks the queue (no crash); the frame is kept. */
    fill_frame(f, NET_HDR_LEN + 100, 8);
    CHECK(send(b.sv[1], f, NET_HDR_LEN + 100, 0) == NET_HDR_LEN + 100);
    chain1(r, (64ULL << 30), 2048, true);
    CHECK(net_rx_run(&b.p, &r->vq, &b.gm, 64, &n) == NET_BROKEN && r->vq.broken);
    bed_free(&b);
    gm_free(&b.gm);
}

/* ---- the whole device: worker thread, kicks, DRIVER_OK, config space ---- */

static int fake_msi(void *o, uint64_t addr, uint32_t data)
{
    (void)addr;
    (void)data;
    (*(int *)o)++;
    return 0;
}

/* Waits (up to 5 s) until the ring's used index reaches want. */
static bool wait_used(struct virtio_pci_dev *d, struct ring *r, uint16_t want)
{
    for (int i = 0; i < 500; i++) {
        pthread_mutex_lock(&d->lock);
        uint16_t u = used_idx(r);
        pthread_mutex_unlock(&d->lock);
        if (u == want)
            return true;
        usleep(10000);
    }
    return false;
}

static void kick(struct virtio_pci_dev *d, unsigned q)
{
    uint64_t one = 1;
    CHECK(write(d->kick_fd[q], &one, sizeof(one)) == sizeof(one));
}

static void test_device(void)
{
    struct guest_mem gm;
    CHECK(gm_alloc(&gm, 32ULL << 20) == 0);
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, sv) == 0);
    struct net_stats st;
    memset(&st, 0, sizeof(st));
    struct net_backend be = {.fd = sv[0], .mac = {0xfa, 0x16, 0x3e, 1, 2, 3}, .stats = &st};
    snprintf(be.ifname, sizeof(be.ifname), "test0");
    int msis = 0;
    struct irq_sink sink = {.opaque = &msis, .msi = fake_msi};
    struct virtio_pci_dev *d = NULL;
    CHECK(virtio_net_create(&d, &gm, &sink, &be) == 0);
    if (!d)
        return;
    CHECK(d->ops->device_id == 1 && d->ops->num_queues == 2);
    uint64_t f = d->ops->features(&d->vdev);
    CHECK((f & VIRTIO_NET_F_MRG_RXBUF) && (f & VIRTIO_NET_F_MAC) && (f & VIRTIO_NET_F_STATUS) &&
          (f & VIRTIO_NET_F_GUEST_TSO4) && (f & VIRTIO_NET_F_HOST_TSO6) &&
          (f & VIRTIO_RING_F_EVENT_IDX) && (f & VIRTIO_RING_F_INDIRECT_DESC));
    uint8_t cfg[10];
    d->ops->config_read(&d->vdev, 0, cfg, sizeof(cfg));
    CHECK(memcmp(cfg, be.mac, 6) == 0 && cfg[6] == 1 && cfg[7] == 0);

    struct ring rx, tx;
    pthread_mutex_lock(&d->lock);
    ring_at(&rx, &gm, 0, &d->vq[0]);
    ring_at(&tx, &gm, 0x4000, &d->vq[1]);
    d->driver_features = f | VIRTIO_F_VERSION_1;
    pthread_mutex_unlock(&d->lock);

    /* Buffers and a frame before DRIVER_OK: nothing moves; DRIVER_OK without a kick: the worker
     * finds them itself. */
    uint8_t fr[NET_HDR_LEN + 200];
    fill_frame(fr, sizeof(fr), 4);
    CHECK(send(sv[1], fr, sizeof(fr), 0) == (ssize_t)sizeof(fr));
    pthread_mutex_lock(&d->lock);
    chain1(&rx, DATA_GPA, 2048, true);
    pthread_mutex_unlock(&d->lock);
    kick(d, 0);
    usleep(150000);
    CHECK(used_idx(&rx) == 0);
    pthread_mutex_lock(&d->lock);
    d->status = 1 | 2 | 8 | 4; /* ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK */
    pthread_mutex_unlock(&d->lock);
    CHECK(wait_used(d, &rx, 1));
    uint32_t id, len;
    used(&rx, 0, &id, &len);
    CHECK(len == sizeof(fr) && frame_ok(buf(&gm, 0) + NET_HDR_LEN, 200, 4, NET_HDR_LEN));
    CHECK(kova_le_get(buf(&gm, 0) + 10, 2) == 1);

    /* No buffers: three frames wait (in the socket and the device); a refill brings them. */
    for (unsigned i = 0; i < 3; i++) {
        fill_frame(fr, sizeof(fr), 10 + i);
        CHECK(send(sv[1], fr, sizeof(fr), 0) == (ssize_t)sizeof(fr));
    }
    usleep(100000);
    CHECK(used_idx(&rx) == 1);
    pthread_mutex_lock(&d->lock);
    for (unsigned i = 0; i < 3; i++)
        chain1(&rx, DATA_GPA + 0x20000ULL * (1 + i), 2048, true);
    pthread_mutex_unlock(&d->lock);
    kick(d, 0);
    CHECK(wait_used(d, &rx, 4));
    for (unsigned i = 0; i < 3; i++)
        CHECK(frame_ok(buf(&gm, 1 + i) + NET_HDR_LEN, 200, 10 + i, NET_HDR_LEN));
    CHECK(st.rx_frames == 4 && st.rx_dropped == 0);

    /* TX on a kick; a bad chain among good ones. */
    fill_frame(buf(&gm, 8), NET_HDR_LEN + 300, 20);
    pthread_mutex_lock(&d->lock);
    chain1(&tx, DATA_GPA + 0x20000ULL * 8, NET_HDR_LEN + 300, false);
    chain1(&tx, DATA_GPA + 0x20000ULL * 8, 4, false);
    chain1(&tx, DATA_GPA + 0x20000ULL * 8, NET_HDR_LEN + 300, false);
    pthread_mutex_unlock(&d->lock);
    kick(d, 1);
    CHECK(wait_used(d, &tx, 3));
    uint8_t got[NET_HDR_LEN + 400];
    for (unsigned i = 0; i < 2; i++) {
        ssize_t k = recv(sv[1], got, sizeof(got), MSG_DONTWAIT);
        CHECK(k == NET_HDR_LEN + 300 && frame_ok(got, (size_t)k, 20, 0));
    }
    CHECK(st.tx_frames == 2 && st.bad_chains == 1);

    /* A broken queue: DEVICE_NEEDS_RESET, the worker keeps serving the other queue. */
    pthread_mutex_lock(&d->lock);
    chain1(&tx, 64ULL << 30, NET_HDR_LEN + 300, false);
    pthread_mutex_unlock(&d->lock);
    kick(d, 1);
    for (int i = 0; i < 100 && !st.broken; i++)
        usleep(10000);
    pthread_mutex_lock(&d->lock);
    CHECK(st.broken == 1 && (d->status & 0x40));
    chain1(&rx, DATA_GPA, 2048, true);
    pthread_mutex_unlock(&d->lock);
    kick(d, 0);
    CHECK(send(sv[1], fr, sizeof(fr), 0) == (ssize_t)sizeof(fr));
    CHECK(wait_used(d, &rx, 5));

    virtio_net_free(d);
    close(sv[0]);
    close(sv[1]);
    gm_free(&gm);
}

static void test_spec(void)
{
    struct net_spec s;
    char err[256];
    CHECK(net_spec_parse("tap=kovatap0,mac=fa:16:3e:00:00:01", &s, err, sizeof(err)) == 0);
    CHECK(strcmp(s.tap, "kovatap0") == 0 && s.fd == -1 && s.mac[0] == 0xfa && s.mac[5] == 1 &&
          s.vhost == NET_VHOST_AUTO);
    CHECK(net_spec_parse("fd=7,mac=FA:16:3E:0a:0B:0c,vhost=off", &s, err, sizeof(err)) == 0);
    CHECK(s.fd == 7 && !s.tap[0] && s.mac[4] == 0x0b && s.vhost == NET_VHOST_OFF);
    CHECK(net_spec_parse("tap=t,mac=fa:16:3e:00:00:01,vhost=on", &s, err, sizeof(err)) == 0 &&
          s.vhost == NET_VHOST_ON);
    static const char *const bad[] = {
        "",
        "tap=t",                                      /* no mac */
        "mac=fa:16:3e:00:00:01",                      /* no backend */
        "tap=t,fd=3,mac=fa:16:3e:00:00:01",           /* both */
        "tap=,mac=fa:16:3e:00:00:01",                 /* empty name */
        "tap=0123456789abcdef,mac=fa:16:3e:00:00:01", /* 16 bytes */
        "tap=a/b,mac=fa:16:3e:00:00:01",
        "tap=a b,mac=fa:16:3e:00:00:01",
        "fd=-1,mac=fa:16:3e:00:00:01",
        "fd=x,mac=fa:16:3e:00:00:01",
        "fd=99999999999,mac=fa:16:3e:00:00:01",
        "tap=t,mac=fa:16:3e:00:00",
        "tap=t,mac=fa:16:3e:00:00:0g",
        "tap=t,mac=fa-16-3e-00-00-01",
        "tap=t,mac=01:00:5e:00:00:01", /* multicast */
        "tap=t,mac=fa:16:3e:00:00:01,vhost=maybe",
        "tap=t,mac=fa:16:3e:00:00:01,queues=2",
        "tap=t,mac=fa:16:3e:00:00:01,novalue",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        int r = net_spec_parse(bad[i], &s, err, sizeof(err));
        CHECK(r == -EINVAL && strncmp(err, "--net", 5) == 0);
        if (r == 0)
            fprintf(stderr, "accepted: %s\n", bad[i]);
    }
}

/* ---- vhost-net: what goes to the kernel (no /dev/vhost-net needed) ---- */

static void test_vhost_helpers(void)
{
    /* features: what the driver acked that vhost implements, ring features only */
    uint64_t vf = VIRTIO_NET_F_MRG_RXBUF | VIRTIO_RING_F_EVENT_IDX | VIRTIO_RING_F_INDIRECT_DESC |
                  VIRTIO_F_VERSION_1 | (1ULL << 27) | (1ULL << 26);
    uint64_t acked = VIRTIO_NET_F_MRG_RXBUF | VIRTIO_RING_F_EVENT_IDX | VIRTIO_F_VERSION_1 |
                     VIRTIO_NET_F_CSUM | VIRTIO_NET_F_GUEST_TSO4 | VIRTIO_NET_F_MAC;
    CHECK(vhost_net_features(acked, vf) ==
          (VIRTIO_NET_F_MRG_RXBUF | VIRTIO_RING_F_EVENT_IDX | VIRTIO_F_VERSION_1));
    CHECK(vhost_net_features(acked, vf & ~VIRTIO_RING_F_EVENT_IDX) ==
          (VIRTIO_NET_F_MRG_RXBUF | VIRTIO_F_VERSION_1));

    /* the ring check: inside RAM (host addresses of the rings), else refused */
    struct guest_mem gm;
    CHECK(gm_alloc(&gm, 32ULL << 20) == 0);
    struct ring r;
    ring_init(&r, &gm);
    struct vhost_ring vr;
    r.vq.last_avail = 5;
    CHECK(vhost_ring_from_vq(&r.vq, &gm, &vr) == 0);
    CHECK(vr.num == QSIZE && vr.base == 5 && vr.kick == -1 && vr.call == -1);
    CHECK(vr.desc == (uint64_t)(uintptr_t)gm_ptr(&gm, DESC_GPA, 1) &&
          vr.avail == (uint64_t)(uintptr_t)gm_ptr(&gm, AVAIL_GPA, 1) &&
          vr.used == (uint64_t)(uintptr_t)gm_ptr(&gm, USED_GPA, 1));
    struct virtq bad = r.vq;
    bad.used_gpa = gm.size - 8ULL * QSIZE; /* the used ring runs past the end of RAM */
    CHECK(vhost_ring_from_vq(&bad, &gm, &vr) == -EINVAL);
    bad = r.vq;
    bad.desc_gpa = GM_GAP_START; /* in the MMIO gap */
    CHECK(vhost_ring_from_vq(&bad, &gm, &vr) == -EINVAL);
    bad = r.vq;
    bad.avail_gpa = 1ULL << 40;
    CHECK(vhost_ring_from_vq(&bad, &gm, &vr) == -EINVAL);
    bad = r.vq;
    bad.desc_gpa += 8; /* misaligned */
    CHECK(vhost_ring_from_vq(&bad, &gm, &vr) == -EINVAL);
    bad = r.vq;
    bad.enabled = false;
    CHECK(vhost_ring_from_vq(&bad, &gm, &vr) == -EINVAL);
    bad = r.vq;
    bad.broken = true;
    CHECK(vhost_ring_from_vq(&bad, &gm, &vr) == -EINVAL);
    gm_free(&gm);

    /* the memory table: RAM below the gap, and above 4 GiB (layout only, nothing mapped) */
    struct guest_mem big;
    gm_layout(&big, 5ULL << 30);
    big.host = (uint8_t *)(uintptr_t)0x7f0000000000ULL;
    uint64_t tbuf[64];
    CHECK(vhost_mem_size() <= sizeof(tbuf));
    CHECK(vhost_mem_fill(tbuf, &big) == 2);
    /* struct vhost_memory (<linux/vhost_types.h>, not included: it redefines VIRTIO_*_F_*) */
    struct {
        uint32_t nregions, padding;
        struct {
            uint64_t guest_phys_addr, memory_size, userspace_addr, flags_padding;
        } regions[2];
    } *m = (void *)tbuf;
    CHECK(m->nregions == 2);
    CHECK(m->regions[0].guest_phys_addr == 0 && m->regions[0].memory_size == big.low_size &&
          m->regions[0].userspace_addr == 0x7f0000000000ULL);
    CHECK(m->regions[1].guest_phys_addr == GM_HIGH_START &&
          m->regions[1].memory_size == big.high_size &&
          m->regions[1].userspace_addr == 0x7f0000000000ULL + big.low_size);
    struct guest_mem small;
    gm_layout(&small, 256ULL << 20);
    CHECK(vhost_mem_fill(tbuf, &small) == 1 && m->regions[0].memory_size == 256ULL << 20);
}

/* ---- the transport's irqfds for vhost's call eventfds: routed, re-routed, masked ---- */

struct fake_routes {
    int adds, sets, dels, msis;
    int fd, gsi;
    uint64_t addr;
    uint32_t data;
};
static int fr_add(void *o, int fd, uint64_t addr, uint32_t data)
{
    struct fake_routes *f = o;
    f->adds++;
    f->fd = fd;
    f->addr = addr;
    f->data = data;
    return f->gsi = 40 + f->adds;
}
static int fr_set(void *o, int gsi, uint64_t addr, uint32_t data)
{
    struct fake_routes *f = o;
    CHECK(gsi == f->gsi);
    f->sets++;
    f->addr = addr;
    f->data = data;
    return 0;
}
static void fr_del(void *o, int gsi, int fd)
{
    struct fake_routes *f = o;
    CHECK(gsi == f->gsi && fd == f->fd);
    f->dels++;
    f->gsi = -1;
}
static int fr_msi(void *o, uint64_t addr, uint32_t data)
{
    (void)addr;
    (void)data;
    ((struct fake_routes *)o)->msis++;
    return 0;
}

static void bar_w(struct virtio_pci_dev *d, uint64_t off, unsigned size, uint64_t v)
{
    uint8_t b[8];
    kova_le_put(b, size, v);
    d->pci.bar_ops[0]->write(d->pci.bar_opaque[0], off, b, size);
}
static uint64_t bar_r(struct virtio_pci_dev *d, uint64_t off, unsigned size)
{
    uint8_t b[8];
    d->pci.bar_ops[0]->read(d->pci.bar_opaque[0], off, b, size);
    return kova_le_get(b, size);
}
static void msix_ctl(struct virtio_pci_dev *d, uint16_t v)
{
    kova_le_put(d->pci.cfg + 0x42, 2, v);
    d->pci.cfg_written(&d->pci, 0x42, 2);
}
static uint64_t count(int fd)
{
    uint64_t v = 0;
    return read(fd, &v, sizeof(v)) == sizeof(v) ? v : 0;
}

static void test_call_irqfd(void)
{
    struct guest_mem gm;
    CHECK(gm_alloc(&gm, 16ULL << 20) == 0);
    struct fake_routes f = {.fd = -1, .gsi = -1};
    struct irq_sink sink = {.opaque = &f,
                            .msi = fr_msi,
                            .msi_route_add = fr_add,
                            .msi_route_set = fr_set,
                            .msi_route_del = fr_del};
    static const struct virtio_dev_ops ops = {
        .name = "test", .device_id = 1, .num_queues = 2, .queue_size = 8, .kick_fds = true};
    struct virtio_pci_dev *d = calloc(1, sizeof(*d));
    CHECK(d && virtio_pci_init(d, &ops, NULL, &gm, &sink) == 0);
    if (!d)
        return;
    const struct virtio_transport *t = d->vdev.transport;
    uint64_t e1 = VPCI_MSIX_OFF + 16; /* vector 1's table entry */
    msix_ctl(d, 0x8000);
    bar_w(d, e1 + 0, 4, 0xfee00000);
    bar_w(d, e1 + 8, 4, 0x41);
    bar_w(d, e1 + 12, 4, 0); /* unmasked */
    bar_w(d, 0x16, 2, 0);    /* queue_select 0 */
    bar_w(d, 0x1a, 2, 1);    /* queue_msix_vector 1 */
    pthread_mutex_lock(&d->lock);
    CHECK(t->queue_irqfd(&d->vdev, 1) == -1); /* queue 1 has no vector */
    int fd = t->queue_irqfd(&d->vdev, 0);
    pthread_mutex_unlock(&d->lock);
    /* routed at once, to the entry's message; the kernel (here: this test) writes the fd */
    CHECK(fd >= 0 && f.adds == 1 && f.fd == fd && f.addr == 0xfee00000 && f.data == 0x41);
    /* the guest rewrites the message: re-routed at once, no delivery needed */
    bar_w(d, e1 + 8, 4, 0x42);
    CHECK(f.sets == 1 && f.data == 0x42 && f.adds == 1);
    bar_w(d, e1 + 0, 8, 0xfee01000ULL);
    CHECK(f.sets == 2 && f.addr == 0xfee01000ULL);
    /* masked: unrouted; a write then is pending (the PBA shows it); unmask delivers it */
    bar_w(d, e1 + 12, 4, 1);
    CHECK(f.dels == 1 && f.gsi == -1);
    uint64_t one = 1;
    CHECK(write(fd, &one, sizeof(one)) == sizeof(one));
    CHECK(bar_r(d, VPCI_PBA_OFF, 8) == 2);
    bar_w(d, e1 + 12, 4, 0);
    CHECK(f.adds == 2 && f.data == 0x42 && f.addr == 0xfee01000ULL);
    CHECK(bar_r(d, VPCI_PBA_OFF, 8) == 0 && count(fd) == 1 && f.msis == 0);
    /* the function masked (MSI-X control), then unmasked: the same */
    msix_ctl(d, 0x8000 | 0x4000);
    CHECK(f.dels == 2);
    CHECK(write(fd, &one, sizeof(one)) == sizeof(one));
    msix_ctl(d, 0x8000);
    CHECK(f.adds == 3 && count(fd) == 1);
    /* MSI-X off: unrouted */
    msix_ctl(d, 0);
    CHECK(f.dels == 3);
    msix_ctl(d, 0x8000);
    CHECK(f.adds == 4);
    /* released: the transport's own lazy routing again (nothing changes until a delivery) */
    pthread_mutex_lock(&d->lock);
    t->irqfds_release(&d->vdev);
    pthread_mutex_unlock(&d->lock);
    bar_w(d, e1 + 8, 4, 0x43);
    CHECK(f.sets == 2);
    /* raise_queue: the interrupt now, through the route (no suppression check) */
    pthread_mutex_lock(&d->lock);
    t->raise_queue(&d->vdev, 0);
    pthread_mutex_unlock(&d->lock);
    CHECK(f.sets == 3 && f.data == 0x43 && count(fd) == 1);
    virtio_pci_destroy(d);
    free(d);

    /* No irqfd routes in the sink: queue_irqfd -1 (the device polls its own eventfds and
     * raises the interrupt itself), through KVM_SIGNAL_MSI. */
    struct fake_routes g = {.fd = -1, .gsi = -1};
    struct irq_sink plain = {.opaque = &g, .msi = fr_msi};
    d = calloc(1, sizeof(*d));
    CHECK(d && virtio_pci_init(d, &ops, NULL, &gm, &plain) == 0);
    if (d) {
        t = d->vdev.transport;
        msix_ctl(d, 0x8000);
        bar_w(d, e1 + 12, 4, 0);
        bar_w(d, 0x1a, 2, 1);
        pthread_mutex_lock(&d->lock);
        CHECK(t->queue_irqfd(&d->vdev, 0) == -1);
        t->raise_queue(&d->vdev, 0);
        pthread_mutex_unlock(&d->lock);
        CHECK(g.msis == 1);
        virtio_pci_destroy(d);
        free(d);
    }
    gm_free(&gm);
}

int main(void)
{
    test_check();
    test_tx();
    test_rx();
    test_device();
    test_spec();
    test_vhost_helpers();
    test_call_irqfd();
    return kt_finish("vmm net unit tests");
}
