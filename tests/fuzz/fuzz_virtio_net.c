/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: a hostile guest's virtio-net queues. The input is the set-up of both rings
 * (RX 0, TX 1), the guest's memory, the frames the backend receives and a list of steps that
 * run the device's data path as its worker does: net_tx_run() and net_rx_run() of virtio_net.c
 * (with virtq.c under them), over an AF_UNIX SOCK_DGRAM socketpair standing in for the tap, as
 * in tests/vmm/test_net.c. No threads, no sleeps: each step is one call.
 *
 * The device's calls of virtq_pop(), virtq_push() and vq_chain_copy_to() are watched (linked
 * with -Wl,--wrap), so besides ASan/UBSan the target checks what virtio_net.h and virtq.h
 * promise, and aborts when a promise breaks:
 *   - every chain handed out lies in one guest RAM region and adds up (as fuzz_virtio_blk.c);
 *     net_chain_check() agrees with its documented rule;
 *   - a chain is completed at most once, only when it was popped and not given back, in ring
 *     order; after a run every popped chain is completed or given back (unless the queue broke);
 *     last_avail only moves back over chains not completed; *used is the chains completed and
 *     the used index moved by exactly that;
 *   - TX: used length 0; a good chain is sent as one datagram holding exactly its readable
 *     bytes (or counted in tx_errors when the backend fails it), a bad one sends nothing; a
 *     backend that is full (EAGAIN) completes nothing good;
 *   - RX: only writable bytes of good chains are written; a frame's pieces are consecutive
 *     pieces of the frame the backend sent (content checked), in order; num_buffers is the
 *     number of buffers used (1 without MRG_RXBUF), in a buffer whose used length covers it;
 *     each used length is the bytes written into that chain (0 for a bad chain);
 *   - guest memory changes only where the device may write: the running queue's used ring
 *     (index, entries, avail_event with EVENT_IDX) and the bytes vq_chain_copy_to() was asked
 *     to write; never the used flags, the other queue's ring or anything else;
 *   - the counters match what happened, and no frame is lost: delivered + dropped + the one
 *     waiting in the device + those still in the socket = the frames the backend received.
 *
 * Input (little-endian):
 *   0  u8  flags: 1 INDIRECT_DESC, 2 EVENT_IDX, 4 MRG_RXBUF, 8 RAM split: 16 KiB low RAM, the
 *          rest at 4 GiB, 0x10 the TX backend is full (every send fails with EAGAIN), 0x20 (without
 *          0x10) the TX backend refuses frames over a few KiB (EMSGSIZE: an error, not EAGAIN)
 *   1  u8  RX queue size: 1 << (v % 9);  2 u8 TX queue size: 1 << (v % 9)
 *   3  u8  reserved
 *   4  u16 RX ring start index (last_avail and used_idx after enable);  6 u16 TX's
 *   8  u64 RX descriptor table, 16 avail ring, 24 used ring addresses; 32, 40, 48 TX's
 *  56  u32[4] frame lengths (datagram bytes, header included): v % (NET_HDR_LEN + NET_MAX_FRAME
 *          + 9); byte 0 of a frame is its number (in the order the backend got them), the rest
 *          a fixed pseudo-random pattern
 *  72  u8[16] steps, up to the first 0:  v & 3 == 0: the driver sets the avail index of queue
 *          (v >> 2) & 1 to its start + (v >> 3);  1: TX run, budget (v >> 2) + 1;  2: RX run,
 *          budget (v >> 2) + 1;  3: the backend receives frame (v >> 2) % 4
 *  88  ... guest memory, from guest address 0 (split: from its 16 KiB on at 4 GiB)
 */
#include "mem.h"
#include "virtio_net.h"
#include "virtq.h"
#include "fuzz_chain.h"

#include "kova/common.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define HDR_BYTES   88
#define MEM_BYTES   (128u * 1024)
#define SPLIT_LOW   (16u * 1024)
#define NSTEPS      16
#define NFRAMES     4
#define FRAME_MOD   (NET_HDR_LEN + NET_MAX_FRAME + 9)
#define DGRAM_BYTES (NET_HDR_LEN + NET_MAX_FRAME + 16)
#define TRACK       1024 /* divides 65536: the slot of avail index i is i % TRACK */
#define PAGE        4096u

#define F_INDIRECT 1
#define F_EVENT    2
#define F_MRG      4
#define F_SPLIT    8
#define F_FULL     0x10
#define F_SMALL    0x20

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int __real_virtq_pop(struct virtq *vq, const struct guest_mem *mem, struct vq_chain *c);
void __real_virtq_push(struct virtq *vq, uint16_t head, uint32_t len);
int __real_vq_chain_copy_to(const struct vq_chain *c, uint64_t skip, const void *src, size_t len);
int __wrap_virtq_pop(struct virtq *vq, const struct guest_mem *mem, struct vq_chain *c);
void __wrap_virtq_push(struct virtq *vq, uint16_t head, uint32_t len);
int __wrap_vq_chain_copy_to(const struct vq_chain *c, uint64_t skip, const void *src, size_t len);

/* A chain the device popped: avail index i lives in slot i % TRACK. */
struct entry {
    uint16_t head;
    bool good; /* passes the documented net_chain_check rule of its queue */
    uint64_t readable, writable;
    uint64_t copied; /* RX: bytes vq_chain_copy_to wrote into it */
};

/* One queue and what the device did with it. */
struct track {
    struct virtq vq;
    bool on, rx;
    uint16_t popped, pushed; /* chains before `pushed` completed, [pushed, popped) held */
    unsigned pushes, bad, good;
    uint64_t bytes;
    struct entry e[TRACK];
};

static uint8_t *ram, *shadow; /* guest memory (one heap block) and what it should hold */
static uint8_t *allowed;      /* bytes of ram vq_chain_copy_to was asked to write this run */
static bool any_allowed;
static struct guest_mem gm;
static struct track rxq, txq, *running;
static struct net_path path;
static struct net_stats stats;
static int sv[2] = {-1, -1};    /* sv[0]: the device's backend, sv[1]: the "network" */
static int full[2] = {-1, -1};  /* full[0]: a backend whose send buffer is full */
static int small[2] = {-1, -1}; /* small[0]: a backend with a small send buffer */
static int tx_peer;             /* where the TX backend's frames arrive */
static uint8_t flags;
static bool trace; /* KOVA_FUZZ_TRACE: one line per step */
static uint8_t *pattern, *dgram, *frame_buf;
static struct iovec iov[VQ_MAX_CHAIN];
static const struct vq_chain *last_chain; /* the chain of the latest successful pop */
static uint64_t seen_tx_errors;

/* Frames of this input: injected by the backend, then delivered by the device. */
static uint32_t inj_len[NSTEPS];
static unsigned ninj;
static int last_done; /* number of the last frame delivered, -1: none */
static unsigned frames_done;
static uint64_t frame_bytes;
static struct {
    uint32_t off, chunks;
    uint16_t first; /* avail index of the frame's first buffer */
    bool on;
} fr;

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_virtio_net: broken promise: %s\n", what);
    abort();
}

static void drain(int fd)
{
    while (recv(fd, dgram, DGRAM_BYTES, MSG_DONTWAIT) >= 0) {
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* a broken queue logs a line: far too many while fuzzing */
    kova_log_setup("fuzz-virtio-net", getenv("KOVA_FUZZ_LOG") ? KOVA_LOG_DEBUG : -2);
    trace = getenv("KOVA_FUZZ_TRACE") != NULL;
    ram = malloc(MEM_BYTES);
    shadow = malloc(MEM_BYTES);
    allowed = calloc(1, MEM_BYTES);
    pattern = malloc(DGRAM_BYTES);
    dgram = malloc(DGRAM_BYTES);
    frame_buf = malloc(DGRAM_BYTES);
    if (!ram || !shadow || !allowed || !pattern || !dgram || !frame_buf)
        fail("memory");
    uint32_t x = 0x9e3779b9u;
    for (size_t i = 0; i < DGRAM_BYTES; i++) {
        x = x * 1103515245u + 12345u;
        pattern[i] = i ? (uint8_t)(x >> 16) : 0;
    }
    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0 ||
        socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, full) < 0 ||
        socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, small) < 0)
        fail("socketpair");
    /* room for the largest frames (the system's default may be smaller: a frame bigger than
     * the send buffer fails with EMSGSIZE, not EAGAIN) */
    int sz = 1 << 20;
    for (int i = 0; i < 2; i++) {
        setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
        setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
        setsockopt(full[i], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
        setsockopt(full[i], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    }
    /* full[0]: filled up once and never read, so every send fails with EAGAIN */
    int got = 0;
    socklen_t gl = sizeof(got);
    if (getsockopt(full[0], SOL_SOCKET, SO_SNDBUF, &got, &gl) < 0 ||
        got < 2 * (NET_HDR_LEN + NET_MAX_FRAME))
        fail("no send buffer for the largest frame");
    memset(dgram, 0, DGRAM_BYTES);
    for (int i = 0; i < 100000 && send(full[0], dgram, 4096, MSG_DONTWAIT) == 4096; i++) {
    }
    for (int i = 0; i < 1000 && send(full[0], dgram, 64, MSG_DONTWAIT) == 64; i++) {
    }
    if (send(full[0], dgram, NET_HDR_LEN + NET_MIN_FRAME, MSG_DONTWAIT) >= 0 || errno != EAGAIN)
        fail("the full backend is not full");
    sz = 4096;
    setsockopt(small[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    setsockopt(small[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    if (send(small[0], dgram, NET_HDR_LEN + NET_MAX_FRAME, MSG_DONTWAIT) >= 0 || errno != EMSGSIZE)
        fail("the small backend takes the largest frame");
    if (net_path_init(&path, sv[0], &stats) < 0)
        fail("net_path_init");
    return 0;
}

/* ---- chains ---- */

static void check_chain(const struct virtq *vq, const struct vq_chain *c)
{
    const char *why = fuzz_chain_broken(vq, &gm, c);
    if (why)
        fail(why);
}

/* virtio_net.h's rule: RX writable only with the header's room; TX readable only, header and
 * a frame of NET_MIN_FRAME..NET_MAX_FRAME bytes. */
static bool chain_good(const struct vq_chain *c, bool rx)
{
    bool good = rx ? c->readable == 0 && c->writable >= NET_HDR_LEN
                   : c->writable == 0 && c->readable >= NET_HDR_LEN + NET_MIN_FRAME &&
                         c->readable <= NET_HDR_LEN + NET_MAX_FRAME;
    if (good != (net_chain_check(c, rx) == 0))
        fail("net_chain_check disagrees with its rule");
    return good;
}

static struct track *track_of(const struct virtq *vq)
{
    struct track *t = vq == &rxq.vq ? &rxq : vq == &txq.vq ? &txq : NULL;
    if (!t || t != running)
        fail("a queue used outside its own run");
    return t;
}

/* last_avail moved back since the last pop: chains given back (unpop); only held ones. */
static void sync_unpop(struct track *t)
{
    uint16_t back = (uint16_t)(t->popped - t->vq.last_avail);
    if (back > (uint16_t)(t->popped - t->pushed))
        fail("last_avail moved back over completed chains (or ahead without a pop)");
    t->popped = t->vq.last_avail;
}

int __wrap_virtq_pop(struct virtq *vq, const struct guest_mem *mem, struct vq_chain *c)
{
    struct track *t = track_of(vq);
    if (mem != &gm)
        fail("another guest memory");
    sync_unpop(t);
    int r = __real_virtq_pop(vq, mem, c);
    if (r < 0) {
        if (!vq->broken || vq->last_avail != t->popped)
            fail("a refused chain left the queue usable or moved it");
        return r;
    }
    if (r == 0) {
        if (vq->last_avail != t->popped)
            fail("an empty ring moved last_avail");
        return 0;
    }
    if (r != 1 || vq->last_avail != (uint16_t)(t->popped + 1))
        fail("virtq_pop result");
    check_chain(vq, c);
    if ((uint16_t)(t->popped - t->pushed) >= TRACK - 1)
        fail("too many chains held");
    t->e[t->popped % TRACK] =
        (struct entry){c->head, chain_good(c, t->rx), c->readable, c->writable, 0};
    t->popped++;
    last_chain = c;
    return 1;
}

/* A TX chain completed: a good one was sent (the next datagram is its readable bytes) unless
 * the backend refused it with an error; a bad one sent nothing. */
static void tx_completed(struct track *t, const struct entry *e, uint16_t head, uint32_t len)
{
    if (len != 0)
        fail("TX used length not 0");
    if (!e->good) {
        t->bad++;
        return;
    }
    /* the full backend only ever says EAGAIN: the chain must stay in the ring */
    if (flags & F_FULL)
        fail("a frame the backend refused was completed");
    if (stats.tx_errors != seen_tx_errors) {
        seen_tx_errors = stats.tx_errors;
        return;
    }
    if ((uint16_t)(t->popped - t->pushed) != 1 || last_chain->head != head)
        fail("TX completes a chain other than the one just popped");
    ssize_t n = recv(tx_peer, dgram, DGRAM_BYTES, MSG_DONTWAIT);
    if (n < 0 || (uint64_t)n != e->readable)
        fail("a good TX chain was not sent whole, as one frame");
    uint64_t at = 0;
    for (unsigned i = 0; i < last_chain->n; i++) {
        const struct vq_buf *b = &last_chain->buf[i];
        if (memcmp(dgram + at, b->ptr, b->len) != 0)
            fail("the frame sent differs from the chain's bytes");
        at += b->len;
    }
    t->good++;
    t->bytes += e->readable - NET_HDR_LEN;
}

void __wrap_virtq_push(struct virtq *vq, uint16_t head, uint32_t len)
{
    struct track *t = track_of(vq);
    uint16_t held = (uint16_t)(t->popped - t->pushed);
    uint16_t kept = (uint16_t)(vq->last_avail - t->pushed); /* not given back */
    if (held == 0 || kept == 0 || kept > held)
        fail("completes a chain it does not hold");
    const struct entry *e = &t->e[t->pushed % TRACK];
    if (e->head != head)
        fail("completes chains out of ring order");
    if (len > e->writable)
        fail("used length past the chain's writable bytes");
    if (!t->rx) {
        tx_completed(t, e, head, len);
    } else if (len == 0) {
        if (e->good)
            fail("a good RX chain completed with 0 bytes");
        t->bad++;
    } else if (!e->good || len != e->copied) {
        fail("RX used length is not the bytes written");
    }
    uint16_t ui = vq->used_idx;
    __real_virtq_push(vq, head, len);
    if (vq->used_idx != (uint16_t)(ui + 1))
        fail("virtq_push did not move used_idx by one");
    t->pushed++;
    t->pushes++;
}

/* One frame piece (into the chain just popped) or num_buffers (into the frame's first). */
int __wrap_vq_chain_copy_to(const struct vq_chain *c, uint64_t skip, const void *src, size_t len)
{
    struct track *t = running;
    if (t != &rxq)
        fail("guest buffers written outside an RX run");
    int n = vq_chain_iov(c, true, skip, len, iov);
    if (n < 0)
        fail("a write past the chain's writable bytes");
    for (int i = 0; i < n; i++) {
        uint8_t *p = iov[i].iov_base;
        if (p < ram || p + iov[i].iov_len > ram + MEM_BYTES)
            fail("a write outside guest memory");
        memset(allowed + (p - ram), 1, iov[i].iov_len);
        any_allowed = true;
    }
    const uint8_t *s = src;
    if (c == path.chain) {
        struct entry *e = &t->e[(uint16_t)(t->popped - 1) % TRACK];
        if (skip != 0 || t->popped == t->pushed || e->head != c->head || !e->good)
            fail("a frame piece not at the start of the chain just popped (a good one)");
        if (s < path.frame || len > path.frame_len ||
            (size_t)(s - path.frame) > path.frame_len - len)
            fail("a frame piece not from the device's frame");
        uint32_t off = (uint32_t)(s - path.frame);
        unsigned serial = path.frame[0];
        if (off == 0) {
            /* a frame starts (again, after its buffers were given back) */
            if ((int)serial <= last_done || serial >= ninj || inj_len[serial] != path.frame_len)
                fail("a frame delivered out of order, twice or not as sent");
            fr.off = fr.chunks = 0;
            fr.first = (uint16_t)(t->popped - 1);
            fr.on = true;
        } else if (!fr.on || off != fr.off) {
            fail("frame pieces not consecutive");
        }
        size_t k = off == 0 && len; /* byte 0: the frame's number */
        if ((k && s[0] != serial) || memcmp(s + k, pattern + off + k, len - k) != 0)
            fail("a frame piece differs from the frame sent");
        fr.off += (uint32_t)len;
        fr.chunks++;
        e->copied += len;
    } else if (c == path.first) {
        if (skip != 10 || len != 2 || !fr.on)
            fail("a write into the first buffer that is not num_buffers");
        const struct entry *e = &t->e[fr.first % TRACK];
        uint16_t d = (uint16_t)(t->popped - fr.first);
        if (d == 0 || d > (uint16_t)(t->popped - t->pushed) || e->head != c->head ||
            e->copied < NET_HDR_LEN)
            fail("num_buffers not in the frame's first buffer");
        unsigned nb = s[0] | (unsigned)s[1] << 8;
        if (nb != fr.chunks || (!path.mrg_rxbuf && nb != 1))
            fail("num_buffers is not the buffers used");
        if (fr.off != path.frame_len)
            fail("a frame completed before all of it was written");
        last_done = path.frame[0];
        frames_done++;
        frame_bytes += path.frame_len - NET_HDR_LEN;
        fr.on = false;
    } else {
        fail("a write into a chain that is not the device's");
    }
    if (__real_vq_chain_copy_to(c, skip, src, len) != 0)
        fail("vq_chain_copy_to refused a range vq_chain_iov accepted");
    return 0;
}

/* ---- runs ---- */

/* Guest memory changed only in the queue's used ring and where copy_to was asked to write.
 * (Not instrumented for coverage: its byte loop would take most of the time, for no coverage
 * of the device.) */
__attribute__((noinline, no_sanitize("coverage"))) static void check_mem(const struct track *t)
{
    size_t u = (size_t)(t->vq.used - ram);
    size_t ulo = u + 2, uhi = u + 4 + 8 * (size_t)t->vq.size + (t->vq.event_idx ? 2 : 0);
    for (size_t pg = 0; pg < MEM_BYTES; pg += PAGE) {
        if (memcmp(ram + pg, shadow + pg, PAGE) == 0)
            continue;
        for (size_t i = pg; i < pg + PAGE; i++)
            if (ram[i] != shadow[i] && !allowed[i] && (i < ulo || i >= uhi))
                fail("guest memory written outside the used ring and the chains' buffers");
        memcpy(shadow + pg, ram + pg, PAGE);
    }
    if (any_allowed)
        memset(allowed, 0, MEM_BYTES);
    any_allowed = false;
}

static void run(struct track *t, unsigned budget)
{
    if (!t->on)
        return;
    uint64_t tx_frames = stats.tx_frames, tx_bytes = stats.tx_bytes, bad = stats.bad_chains;
    uint64_t rx_frames = stats.rx_frames, rx_bytes = stats.rx_bytes;
    unsigned done0 = frames_done;
    uint64_t fbytes0 = frame_bytes;
    uint16_t ui = t->vq.used_idx;
    bool was_broken = t->vq.broken;
    t->pushes = t->bad = t->good = 0;
    t->bytes = 0;
    seen_tx_errors = stats.tx_errors;
    path.fd = t->rx ? sv[0] : flags & F_FULL ? full[0] : flags & F_SMALL ? small[0] : sv[0];
    tx_peer = flags & F_SMALL ? small[1] : sv[1];
    unsigned used = ~0u;
    running = t;
    enum net_rc rc = t->rx ? net_rx_run(&path, &t->vq, &gm, budget, &used)
                           : net_tx_run(&path, &t->vq, &gm, budget, &used);
    running = NULL;
    if (trace)
        fprintf(stderr, "%s run, budget %u: rc %d, used %u%s, last_avail %u, used_idx %u\n",
                t->rx ? "RX" : "TX", budget, (int)rc, used, t->vq.broken ? " (broken)" : "",
                t->vq.last_avail, t->vq.used_idx);
    sync_unpop(t);
    if (used != t->pushes || (uint16_t)(t->vq.used_idx - ui) != used)
        fail("*used is not the chains completed");
    if ((rc == NET_BROKEN) != t->vq.broken || (was_broken && used))
        fail("NET_BROKEN and the queue's state disagree");
    if (!t->vq.broken && t->popped != t->pushed)
        fail("chains popped but neither completed nor given back");
    if (rc != NET_DONE && rc != NET_BUDGET && rc != NET_STALLED && rc != NET_BROKEN)
        fail("unknown net_rc");
    if (!t->rx && rc == NET_BUDGET && used != budget)
        fail("TX NET_BUDGET before the budget was spent");
    if (stats.bad_chains - bad != t->bad)
        fail("bad_chains is not the bad chains completed");
    if (!t->rx) {
        if (stats.tx_frames - tx_frames != t->good || stats.tx_bytes - tx_bytes != t->bytes)
            fail("tx_frames/tx_bytes");
        if (recv(tx_peer, dgram, DGRAM_BYTES, MSG_DONTWAIT) >= 0)
            fail("a frame sent without its chain completed");
    } else {
        if (stats.rx_frames - rx_frames != frames_done - done0 ||
            stats.rx_bytes - rx_bytes != frame_bytes - fbytes0)
            fail("rx_frames/rx_bytes");
    }
    if (used)
        virtq_should_notify(&t->vq);
    check_mem(t);
}

static void setup_queue(struct track *t, const uint8_t *data, bool rx)
{
    const uint8_t *a = data + (rx ? 8 : 32);
    virtq_reset(&t->vq, NET_QUEUE_SIZE);
    t->rx = rx;
    t->vq.size = (uint16_t)(1u << (data[rx ? 1 : 2] % 9));
    t->vq.indirect = flags & F_INDIRECT;
    t->vq.event_idx = flags & F_EVENT;
    t->vq.desc_gpa = kova_le_get(a, 8);
    t->vq.avail_gpa = kova_le_get(a + 8, 8);
    t->vq.used_gpa = kova_le_get(a + 16, 8);
    t->on = virtq_enable(&t->vq, &gm) == 0;
    if (!t->on) {
        if (t->vq.enabled)
            fail("a refused queue is enabled");
        if (trace)
            fprintf(stderr, "%s: virtq_enable refused the rings\n", rx ? "RX" : "TX");
        return;
    }
    uint16_t start = (uint16_t)kova_le_get(data + (rx ? 4 : 6), 2);
    t->vq.last_avail = t->vq.used_idx = start;
    t->popped = t->pushed = start;
}

static void inject(const uint8_t *data, unsigned k)
{
    uint32_t len = (uint32_t)(kova_le_get(data + 56 + 4 * k, 4) % FRAME_MOD);
    memcpy(frame_buf, pattern, len);
    frame_buf[0] = (uint8_t)ninj;
    ssize_t n = send(sv[1], frame_buf, len, MSG_DONTWAIT);
    if (trace)
        fprintf(stderr, "backend receives frame %u: %u bytes%s\n", ninj, len,
                n < 0 ? " (socket full: not sent)" : "");
    if (n >= 0)
        inj_len[ninj++] = len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < HDR_BYTES)
        return 0;
    flags = data[0];
    gm_layout(&gm, MEM_BYTES);
    if (flags & F_SPLIT) {
        gm.low_size = SPLIT_LOW;
        gm.high_size = MEM_BYTES - gm.low_size;
    }
    gm.host = ram;
    size_t img = size - HDR_BYTES < MEM_BYTES ? size - HDR_BYTES : MEM_BYTES;
    memcpy(ram, data + HDR_BYTES, img);
    memset(ram + img, 0, MEM_BYTES - img);
    memcpy(shadow, ram, MEM_BYTES);

    drain(sv[0]);
    drain(sv[1]);
    drain(small[1]);
    memset(&stats, 0, sizeof(stats));
    path.frame_len = 0;
    path.mrg_rxbuf = flags & F_MRG;
    ninj = frames_done = 0;
    frame_bytes = 0;
    last_done = -1;
    fr.on = false;
    setup_queue(&rxq, data, true);
    setup_queue(&txq, data, false);

    for (unsigned s = 0; s < NSTEPS && data[72 + s]; s++) {
        uint8_t v = data[72 + s];
        unsigned arg = v >> 2;
        switch (v & 3) {
        case 0: {
            struct track *t = arg & 1 ? &txq : &rxq;
            if (t->on) {
                uint16_t idx =
                    (uint16_t)((t->rx ? kova_le_get(data + 4, 2) : kova_le_get(data + 6, 2)) +
                               (v >> 3));
                size_t off = (size_t)(t->vq.avail + 2 - ram);
                kova_le_put(ram + off, 2, idx);
                kova_le_put(shadow + off, 2, idx);
                if (trace)
                    fprintf(stderr, "%s avail idx := %u\n", t->rx ? "RX" : "TX", idx);
            }
            break;
        }
        case 1:
            run(&txq, arg + 1);
            break;
        case 2:
            run(&rxq, arg + 1);
            break;
        default:
            inject(data, arg % NFRAMES);
            break;
        }
    }

    /* Every frame the backend received is delivered, dropped (counted), waiting in the device
     * or still in the socket. */
    unsigned left = 0;
    while (recv(sv[0], dgram, DGRAM_BYTES, MSG_DONTWAIT) >= 0)
        left++;
    if (frames_done + stats.rx_dropped + (path.frame_len ? 1 : 0) + left != ninj)
        fail("a frame lost or made up (rx_frames + rx_dropped + waiting != received)");
    if (trace)
        fprintf(stderr, "frames: %u received, %u delivered, %llu dropped, %u waiting, %u unread\n",
                ninj, frames_done, (unsigned long long)stats.rx_dropped, path.frame_len ? 1 : 0,
                left);
    return 0;
}
