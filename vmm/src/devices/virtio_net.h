/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-net (network device, type 1), userspace data path over a tap (tap.h): the device type
 * virtio_net_type, on any transport. Two queues, receive (0) and transmit (1), no control queue.
 * One worker thread per NIC, woken by the queues' kick eventfds (KVM ioeventfds) and by the
 * backend fd's readability (poll); completions go back through the transport (irqfds on PCI).
 * Offers VERSION_1, MAC, STATUS (link up), MRG_RXBUF, CSUM, GUEST_CSUM, HOST_TSO4/6,
 * GUEST_TSO4/6, EVENT_IDX and RING_INDIRECT_DESC; when DRIVER_OK is seen the worker sets the
 * tap's offloads from what the driver acked (GUEST_CSUM -> TUN_F_CSUM, GUEST_TSO4/6 -> TSO4/6).
 *
 * The backend is a datagram fd: one read() is one frame, one writev() sends one, each with the
 * 12-byte struct virtio_net_hdr_v1 in front (a tap with IFF_VNET_HDR, or in the unit tests an
 * AF_UNIX SOCK_DGRAM socket). It is non-blocking.
 *
 * Guest input: rings and descriptors are read through virtq.c only (a chain outside guest
 * memory, a loop, a bad index: the queue is broken, DEVICE_NEEDS_RESET, counted in `broken`,
 * and the worker waits for the reset without spinning). Every popped chain is checked in ONE
 * place, net_chain_check(): a TX chain must be readable only, at least NET_HDR_LEN bytes, and
 * carry a frame of NET_MIN_FRAME .. NET_MAX_FRAME bytes; an RX chain must be writable only and
 * at least NET_HDR_LEN bytes. A chain that fails is completed with 0 bytes used and counted in
 * bad_chains; nothing else happens to it.
 * Backpressure: when the guest has no RX buffers, the tap is not read until the driver adds
 * some (a frame already read waits in the device's one-frame buffer; it is never dropped for
 * lack of buffers); when the backend refuses a TX frame (EAGAIN) the chain is left in the ring
 * and the worker waits for POLLOUT. Frames the guest cannot take at all (bigger than a
 * non-mergeable buffer) are dropped and counted (rx_dropped).
 *
 * The backends belong to the process (net_backends_open, from the parsed --net options: cli.h):
 * opened once before the sandbox and kept across guest resets; a device only does I/O on its fd.
 *
 * vhost-net (be.vhost, vhost_net.h): the same device, but the kernel moves the frames. At each
 * DRIVER_OK the worker hands it both rings (checked to lie in guest RAM, else
 * DEVICE_NEEDS_RESET), the queues' kick eventfds (the KVM ioeventfds) and as call eventfds the
 * transport's irqfds of the queues' MSI-X vectors (virtio_transport.queue_irqfd: re-routed and
 * masked as the guest programs its table), or, where the transport has none, eventfds of its
 * own that it turns into interrupts (raise_queue); then the tap. It never touches the rings or
 * the tap itself while vhost runs (it still sets the tap's offloads). A device reset waits
 * until the worker has stopped vhost (backend -1, ring bases read back), so no buffer is used
 * after the driver got its reset. The control queue is not offered, with or without vhost.
 */
#ifndef KOVA_VMM_VIRTIO_NET_H
#define KOVA_VMM_VIRTIO_NET_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cli.h"
#include "virtio.h"
#include "virtq.h"

#define NET_HDR_LEN    12    /* struct virtio_net_hdr_v1, num_buffers at offset 10 */
#define NET_MIN_FRAME  14    /* an Ethernet header */
#define NET_MAX_FRAME  65550 /* 64 KiB GSO frame + Ethernet and VLAN headers */
#define NET_QUEUE_SIZE 256
#define NET_MAX_NICS   8

/* Feature bits (virtio 1.x 5.1.3). */
#define VIRTIO_NET_F_CSUM       (1ULL << 0)
#define VIRTIO_NET_F_GUEST_CSUM (1ULL << 1)
#define VIRTIO_NET_F_MAC        (1ULL << 5)
#define VIRTIO_NET_F_GUEST_TSO4 (1ULL << 7)
#define VIRTIO_NET_F_GUEST_TSO6 (1ULL << 8)
#define VIRTIO_NET_F_HOST_TSO4  (1ULL << 11)
#define VIRTIO_NET_F_HOST_TSO6  (1ULL << 12)
#define VIRTIO_NET_F_MRG_RXBUF  (1ULL << 15)
#define VIRTIO_NET_F_STATUS     (1ULL << 16)

/* Counters of one NIC (read without the device lock). */
struct net_stats {
    atomic_uint_fast64_t rx_frames, rx_bytes, tx_frames, tx_bytes;
    atomic_uint_fast64_t bad_chains; /* chains net_chain_check refused (completed, 0 used) */
    atomic_uint_fast64_t rx_dropped; /* backend frames the guest could not take (size) */
    atomic_uint_fast64_t tx_errors;  /* frames the backend refused with an error */
    atomic_uint_fast64_t broken;     /* queues the guest broke (DEVICE_NEEDS_RESET) */
};

/* What the device needs to know about its backend (dev_config.nets, device.h). */
struct net_backend {
    int fd;
    bool is_tap; /* TUNSETOFFLOAD applies */
    /* vhost-net (vhost_net.h) chosen at start: the kernel moves the frames (vhost_fd, its
     * features); false: the userspace path. The counters stay 0 with vhost. */
    bool vhost;
    int vhost_fd;
    uint64_t vhost_features;
    unsigned char mac[6];
    char ifname[16];
    struct net_stats *stats; /* owned by the process, outlives the VMs */
};

/* The data path without threads or locks (the worker calls it with the device lock held; the
 * unit tests call it directly). frame: NET_HDR_LEN + NET_MAX_FRAME + 1 bytes. */
struct net_path {
    int fd;
    bool mrg_rxbuf; /* negotiated VIRTIO_NET_F_MRG_RXBUF */
    struct net_stats *stats;
    uint8_t *frame;
    uint32_t frame_len;             /* > 0: a frame read from the backend, not yet in the guest */
    struct vq_chain *chain, *first; /* scratch chains */
    struct net_slot {
        uint16_t head;
        uint32_t len;
    } slots[NET_QUEUE_SIZE];
};

enum net_rc {
    NET_DONE,    /* TX: the ring is empty. RX: the backend has nothing more */
    NET_BUDGET,  /* stopped after `budget` chains or frames: call again */
    NET_STALLED, /* RX: no guest buffers (a frame may be waiting); TX: the backend is full */
    NET_BROKEN,  /* the guest broke the queue */
};

/* Which of a chain's checks it fails: 0 when it is fine for its queue (rx: writable only, at
 * least the header; tx: readable only, header plus NET_MIN_FRAME..NET_MAX_FRAME bytes). */
int net_chain_check(const struct vq_chain *c, bool rx);
/* Sends the TX ring's frames to the backend; *used: chains completed. */
enum net_rc net_tx_run(struct net_path *p, struct virtq *vq, const struct guest_mem *mem,
                       unsigned budget, unsigned *used);
/* Moves frames from the backend into the RX ring; *used: chains completed. */
enum net_rc net_rx_run(struct net_path *p, struct virtq *vq, const struct guest_mem *mem,
                       unsigned budget, unsigned *used);
/* The path's buffers for fd (frame and scratch chains allocated). 0 or -ENOMEM. */
int net_path_init(struct net_path *p, int fd, struct net_stats *stats);
void net_path_free(struct net_path *p);

/* The NICs of one kova-vmm process. */
struct net_backends {
    unsigned n;
    struct net_backend *be;  /* n entries, for struct dev_config (device.h) */
    struct net_stats *stats; /* n entries */
};

/* Opens each parsed --net option's tap (or adopts its fd), before the sandbox, and chooses the
 * data path: vhost=on opens /dev/vhost-net (vhost_net_open) and fails when it cannot; auto uses
 * vhost-net where it can, else the userspace path; off the userspace path. Logs the choice per
 * NIC. On failure logs a message naming the NIC, closes what it opened and returns -errno. */
int net_backends_open(struct net_backends *out, const struct net_spec *specs, unsigned n);
void net_backends_close(struct net_backends *nb);

extern const struct virtio_type virtio_net_type;

#endif
