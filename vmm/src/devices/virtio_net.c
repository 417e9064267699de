/* SPDX-License-Identifier: Apache-2.0 */
#include "virtio_net.h"
#include "log.h"
#include "sandbox.h"
#include "tap.h"
#include "vhost_net.h"

#include "kova/vmm.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

_Static_assert(NET_HDR_LEN == TAP_VNET_HDR_LEN, "the tap carries the device's header");
_Static_assert(NET_MAX_NICS == KOVA_VMM_MAX_NETS, "one NIC per --net option");

#define NET_CONFIG_LEN  10 /* mac[6], status, max_virtqueue_pairs */
#define NET_S_LINK_UP   1
#define NET_BUDGET_N    64 /* chains or frames per queue before the worker polls again */
#define NET_FRAME_BYTES (NET_HDR_LEN + NET_MAX_FRAME + 1) /* +1: an oversized read shows */

#define NET_FEATURES                                                                               \
    (VIRTIO_NET_F_CSUM | VIRTIO_NET_F_GUEST_CSUM | VIRTIO_NET_F_MAC | VIRTIO_NET_F_GUEST_TSO4 |    \
     VIRTIO_NET_F_GUEST_TSO6 | VIRTIO_NET_F_HOST_TSO4 | VIRTIO_NET_F_HOST_TSO6 |                   \
     VIRTIO_NET_F_MRG_RXBUF | VIRTIO_NET_F_STATUS | VIRTIO_RING_F_EVENT_IDX |                      \
     VIRTIO_RING_F_INDIRECT_DESC)

/* ---- the data path ---- */

int net_path_init(struct net_path *p, int fd, struct net_stats *stats)
{
    memset(p, 0, sizeof(*p));
    p->fd = fd;
    p->stats = stats;
    p->frame = malloc(NET_FRAME_BYTES);
    p->chain = calloc(2, sizeof(*p->chain));
    if (!p->frame || !p->chain) {
        net_path_free(p);
        return -ENOMEM;
    }
    p->first = p->chain + 1;
    return 0;
}

void net_path_free(struct net_path *p)
{
    free(p->frame);
    free(p->chain);
    p->frame = NULL;
    p->chain = p->first = NULL;
}

int net_chain_check(const struct vq_chain *c, bool rx)
{
    if (rx)
        return c->readable ? 1 : c->writable < NET_HDR_LEN ? 2 : 0;
    if (c->writable)
        return 1; /* readable and writable mixed up */
    if (c->readable < NET_HDR_LEN)
        return 2; /* no room for the header */
    uint64_t frame = c->readable - NET_HDR_LEN;
    return frame < NET_MIN_FRAME || frame > NET_MAX_FRAME ? 3 : 0;
}

/* Gives the last n popped chains back to the ring (they are popped, and checked, again). */
static void unpop(struct virtq *vq, unsigned n)
{
    vq->last_avail = (uint16_t)(vq->last_avail - n);
}

enum net_rc net_tx_run(struct net_path *p, struct virtq *vq, const struct guest_mem *mem,
                       unsigned budget, unsigned *used)
{
    struct vq_chain *c = p->chain;
    struct iovec iov[VQ_MAX_CHAIN];
    *used = 0;
    for (unsigned i = 0; i < budget; i++) {
        int r = virtq_pop(vq, mem, c);
        if (r < 0)
            return NET_BROKEN;
        if (r == 0)
            return NET_DONE;
        if (net_chain_check(c, false)) {
            atomic_fetch_add(&p->stats->bad_chains, 1);
        } else {
            int n = vq_chain_iov(c, false, 0, c->readable, iov);
            ssize_t w = n < 0 ? -1 : writev(p->fd, iov, n);
            if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) {
                unpop(vq, 1);
                return NET_STALLED;
            }
            if (w < 0) {
                atomic_fetch_add(&p->stats->tx_errors, 1);
            } else {
                atomic_fetch_add(&p->stats->tx_frames, 1);
                atomic_fetch_add(&p->stats->tx_bytes, c->readable - NET_HDR_LEN);
            }
        }
        virtq_push(vq, c->head, 0);
        (*used)++;
    }
    return NET_BUDGET;
}

/* Puts the frame in p->frame into the RX ring: 1 done (or dropped: it can never fit), 0 the
 * ring ran out of buffers (every chain taken for it given back), -1 the guest broke the ring.
 * The chains taken for the frame are completed only once it is complete: chains refused by
 * net_chain_check before the first good one are completed (0 used) at once, later ones with the
 * frame, so the chains popped and not completed are always the ring's last ones (unpop). */
static int rx_frame(struct net_path *p, struct virtq *vq, const struct guest_mem *mem,
                    unsigned *used)
{
    struct vq_chain *c = p->chain;
    uint32_t total = p->frame_len, copied = 0;
    unsigned nslots = 0, nbufs = 0, bad = 0, taken = 0;
    while (copied < total) {
        int r = virtq_pop(vq, mem, c);
        if (r < 0)
            return -1;
        if (r == 0 || nslots == NET_QUEUE_SIZE) {
            unpop(vq, nslots + (r > 0));
            if (taken + (r > 0) < vq->size)
                return 0; /* wait for more */
            /* a whole ring's buffers are not enough: the frame can never fit */
            atomic_fetch_add(&p->stats->rx_dropped, 1);
            return 1;
        }
        taken++;
        if (net_chain_check(c, true)) {
            if (nslots == 0) {
                atomic_fetch_add(&p->stats->bad_chains, 1);
                virtq_push(vq, c->head, 0);
                (*used)++;
            } else {
                p->slots[nslots++] = (struct net_slot){c->head, 0};
                bad++;
            }
            continue;
        }
        if (!p->mrg_rxbuf && c->writable < total) {
            /* one buffer per frame, and this one is too small: the frame is dropped */
            unpop(vq, nslots + 1);
            atomic_fetch_add(&p->stats->rx_dropped, 1);
            return 1;
        }
        uint32_t n = total - copied;
        if (n > c->writable)
            n = (uint32_t)c->writable;
        vq_chain_copy_to(c, 0, p->frame + copied, n);
        if (nbufs == 0)
            memcpy(p->first, c, sizeof(*c));
        p->slots[nslots++] = (struct net_slot){c->head, n};
        nbufs++;
        copied += n;
    }
    uint8_t nb[2] = {(uint8_t)nbufs, (uint8_t)(nbufs >> 8)};
    vq_chain_copy_to(p->first, 10, nb, 2); /* num_buffers */
    for (unsigned i = 0; i < nslots; i++)
        virtq_push(vq, p->slots[i].head, p->slots[i].len);
    *used += nslots;
    atomic_fetch_add(&p->stats->bad_chains, bad);
    atomic_fetch_add(&p->stats->rx_frames, 1);
    atomic_fetch_add(&p->stats->rx_bytes, total - NET_HDR_LEN);
    return 1;
}

enum net_rc net_rx_run(struct net_path *p, struct virtq *vq, const struct guest_mem *mem,
                       unsigned budget, unsigned *used)
{
    *used = 0;
    for (unsigned i = 0; i < budget; i++) {
        if (!p->frame_len) {
            /* Read the backend only while the guest has a buffer for what comes. */
            int r = virtq_pop(vq, mem, p->chain);
            if (r < 0)
                return NET_BROKEN;
            if (r == 0)
                return NET_STALLED;
            unpop(vq, 1);
            ssize_t n = read(p->fd, p->frame, NET_FRAME_BYTES);
            if (n < 0)
                return NET_DONE; /* EAGAIN; an error shows in poll's revents */
            if (n < NET_HDR_LEN + NET_MIN_FRAME || n > NET_HDR_LEN + NET_MAX_FRAME) {
                atomic_fetch_add(&p->stats->rx_dropped, 1);
                continue;
            }
            p->frame_len = (uint32_t)n;
        }
        int r = rx_frame(p, vq, mem, used);
        if (r < 0)
            return NET_BROKEN;
        if (r == 0)
            return NET_STALLED;
        p->frame_len = 0;
    }
    return NET_BUDGET;
}

/* ---- the backends ---- */

int net_backends_open(struct net_backends *out, const struct net_spec *specs, unsigned n)
{
    memset(out, 0, sizeof(*out));
    if (n == 0)
        return 0;
    if (n > NET_MAX_NICS) {
        log_err("at most %d NICs", NET_MAX_NICS);
        return -E2BIG;
    }
    out->be = calloc(n, sizeof(*out->be));
    out->stats = calloc(n, sizeof(*out->stats));
    if (!out->be || !out->stats) {
        net_backends_close(out);
        log_err("out of memory");
        return -ENOMEM;
    }
    for (unsigned i = 0; i < n; i++)
        out->be[i].fd = out->be[i].vhost_fd = -1;
    for (unsigned i = 0; i < n; i++) {
        const struct net_spec *s = &specs[i];
        struct net_backend *be = &out->be[i];
        const char *why = NULL;
        int r;
        out->n = i + 1; /* closed from here on */
        if (s->tap[0]) {
            r = tap_open(s->tap, &why);
            if (r >= 0) {
                be->fd = r;
                snprintf(be->ifname, sizeof(be->ifname), "%s", s->tap);
            }
        } else {
            r = tap_adopt(s->fd, be->ifname, &why);
            be->fd = r < 0 ? -1 : s->fd;
        }
        if (r < 0) {
            log_err("net %u (%s%s): %s: %s", i, s->tap[0] ? "tap " : "fd ", s->tap[0] ? s->tap : "",
                    why, strerror(-r));
            net_backends_close(out);
            return r;
        }
        be->is_tap = true;
        memcpy(be->mac, s->mac, 6);
        be->stats = &out->stats[i];
        const char *vwhy = NULL;
        int vr = 0;
        if (s->vhost != NET_VHOST_OFF) {
            vr = vhost_net_open(&be->vhost_features, &vwhy);
            if (vr >= 0) {
                be->vhost_fd = vr;
                be->vhost = true;
            } else if (s->vhost == NET_VHOST_ON) {
                log_err("net %u (tap %s): vhost=on: %s: %s", i, be->ifname, vwhy, strerror(-vr));
                net_backends_close(out);
                return vr;
            }
        }
        log_info("net eth%u: tap %s, mac %02x:%02x:%02x:%02x:%02x:%02x, %s", i, be->ifname,
                 s->mac[0], s->mac[1], s->mac[2], s->mac[3], s->mac[4], s->mac[5],
                 be->vhost ? "vhost-net" : "userspace path");
        if (vr < 0)
            log_info("net eth%u: vhost=auto: vhost-net not usable (%s: %s): userspace path", i,
                     vwhy, strerror(-vr));
    }
    return 0;
}

void net_backends_close(struct net_backends *nb)
{
    for (unsigned i = 0; i < nb->n; i++) {
        if (nb->be[i].fd >= 0)
            close(nb->be[i].fd);
        if (nb->be[i].vhost_fd >= 0)
            close(nb->be[i].vhost_fd);
    }
    free(nb->be);
    free(nb->stats);
    memset(nb, 0, sizeof(*nb));
}

/* ---- the device ---- */

struct net {
    struct virtio_dev *dev; /* the transport's view, from start() on */
    struct net_backend be;
    uint8_t config[NET_CONFIG_LEN];
    int wake_fd;             /* eventfd: reset and stop wake the worker */
    int own_call[2];         /* vhost's call eventfds where the transport has no irqfd */
    pthread_cond_t vhost_cv; /* signalled when vhost_running goes false */
    /* Under the device lock: */
    struct net_path path;
    bool offload_set; /* the tap's offloads match the driver's features */
    bool stopping;
    bool thread_started;
    unsigned resets;    /* driver resets seen (net_reset) */
    bool vhost_running; /* the kernel has the rings (started during reset number vhost_gen) */
    unsigned vhost_gen;
    bool vhost_failed;  /* vhost could not start for reset number vhost_gen: wait for one */
    bool own_polled[2]; /* own_call[q] is vhost's call fd of queue q */
    pthread_t thread;
};

static void drain(int fd)
{
    uint64_t v;
    if (read(fd, &v, sizeof(v)) < 0) {
        /* EAGAIN: nothing pending */
    }
}

static void poke(int fd)
{
    uint64_t one = 1;
    if (write(fd, &one, sizeof(one)) < 0) {
        /* only on counter overflow: readable either way */
    }
}

static unsigned offload_flags(uint64_t f)
{
    unsigned fl = 0;
    if (f & VIRTIO_NET_F_GUEST_CSUM) {
        fl |= TAP_F_CSUM;
        if (f & VIRTIO_NET_F_GUEST_TSO4)
            fl |= TAP_F_TSO4;
        if (f & VIRTIO_NET_F_GUEST_TSO6)
            fl |= TAP_F_TSO6;
    }
    return fl;
}

/* The tap's offloads from the driver's features, once per DRIVER_OK (device lock held). */
static void set_offload(struct net *n, uint64_t f)
{
    if (!n->offload_set && n->be.is_tap) {
        int r = tap_set_offload(n->be.fd, offload_flags(f));
        if (r < 0)
            log_warn("virtio-net %s: TUNSETOFFLOAD failed: %s", n->be.ifname, strerror(-r));
    }
    n->offload_set = true;
}

/* ---- vhost-net: started and stopped by the worker, with the device lock held ---- */

static void vhost_stop(struct net *n)
{
    struct virtio_dev *d = n->dev;
    uint16_t base[VHOST_NET_QUEUES];
    int r = vhost_net_stop(n->be.vhost_fd, base);
    if (r < 0)
        log_warn("virtio-net %s: stopping vhost-net: %s", n->be.ifname, strerror(-r));
    if (d->transport->irqfds_release)
        d->transport->irqfds_release(d);
    for (unsigned q = 0; q < 2; q++) {
        n->own_polled[q] = false;
        drain(n->own_call[q]);
    }
    n->vhost_running = false;
    log_debug("virtio-net %s: vhost-net stopped (rx at %u, tx at %u)", n->be.ifname, base[0],
              base[1]);
    pthread_cond_broadcast(&n->vhost_cv);
}

/* At DRIVER_OK: both rings (checked), their eventfds and the tap to the kernel. A ring outside
 * guest RAM or a refusal by the kernel: DEVICE_NEEDS_RESET, and no retry until the reset. */
static void vhost_start(struct net *n)
{
    struct virtio_dev *d = n->dev;
    struct vhost_ring ring[VHOST_NET_QUEUES];
    const char *why = "a ring is not enabled or lies outside guest RAM";
    int r = 0;
    n->vhost_gen = n->resets;
    for (unsigned q = 0; q < VHOST_NET_QUEUES; q++) {
        if ((r = vhost_ring_from_vq(&d->vq[q], d->mem, &ring[q])) < 0)
            goto fail;
        ring[q].kick = d->kick_fd[q];
        int call = d->transport->queue_irqfd ? d->transport->queue_irqfd(d, q) : -1;
        n->own_polled[q] = call < 0;
        ring[q].call = call < 0 ? n->own_call[q] : call;
    }
    uint64_t acked = virtio_driver_features(d);
    set_offload(n, acked);
    uint64_t f = vhost_net_features(acked, n->be.vhost_features);
    if ((r = vhost_net_start(n->be.vhost_fd, f, d->mem, ring, n->be.fd, &why)) < 0)
        goto fail;
    n->vhost_running = true;
    /* kicks the worker took before the kernel had the rings */
    for (unsigned q = 0; q < VHOST_NET_QUEUES; q++)
        poke(d->kick_fd[q]);
    log_info("virtio-net %s: vhost-net started (features 0x%llx, interrupts %s)", n->be.ifname,
             (unsigned long long)f,
             n->own_polled[0] || n->own_polled[1] ? "through the VMM" : "irqfd");
    return;
fail:
    log_warn("virtio-net %s: vhost-net: %s (%s): the device needs a reset", n->be.ifname, why,
             strerror(-r));
    if (d->transport->irqfds_release)
        d->transport->irqfds_release(d);
    n->own_polled[0] = n->own_polled[1] = false;
    n->vhost_failed = true;
    atomic_fetch_add(&n->be.stats->broken, 1);
    virtio_needs_reset(d);
}

/* The worker's step with vhost (lock held): the poll timeout. */
static int vhost_step(struct net *n)
{
    struct virtio_dev *d = n->dev;
    bool ready = virtio_driver_ok(d);
    if (n->vhost_running && (!ready || n->vhost_gen != n->resets))
        vhost_stop(n);
    if (n->vhost_failed && n->vhost_gen != n->resets)
        n->vhost_failed = false;
    if (ready && !n->vhost_running && !n->vhost_failed)
        vhost_start(n);
    return ready ? -1 : 100;
}

/* The worker's step on the userspace path (lock held): runs the TX ring, then the RX ring.
 * Returns the poll timeout; *rx_stalled, *tx_blocked: what to wait for. */
static int user_step(struct net *n, bool *rx_stalled, bool *tx_blocked)
{
    struct virtio_dev *d = n->dev;
    int timeout = -1;
    if (!virtio_driver_ok(d)) {
        *rx_stalled = *tx_blocked = false;
        return 100;
    }
    uint64_t f = virtio_driver_features(d);
    set_offload(n, f);
    n->path.mrg_rxbuf = (f & VIRTIO_NET_F_MRG_RXBUF) != 0;
    unsigned used;
    struct virtq *tx = &d->vq[1], *rx = &d->vq[0];
    if (tx->enabled && !tx->broken && !*tx_blocked) {
        enum net_rc rc = net_tx_run(&n->path, tx, d->mem, NET_BUDGET_N, &used);
        if (used)
            virtio_notify_queue(d, 1);
        if (rc == NET_BROKEN) {
            atomic_fetch_add(&n->be.stats->broken, 1);
            virtio_needs_reset(d);
        }
        *tx_blocked = rc == NET_STALLED;
        if (rc == NET_BUDGET)
            timeout = 0;
    }
    if (rx->enabled && !rx->broken && !*rx_stalled) {
        enum net_rc rc = net_rx_run(&n->path, rx, d->mem, NET_BUDGET_N, &used);
        if (used)
            virtio_notify_queue(d, 0);
        if (rc == NET_BROKEN) {
            atomic_fetch_add(&n->be.stats->broken, 1);
            virtio_needs_reset(d);
        }
        *rx_stalled = rc == NET_STALLED || rc == NET_BROKEN;
        if (rc == NET_BUDGET)
            timeout = 0;
    }
    if (!rx->enabled || rx->broken)
        *rx_stalled = true;
    return timeout;
}

/*
 * The worker. Userspace path: under the device lock it runs the TX ring, then the RX ring, then
 * sleeps (without the lock) in poll on both kick eventfds and the backend: POLLIN only while
 * the RX ring has buffers (and no frame waits), POLLOUT only while TX is blocked. Both rings
 * are looked at again after every wake-up; an empty ring re-arms avail_event first
 * (virtq_pop), so no kick is lost. Before DRIVER_OK it looks every 100 ms (the driver may have
 * filled the RX ring before it set DRIVER_OK and not kick again).
 * vhost-net: it starts the kernel at DRIVER_OK and stops it at a reset (waking on wake_fd, or
 * on a kick before the kernel has the rings); while the kernel runs it polls only wake_fd and
 * the call eventfds of its own (raise_queue), never the kicks or the tap.
 */
static void *net_worker(void *arg)
{
    struct net *n = arg;
    struct virtio_dev *d = n->dev;
    const char *why = NULL;
    if (sandbox_thread(SANDBOX_NET, &why) < 0) {
        log_err("virtio-net worker: %s", why);
        _exit(KOVA_VMM_EXIT_ERROR); /* never serve a guest unsandboxed */
    }
    bool rx_stalled = false, tx_blocked = false, backend_err = false;
    pthread_mutex_lock(d->lock);
    while (!n->stopping) {
        bool ready = virtio_driver_ok(d);
        struct pollfd pf[4];
        int timeout;
        if (n->be.vhost) {
            timeout = vhost_step(n);
            bool kicks = !n->vhost_running;
            pf[0] = (struct pollfd){.fd = kicks ? d->kick_fd[0] : -1, .events = POLLIN};
            pf[1] = (struct pollfd){.fd = kicks ? d->kick_fd[1] : -1, .events = POLLIN};
            pf[2] = (struct pollfd){.fd = n->own_polled[0] ? n->own_call[0] : -1, .events = POLLIN};
            pf[3] = (struct pollfd){.fd = n->own_polled[1] ? n->own_call[1] : -1, .events = POLLIN};
        } else {
            timeout = user_step(n, &rx_stalled, &tx_blocked);
            pf[0] = (struct pollfd){.fd = d->kick_fd[0], .events = POLLIN};
            pf[1] = (struct pollfd){.fd = d->kick_fd[1], .events = POLLIN};
            pf[2] = (struct pollfd){.fd = backend_err ? -1 : n->be.fd,
                                    .events = (short)((ready && !rx_stalled ? POLLIN : 0) |
                                                      (tx_blocked ? POLLOUT : 0))};
            pf[3] = (struct pollfd){.fd = n->wake_fd, .events = POLLIN};
        }
        struct pollfd wake = {.fd = n->wake_fd, .events = POLLIN};
        pthread_mutex_unlock(d->lock);
        struct pollfd all[5] = {pf[0], pf[1], pf[2], pf[3], wake};
        int pr = poll(all, n->be.vhost ? 5 : 4, timeout);
        pthread_mutex_lock(d->lock);
        if (pr <= 0)
            continue;
        if (all[0].revents)
            drain(d->kick_fd[0]);
        if (all[1].revents)
            drain(d->kick_fd[1]);
        if (n->be.vhost) {
            if (all[4].revents)
                drain(n->wake_fd);
            for (unsigned q = 0; q < 2; q++) {
                if (all[2 + q].revents && n->own_polled[q]) {
                    drain(n->own_call[q]);
                    d->transport->raise_queue(d, q);
                }
            }
            continue;
        }
        if (all[0].revents)
            rx_stalled = false;
        if (all[3].revents)
            drain(n->wake_fd);
        if (all[2].revents & POLLOUT)
            tx_blocked = false;
        if (all[2].revents & (POLLERR | POLLHUP | POLLNVAL)) {
            log_warn("virtio-net %s: the backend failed (poll revents 0x%x): not polled any more",
                     n->be.ifname, (unsigned)all[2].revents);
            backend_err = true;
            tx_blocked = false;
        }
    }
    if (n->vhost_running)
        vhost_stop(n);
    pthread_mutex_unlock(d->lock);
    return NULL;
}

static void net_reset(struct virtio_dev *d)
{
    struct net *n = d->opaque;
    /* The queues are already reset; the worker holds the lock while it touches them. A frame
     * that waited for buffers is dropped with the old rings. */
    n->path.frame_len = 0;
    n->offload_set = false;
    n->resets++;
    /* vhost: the kernel must be off the rings before the driver sees the reset done. */
    if (n->vhost_running && n->thread_started && !n->stopping) {
        poke(n->wake_fd);
        while (n->vhost_running)
            pthread_cond_wait(&n->vhost_cv, d->lock);
    }
}

static uint64_t net_features(struct virtio_dev *d)
{
    struct net *n = d->opaque;
    uint64_t f = NET_FEATURES;
    if (n->be.vhost) /* the ring features the kernel lacks (none in practice) */
        f &= ~(VHOST_NET_RING_FEATURES & ~n->be.vhost_features);
    return f;
}

static void net_config_read(struct virtio_dev *d, uint32_t off, uint8_t *data, uint32_t size)
{
    struct net *n = d->opaque;
    if (off + size <= sizeof(n->config))
        memcpy(data, n->config + off, size);
}

static void net_stop(struct virtio_dev *d)
{
    struct net *n = d->opaque;
    if (!n->thread_started)
        return;
    pthread_mutex_lock(d->lock);
    n->stopping = true;
    poke(n->wake_fd);
    pthread_mutex_unlock(d->lock);
    pthread_join(n->thread, NULL);
    n->thread_started = false;
}

static int net_start(struct virtio_dev *d)
{
    struct net *n = d->opaque;
    n->dev = d;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    int r = -pthread_create(&n->thread, &attr, net_worker, n);
    pthread_attr_destroy(&attr);
    n->thread_started = r == 0;
    return r;
}

static const struct virtio_dev_ops net_ops = {
    .name = "virtio-net",
    .device_id = 1,
    .num_queues = 2,
    .queue_size = NET_QUEUE_SIZE,
    .config_len = NET_CONFIG_LEN,
    .kick_fds = true,
    .features = net_features,
    .config_read = net_config_read,
    .reset = net_reset,
    .start = net_start,
    .stop = net_stop,
};

static unsigned net_count(const struct dev_config *cfg)
{
    return cfg->nnets;
}

static void net_destroy(void *state)
{
    struct net *n = state;
    net_path_free(&n->path);
    if (n->wake_fd >= 0)
        close(n->wake_fd);
    for (unsigned q = 0; q < 2; q++)
        if (n->own_call[q] >= 0)
            close(n->own_call[q]);
    pthread_cond_destroy(&n->vhost_cv);
    free(n);
}

static int net_create(const struct dev_config *cfg, unsigned index, void **state, const char **why)
{
    if (index >= NET_MAX_NICS || index >= cfg->nnets) {
        *why = "too many NICs";
        return -E2BIG;
    }
    struct net *n = calloc(1, sizeof(*n));
    if (!n)
        return -ENOMEM;
    n->wake_fd = n->own_call[0] = n->own_call[1] = -1;
    pthread_cond_init(&n->vhost_cv, NULL);
    n->be = cfg->nets[index];
    int r = net_path_init(&n->path, n->be.fd, n->be.stats);
    if (r < 0)
        goto fail;
    n->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    for (unsigned q = 0; q < 2; q++)
        n->own_call[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (n->wake_fd < 0 || n->own_call[0] < 0 || n->own_call[1] < 0) {
        r = -errno;
        goto fail;
    }
    memcpy(n->config, n->be.mac, 6);
    n->config[6] = NET_S_LINK_UP;
    n->config[8] = 1; /* max_virtqueue_pairs (read only with MQ) */
    *state = n;
    return 0;
fail:
    net_destroy(n);
    return r;
}

const struct virtio_type virtio_net_type = {
    .ops = &net_ops,
    .count = net_count,
    .create = net_create,
    .destroy = net_destroy,
};
