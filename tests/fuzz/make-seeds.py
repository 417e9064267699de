#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the seed corpora of the fuzz targets (corpus-blk/, corpus-net/, corpus-api/ next to
this file): hand-made inputs that each reach one path, valid or hostile. Formats:
fuzz_virtio_blk.c, fuzz_virtio_net.c and fuzz_api.c. Run it again after changing a format;
fuzzing finds the rest from these. Files named found-* are inputs that fuzzing found (a bug,
fixed since): they are kept as they are.

Usage: make-seeds.py [blk|net|api]...   (default: all)
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# ---------------------------------------------------------------- virtio-blk

F_INDIRECT, F_EVENT_IDX, F_RO, F_QCOW2, F_SERIAL, F_SPLIT = 1, 2, 4, 8, 0x10, 0x20
D_NEXT, D_WRITE, D_INDIRECT = 1, 2, 4
T_IN, T_OUT, T_FLUSH, T_GET_ID, T_DISCARD, T_WRITE_ZEROES = 0, 1, 4, 8, 11, 13
DESC, AVAIL, USED, DATA = 0x0000, 0x1000, 0x1400, 0x2000
HIGH = 1 << 32  # RAM at 4 GiB when F_SPLIT: the image from 16 KiB on
SPLIT_LOW = 16 * 1024


class Guest:
    """The memory image (from guest address 0) and the ring of one input."""

    def __init__(self, qsize=8, flags=0, chains=None, start=0):
        self.mem = bytearray(DATA)
        self.qsize, self.flags, self.start = qsize, flags, start
        self.chains = chains
        self.heads = []
        self.next_desc = 0
        self.ring = (DESC, AVAIL, USED)
        self.probe = (0, 0)

    def put(self, addr, data):
        if addr >= HIGH:
            addr = addr - HIGH + SPLIT_LOW
        end = addr + len(data)
        if end > len(self.mem):
            self.mem.extend(bytes(end - len(self.mem)))
        self.mem[addr:end] = data

    def desc(self, table, i, addr, length, flags, nxt=0):
        self.put(table + 16 * i, struct.pack("<QIHH", addr, length, flags, nxt))

    def chain(self, bufs, head=None):
        """bufs: (addr, len, writable); descriptors from the next free ring slot, linked."""
        first = self.next_desc if head is None else head
        for k, (addr, length, w) in enumerate(bufs):
            i = first + k
            last = k == len(bufs) - 1
            self.desc(DESC, i, addr, length, (0 if last else D_NEXT) | (D_WRITE if w else 0),
                      0 if last else i + 1)
        self.next_desc = first + len(bufs)
        self.heads.append(first)
        return first

    def indirect(self, table, bufs):
        for k, (addr, length, w) in enumerate(bufs):
            last = k == len(bufs) - 1
            self.desc(table, k, addr, length, (0 if last else D_NEXT) | (D_WRITE if w else 0),
                      0 if last else k + 1)
        head = self.next_desc
        self.desc(DESC, head, table, 16 * len(bufs), D_INDIRECT)
        self.next_desc += 1
        self.heads.append(head)

    def encode(self, avail_idx=None):
        n = len(self.heads)
        idx = (self.start + n if avail_idx is None else avail_idx) & 0xffff
        for k, h in enumerate(self.heads):
            self.put(AVAIL + 4 + 2 * ((self.start + k) % self.qsize), struct.pack("<H", h))
        self.put(AVAIL, struct.pack("<HH", 0, idx))
        self.put(USED + 6 + 8 * self.qsize, bytes(2))
        log2 = self.qsize.bit_length() - 1
        chains = n if self.chains is None else self.chains
        hdr = struct.pack("<BBBBHHQQQII", self.flags, log2, chains, 0, self.start, 0,
                          *self.ring, *self.probe)
        return hdr + bytes(self.mem).rstrip(b"\0")  # the rest of RAM is zeros anyway


def req_hdr(g, addr, rtype, sector):
    g.put(addr, struct.pack("<IIQ", rtype, 0, sector))


def simple(rtype, sector, data_len, data_w, flags=0, qsize=8):
    g = Guest(qsize=qsize, flags=flags)
    req_hdr(g, DATA, rtype, sector)
    bufs = [(DATA, 16, False)]
    if data_len:
        bufs.append((DATA + 0x100, data_len, data_w))
        if not data_w:
            g.put(DATA + 0x100, bytes((i * 7 + 3) & 0xff for i in range(data_len)))
    bufs.append((DATA + 0x80, 1, True))
    g.chain(bufs)
    return g.encode()


def dz_segs(g, addr, segs):
    g.put(addr, b"".join(struct.pack("<QII", s, n, f) for s, n, f in segs))


def blk_seeds():
    s = {}
    s["in-1-sector"] = simple(T_IN, 3, 512, True)
    s["out-8-sectors-qcow2"] = simple(T_OUT, 10, 4096, False, F_QCOW2)
    s["in-qcow2"] = simple(T_IN, 10, 4096, True, F_QCOW2)
    s["flush"] = simple(T_FLUSH, 0, 0, False)
    s["flush-with-data"] = simple(T_FLUSH, 0, 512, False)
    s["get-id-serial"] = simple(T_GET_ID, 0, 20, True, F_SERIAL)
    s["get-id-short"] = simple(T_GET_ID, 0, 3, True)
    s["unknown-type"] = simple(77, 0, 0, False)
    s["out-readonly"] = simple(T_OUT, 0, 512, False, F_RO)
    s["out-readonly-qcow2"] = simple(T_OUT, 0, 512, False, F_RO | F_QCOW2)
    s["in-past-end"] = simple(T_IN, 127, 1024, True)
    s["in-sector-wraps"] = simple(T_IN, (1 << 64) // 512 + 1, 512, True)
    s["out-partial-sector"] = simple(T_OUT, 0, 100, False)
    s["in-wrong-direction"] = simple(T_IN, 0, 512, False)
    g = Guest(qsize=1, flags=F_INDIRECT)
    req_hdr(g, DATA, T_IN, 0)
    g.indirect(0x1e00, [(DATA, 16, False), (DATA + 0x100, 512, True), (DATA + 0x80, 1, True)])
    s["queue-size-1-indirect"] = g.encode()
    s["queue-size-256"] = simple(T_OUT, 1, 512, False, 0, 256)

    for name, rtype, segs, flags in (
            ("discard", T_DISCARD, [(0, 8, 0)], 0),
            ("discard-unmap-flag", T_DISCARD, [(0, 8, 1)], 0),
            ("write-zeroes-unmap-qcow2", T_WRITE_ZEROES, [(4, 16, 1), (64, 64, 0)], F_QCOW2),
            ("write-zeroes-9-segs", T_WRITE_ZEROES, [(k, 1, 0) for k in range(9)], 0),
            ("write-zeroes-past-end", T_WRITE_ZEROES, [(100, 100, 0)], 0)):
        g = Guest(flags=flags)
        req_hdr(g, DATA, rtype, 0)
        dz_segs(g, DATA + 0x10, segs)
        g.chain([(DATA, 16 + 16 * len(segs), False), (DATA + 0x80, 1, True)])
        s[name] = g.encode()

    # header and data split over many descriptors; status inside the last data buffer
    g = Guest(qsize=16)
    req_hdr(g, DATA, T_OUT, 2)
    g.chain([(DATA, 5, False), (DATA + 5, 11, False)] +
            [(DATA + 0x100 + 64 * i, 64, False) for i in range(8)] + [(DATA + 0x80, 1, True)])
    s["out-split-16"] = g.encode()
    g = Guest()
    req_hdr(g, DATA, T_IN, 0)
    g.chain([(DATA, 16, False), (DATA + 0x100, 513, True)])
    s["in-status-in-data"] = g.encode()
    g = Guest()
    req_hdr(g, DATA, T_IN, 0)
    g.chain([(DATA, 16, False), (DATA + 0x100, 0, True), (DATA + 0x300, 512, True),
             (DATA + 0x80, 1, True), (DATA + 0x90, 0, True)])
    s["zero-length-descs"] = g.encode()
    g = Guest()
    req_hdr(g, DATA, T_OUT, 0)
    g.chain([(DATA, 16, False), (DATA + 0x100, 512, False)])
    s["no-status"] = g.encode()

    # several requests, the ring index about to wrap, interrupts by EVENT_IDX
    g = Guest(qsize=16, flags=F_EVENT_IDX, start=0xfffe)
    for k, t in enumerate((T_OUT, T_IN, T_FLUSH, T_IN)):
        a = DATA + 0x1000 * k
        req_hdr(g, a, t, k)
        if t == T_FLUSH:
            g.chain([(a, 16, False), (a + 0x80, 1, True)])
        else:
            g.chain([(a, 16, False), (a + 0x100, 512, t == T_IN), (a + 0x80, 1, True)])
    s["four-requests-wrap-event-idx"] = g.encode()
    g = Guest(flags=F_EVENT_IDX, chains=4)
    s["event-idx-empty-ring"] = g.encode()

    # indirect tables
    g = Guest(flags=F_INDIRECT)
    req_hdr(g, DATA, T_IN, 1)
    g.indirect(0x1e00, [(DATA, 16, False), (DATA + 0x100, 1024, True), (DATA + 0x80, 1, True)])
    s["indirect-in"] = g.encode()
    g = Guest(flags=0)
    req_hdr(g, DATA, T_IN, 1)
    g.indirect(0x1e00, [(DATA, 16, False), (DATA + 0x80, 1, True)])
    s["indirect-not-negotiated"] = g.encode()
    g = Guest(flags=F_INDIRECT)
    g.desc(DESC, 0, 0x1e00, 16 * 2 + 8, D_INDIRECT)
    g.heads.append(0)
    s["indirect-bad-length"] = g.encode()
    g = Guest(flags=F_INDIRECT)
    g.desc(0x1e00, 0, 0x1f00, 32, D_INDIRECT)
    g.desc(DESC, 0, 0x1e00, 16, D_INDIRECT)
    g.heads.append(0)
    s["indirect-nested"] = g.encode()
    g = Guest(flags=F_INDIRECT)
    g.desc(0x1e00, 0, DATA, 16, D_NEXT, 1)
    g.desc(0x1e00, 1, DATA + 0x80, 1, D_WRITE | D_NEXT, 0)
    g.desc(DESC, 0, 0x1e00, 32, D_INDIRECT)
    g.heads.append(0)
    s["indirect-loop"] = g.encode()
    g = Guest(flags=F_INDIRECT)
    g.desc(DESC, 0, 0x1e00, 32, D_INDIRECT | D_NEXT, 1)
    g.desc(DESC, 1, DATA + 0x80, 1, D_WRITE)
    g.heads.append(0)
    s["indirect-with-next"] = g.encode()

    # broken chains
    g = Guest()
    g.desc(DESC, 0, DATA, 16, D_NEXT, 1)
    g.desc(DESC, 1, DATA + 0x80, 1, D_NEXT, 0)
    g.heads.append(0)
    s["loop"] = g.encode()
    g = Guest()
    g.desc(DESC, 0, DATA, 16, D_NEXT, 9)
    g.heads.append(0)
    s["next-out-of-range"] = g.encode()
    g = Guest()
    g.heads.append(200)
    s["head-out-of-range"] = g.encode()
    g = Guest()
    g.chain([(0xfffffffffffff000, 0xffffffff, False), (DATA, 1, True)])
    s["buffer-outside-ram"] = g.encode()
    g = Guest()
    g.chain([(DATA, 0xffffffff, True)])
    s["huge-length"] = g.encode()
    g = Guest()
    req_hdr(g, DATA, T_OUT, 0)
    g.chain([(DATA + 0x80, 1, True), (DATA, 16, False)])
    s["readable-after-writable"] = g.encode()
    g = Guest()
    req_hdr(g, DATA, T_OUT, 0)
    g.chain([(DATA, 16, False), (DATA + 0x80, 0, True), (DATA + 0x100, 512, False)])
    s["readable-after-empty-writable"] = g.encode()
    g = Guest()
    req_hdr(g, DATA, T_IN, 0)
    g.chain([(DATA, 16, False), (DATA + 0x80, 1, True)])
    s["avail-far-ahead"] = g.encode(avail_idx=100)
    g = Guest()
    g.ring = (DESC + 8, AVAIL + 1, USED + 2)
    s["rings-misaligned"] = g.encode()
    g = Guest()
    g.ring = (0x1fff0, AVAIL, USED)  # 8 descriptors past the end of 128 KiB
    s["desc-table-past-ram"] = g.encode()

    # RAM at 4 GiB: buffers there, one across the end of low RAM
    g = Guest(flags=F_SPLIT)
    req_hdr(g, HIGH + 0x100, T_IN, 0)
    g.chain([(HIGH + 0x100, 16, False), (HIGH + 0x1000, 512, True), (HIGH + 0x200, 1, True)])
    g.put(HIGH + 0x2000, bytes(1))
    s["split-high-ram"] = g.encode()
    g = Guest(flags=F_SPLIT)
    g.chain([(SPLIT_LOW - 8, 16, False), (DATA, 1, True)])
    s["split-across-gap"] = g.encode()
    g = Guest(flags=F_SPLIT)
    g.ring = (HIGH, HIGH + 0x1000, HIGH + 0x2000)
    s["split-rings-high"] = g.encode()
    g = Guest()
    req_hdr(g, DATA, T_IN, 0)
    g.chain([(DATA, 16, False), (DATA + 0x100, 1024, True), (DATA + 0x80, 1, True)])
    g.probe = (100, 700)
    s["iov-probe"] = g.encode()
    return s


# ---------------------------------------------------------------- virtio-net

N_INDIRECT, N_EVENT_IDX, N_MRG, N_SPLIT, N_FULL, N_SMALL = 1, 2, 4, 8, 0x10, 0x20
NET_HDR, NET_MAX = 12, 65550
# rings for queues of up to 16 entries, then the buffers
RX_RING, TX_RING, NDATA = (0x000, 0x100, 0x140), (0x200, 0x300, 0x340), 0x400


def s_avail(q, n):
    """Step: the driver sets queue q's (0 RX, 1 TX) avail index to its start + n (not 0, 0)."""
    return (n << 3) | (q << 2)


def s_tx(budget=64):
    return ((budget - 1) << 2) | 1


def s_rx(budget=64):
    return ((budget - 1) << 2) | 2


def s_frame(k):
    return (k << 2) | 3


class NetQueue:
    def __init__(self, g, ring, qsize, start):
        self.g, self.ring, self.qsize, self.start = g, ring, qsize, start
        self.heads = []
        self.next_desc = 0

    def chain(self, bufs):
        """bufs: (addr, len, writable); descriptors from the next free slot, linked."""
        first = self.next_desc
        for k, (addr, length, w) in enumerate(bufs):
            last = k == len(bufs) - 1
            self.g.desc(self.ring[0], first + k, addr, length,
                        (0 if last else D_NEXT) | (D_WRITE if w else 0), 0 if last else first + k + 1)
        self.next_desc = first + len(bufs)
        self.heads.append(first)
        return first

    def indirect(self, table, bufs):
        for k, (addr, length, w) in enumerate(bufs):
            last = k == len(bufs) - 1
            self.g.desc(table, k, addr, length, (0 if last else D_NEXT) | (D_WRITE if w else 0),
                        0 if last else k + 1)
        head = self.next_desc
        self.g.desc(self.ring[0], head, table, 16 * len(bufs), D_INDIRECT)
        self.next_desc += 1
        self.heads.append(head)

    def publish(self, avail_idx):
        n = len(self.heads)
        idx = (self.start + n if avail_idx is None else avail_idx) & 0xffff
        for k, h in enumerate(self.heads):
            self.g.put(self.ring[1] + 4 + 2 * ((self.start + k) % self.qsize), struct.pack("<H", h))
        self.g.put(self.ring[1], struct.pack("<HH", 0, idx))


class NetGuest(Guest):
    """The memory image, both rings, the backend's frames and the steps of one input."""

    def __init__(self, flags=0, rx_qsize=8, tx_qsize=8, rx_start=0, tx_start=0):
        super().__init__()
        self.mem = bytearray(NDATA)
        self.flags = flags
        self.rx = NetQueue(self, RX_RING, rx_qsize, rx_start)
        self.tx = NetQueue(self, TX_RING, tx_qsize, tx_start)
        self.frames = [0, 0, 0, 0]
        self.steps = []

    def tx_frame(self, addr, length, seed=0):
        """A header (zeros but for byte 0) and length frame bytes at addr."""
        self.put(addr, bytes([0x11]) + bytes(NET_HDR - 1) +
                 bytes((seed + i * 3) & 0xff for i in range(length)))

    def encode(self, rx_avail=None, tx_avail=None):
        self.rx.publish(rx_avail)
        self.tx.publish(tx_avail)
        q = lambda n: n.bit_length() - 1
        hdr = struct.pack("<BBBBHH", self.flags, q(self.rx.qsize), q(self.tx.qsize), 0,
                          self.rx.start, self.tx.start)
        hdr += struct.pack("<6Q", *self.rx.ring, *self.tx.ring)
        hdr += struct.pack("<4I", *self.frames)
        assert len(self.steps) <= 16 and 0 not in self.steps
        hdr += bytes(self.steps) + bytes(16 - len(self.steps))
        assert len(hdr) == 88
        return hdr + bytes(self.mem).rstrip(b"\0")


def net_seeds():
    s = {}
    A = NDATA

    # ---- TX
    g = NetGuest()
    g.tx_frame(A, 60)
    g.tx.chain([(A, NET_HDR + 60, False)])
    g.steps = [s_tx()]
    s["tx-one-frame"] = g.encode()
    g = NetGuest()
    g.tx_frame(A, 100)
    g.tx.chain([(A, NET_HDR, False), (A + 5, 0, False), (A + NET_HDR, 100, False)])
    g.steps = [s_tx()]
    s["tx-header-split"] = g.encode()
    g = NetGuest(flags=N_EVENT_IDX, tx_qsize=16, tx_start=0xfffe)
    for k in range(4):
        g.tx_frame(A + 0x100 * k, 64 + k, k)
        g.tx.chain([(A + 0x100 * k, NET_HDR + 64 + k, False)])
    g.steps = [s_tx(2), s_tx(64)]
    s["tx-four-wrap-event-idx"] = g.encode()
    g = NetGuest()
    g.tx.chain([(A, NET_HDR + NET_MAX, False)])
    g.tx.chain([(A, NET_HDR + NET_MAX + 1, False)])
    g.steps = [s_tx()]
    s["tx-largest-and-oversized"] = g.encode()
    g = NetGuest()
    g.tx_frame(A, 60)
    g.tx.chain([(A, NET_HDR - 4, False)])                         # short header
    g.tx.chain([(A, NET_HDR + 5, False)])                         # runt
    g.tx.chain([(A, NET_HDR + 60, False), (A + 0x100, 64, True)])  # writable in a TX chain
    g.tx.chain([(A, 0, False)])                                   # zero length
    g.tx.chain([(A, NET_HDR + 60, False)])                        # a good one after them
    g.steps = [s_tx()]
    s["tx-bad-chains"] = g.encode()
    g = NetGuest(flags=N_FULL)
    g.tx_frame(A, 60)
    g.tx.chain([(A, NET_HDR + 5, False)])
    g.tx.chain([(A, NET_HDR + 60, False)])
    g.steps = [s_tx(), s_tx()]
    s["tx-backend-full"] = g.encode()
    g = NetGuest(flags=N_SMALL)
    g.tx_frame(A, 60)
    g.tx.chain([(A, NET_HDR + 60, False)])
    g.tx.chain([(A, NET_HDR + 20000, False)])  # the backend fails it: tx_errors, completed
    g.tx.chain([(A, NET_HDR + 60, False)])
    g.steps = [s_tx()]
    s["tx-backend-error"] = g.encode()
    g = NetGuest(flags=N_INDIRECT)
    g.tx_frame(A, 80)
    g.tx.indirect(A + 0x200, [(A, NET_HDR, False), (A + NET_HDR, 80, False)])
    g.steps = [s_tx()]
    s["tx-indirect"] = g.encode()
    g = NetGuest()
    g.tx.indirect(A + 0x200, [(A, NET_HDR + 60, False)])
    g.steps = [s_tx()]
    s["tx-indirect-not-negotiated"] = g.encode()
    g = NetGuest()
    g.desc(TX_RING[0], 0, A, 40, D_NEXT, 1)
    g.desc(TX_RING[0], 1, A, 40, D_NEXT, 0)
    g.tx.heads.append(0)
    g.steps = [s_tx(), s_tx()]
    s["tx-loop"] = g.encode()
    g = NetGuest()
    g.tx.chain([(64 << 30, NET_HDR + 60, False)])
    g.steps = [s_tx()]
    s["tx-outside-ram"] = g.encode()
    g = NetGuest(tx_qsize=16)
    g.tx_frame(A, 60)
    g.tx.chain([(A, NET_HDR + 60, False)])
    g.steps = [s_tx(), s_avail(1, 9), s_tx()]  # 8 more: the same chain (avail slots hold 0)
    s["tx-avail-refilled"] = g.encode()
    g = NetGuest()
    g.tx.chain([(A, NET_HDR + 60, False)])
    g.steps = [s_tx()]
    s["tx-avail-far-ahead"] = g.encode(tx_avail=100)

    # ---- RX
    g = NetGuest()
    g.frames[0] = NET_HDR + 100
    g.rx.chain([(A, 2048, True)])
    g.steps = [s_frame(0), s_rx()]
    s["rx-one-buffer"] = g.encode()
    g = NetGuest()
    g.frames[0] = NET_HDR + 200
    g.rx.chain([(A, 2048, True)])
    g.steps = [s_frame(0), s_rx(), s_frame(0), s_frame(0), s_rx(), s_avail(0, 1), s_rx()]
    s["rx-no-buffer-then-refill"] = g.encode(rx_avail=0)
    g = NetGuest()
    g.frames[:2] = [NET_HDR + 60, NET_HDR + 1000]
    g.rx.chain([(A, 8, True)])                            # smaller than the header
    g.rx.chain([(A + 0x100, 2048, False)])                # readable
    g.rx.chain([(A + 0x200, 4, True), (A + 0x300, 2048, True)])  # header over two descriptors
    g.rx.chain([(A + 0x1000, 1500, True)])
    g.steps = [s_frame(0), s_frame(1), s_rx()]
    s["rx-bad-then-good"] = g.encode()
    g = NetGuest(flags=N_MRG)
    g.frames[0] = NET_HDR + 3000
    g.rx.chain([(A, 1024, True)])
    g.rx.chain([(A + 0x1000, NET_HDR + 10, True), (A + 0x2000, 4000, True)])
    g.steps = [s_frame(0), s_rx()]
    s["rx-mrg-two-buffers"] = g.encode()
    g = NetGuest(flags=N_MRG)
    g.frames[0] = NET_HDR + 3000
    g.rx.chain([(A, 1024, True)])
    g.rx.chain([(A + 0x800, 8, True)])  # bad, after a good one
    g.rx.chain([(A + 0x1000, 1024, True)])
    g.rx.chain([(A + 0x2000, 1024, True)])
    g.steps = [s_frame(0), s_rx(), s_avail(0, 4), s_rx()]
    s["rx-mrg-waits-for-buffers"] = g.encode(rx_avail=3)
    g = NetGuest(flags=N_MRG, rx_qsize=2)
    g.frames[0] = NET_HDR + 3000
    g.rx.chain([(A, 100, True)])
    g.rx.chain([(A + 0x100, 100, True)])
    g.steps = [s_frame(0), s_rx()]
    s["rx-mrg-ring-too-small"] = g.encode()
    g = NetGuest()
    g.frames[:2] = [NET_HDR + 3000, NET_HDR + 60]
    g.rx.chain([(A, 1500, True)])
    g.steps = [s_frame(0), s_frame(1), s_rx()]
    s["rx-too-small-without-mrg"] = g.encode()
    g = NetGuest()
    g.frames = [NET_HDR + 3, 0, NET_HDR + NET_MAX + 1, NET_HDR + NET_MAX]
    g.rx.chain([(A, 0x10000 + NET_HDR, True), (A + 0x10000 + NET_HDR, 0x8000, True)])
    g.steps = [s_frame(0), s_frame(1), s_frame(2), s_frame(3), s_rx()]
    s["rx-runt-empty-oversized-largest"] = g.encode()
    g = NetGuest(flags=N_INDIRECT | N_MRG)
    g.frames[0] = NET_HDR + 700
    g.rx.indirect(A + 0x200, [(A, NET_HDR, True), (A + 0x400, 512, True), (A + 0x800, 512, True)])
    g.steps = [s_frame(0), s_rx()]
    s["rx-indirect"] = g.encode()
    g = NetGuest(flags=N_EVENT_IDX | N_MRG, rx_qsize=16, rx_start=0xfffd)
    g.frames[:2] = [NET_HDR + 600, NET_HDR + 100]
    for k in range(5):
        g.rx.chain([(A + 0x400 * k, 256, True)])
    g.steps = [s_rx(), s_frame(0), s_frame(1), s_rx(1), s_rx(), s_rx()]
    s["rx-wrap-event-idx"] = g.encode()
    g = NetGuest()
    g.frames[0] = NET_HDR + 100
    g.rx.chain([(64 << 30, 2048, True)])
    g.steps = [s_frame(0), s_rx(), s_rx()]
    s["rx-outside-ram"] = g.encode()
    # frames land on the rings: over the TX descriptors (TX then runs on them), then over the
    # RX avail ring (its index jumps: the queue breaks)
    g = NetGuest(flags=N_MRG)
    g.frames[0] = NET_HDR + 400
    g.rx.chain([(TX_RING[0], 0x200, True)])
    g.rx.chain([(RX_RING[1], 64, True)])
    g.rx.chain([(A, 2048, True)])
    g.steps = [s_frame(0), s_rx(), s_frame(0), s_rx(), s_tx()]
    s["rx-overwrites-rings"] = g.encode()

    # ---- both queues, RAM split, large rings
    g = NetGuest(flags=N_MRG | N_EVENT_IDX | N_INDIRECT)
    g.frames[:2] = [NET_HDR + 1500, NET_HDR + 64]
    g.tx_frame(A, 1500)
    g.tx.chain([(A, NET_HDR + 1500, False)])
    g.tx.indirect(A + 0x800, [(A, NET_HDR, False), (A + NET_HDR, 64, False)])
    g.rx.chain([(A + 0x1000, 1024, True)])
    g.rx.chain([(A + 0x2000, 1024, True)])
    g.rx.chain([(A + 0x3000, 1024, True)])
    g.steps = [s_tx(1), s_frame(0), s_rx(1), s_tx(), s_frame(1), s_rx()]
    s["both-queues"] = g.encode()
    g = NetGuest(flags=N_SPLIT | N_MRG)
    g.frames[0] = NET_HDR + 2000
    g.tx_frame(HIGH + 0x1000, 60)
    g.tx.chain([(HIGH + 0x1000, NET_HDR + 60, False)])
    g.rx.chain([(SPLIT_LOW - 0x400, 0x400, True)])
    g.rx.chain([(HIGH + 0x2000, 0x1000, True)])
    g.rx.chain([(SPLIT_LOW - 8, 16, True)])  # across the gap: breaks the queue
    g.steps = [s_tx(), s_frame(0), s_rx(), s_frame(0), s_rx()]
    s["split-high-ram"] = g.encode()
    g = NetGuest(flags=N_MRG, rx_qsize=256, tx_qsize=256)
    g.rx.ring, g.tx.ring = (0x1000, 0x2000, 0x3000), (0x4000, 0x5000, 0x6000)
    g.frames[0] = NET_HDR + NET_MAX
    for k in range(40):
        g.rx.chain([(0x7000 + 0x800 * k, 0x800, True)])  # the frame takes 33 of them
    g.tx_frame(0x6c00, 60)
    g.tx.chain([(0x6c00, NET_HDR + 60, False)])
    g.steps = [s_frame(0), s_rx(), s_tx()]
    s["queue-size-256"] = g.encode()
    g = NetGuest()
    g.rx.ring = (RX_RING[0] + 8, RX_RING[1] + 1, RX_RING[2] + 2)
    g.tx.ring = (0x1fff0, TX_RING[1], TX_RING[2])
    g.steps = [s_rx(), s_tx()]
    s["rings-misaligned-or-past-ram"] = g.encode()
    return s


# ---------------------------------------------------------------- API

IMG1 = "aaaaaaaa-0000-4000-8000-000000000001"
IMG2 = "aaaaaaaa-0000-4000-8000-000000000002"
S1 = "11111111-1111-4111-8111-111111111111"
S2 = "22222222-2222-4222-8222-222222222222"
S3 = "33333333-3333-4333-8333-333333333333"
JSON = "Content-Type: application/json"


def api(svc, method, target, headers=(), body="", token="u1:p1"):
    h = list(headers)
    if token:
        h.insert(0, "X-Auth-Token: " + token)
    return ("%s %s %s\n%s\n%s" % (svc, method, target, "".join(x + "\n" for x in h),
                                  body)).encode()


def api_seeds():
    s = {}
    c = lambda *a, **k: api("c", *a, **k)
    i = lambda *a, **k: api("i", *a, **k)
    s["root"] = c("GET", "/", token=None)
    s["v21"] = c("GET", "/v2.1/", token=None)
    s["v2-servers"] = c("GET", "/v2/servers")
    s["no-prefix"] = c("GET", "/servers")
    s["no-token"] = c("GET", "/v2.1/servers", token=None)
    s["servers-list"] = c("GET", "/v2.1/servers?limit=1&marker=" + S1 + "&name=vm")
    s["servers-detail-admin"] = c(
        "GET", "/v2.1/servers/detail?all_tenants=1&sort_key=display_name&sort_dir=asc"
        "&sort_key=created_at&changes-since=2020-01-01T00:00:00Z&image=" + IMG1,
        ["OpenStack-API-Version: compute 2.1", "Accept-Encoding: gzip;q=1.0, *;q=0"],
        token="admin:admin")
    s["servers-detail-flavor"] = c("GET", "/v2.1/servers/detail?flavor=1&status=ACTIVE&limit=x")
    s["server-show"] = c("GET", "/v2.1/servers/" + S1)
    s["server-show-other-project"] = c("GET", "/v2.1/servers/" + S3)
    s["server-show-percent"] = c("GET", "/v2.1/servers/%2e%2e%2F%00x%FF")
    s["server-create"] = c("POST", "/v2.1/servers", [JSON], (
        '{"server": {"name": "new", "imageRef": "%s", "flavorRef": "http://h/v2.1/flavors/1", '
        '"key_name": "kp1", "metadata": {"k": "v"}, "min_count": 1, "max_count": 2, '
        '"networks": "none", "security_groups": [{"name": "default"}], '
        '"user_data": "aGVsbG8=", "accessIPv4": "10.0.0.1", "accessIPv6": "::1", '
        '"OS-DCF:diskConfig": "AUTO", "config_drive": "true", "availability_zone": "nova", '
        '"return_reservation_id": false}}' % IMG1))
    s["server-create-bad"] = c("POST", "/v2.1/servers", [JSON], (
        '{"server": {"name": " ", "imageRef": "%s", "flavorRef": "2", "min_count": "3", '
        '"max_count": 1, "networks": [{"uuid": "x"}], "user_data": "not base64"}}' % IMG2))
    s["server-create-not-json"] = c("POST", "/v2.1/servers", [JSON], '{"server": [1, 2')
    s["server-update"] = c("PUT", "/v2.1/servers/" + S1, [JSON],
                           '{"server": {"name": "renamed", "accessIPv4": "", '
                           '"OS-DCF:diskConfig": "MANUAL"}}')
    s["server-delete"] = c("DELETE", "/v2.1/servers/" + S2)
    for name, body in (("reboot", '{"reboot": {"type": "HARD"}}'),
                       ("start", '{"os-start": null}'),
                       ("stop", '{"os-stop": null}'),
                       ("pause", '{"pause": null}'),
                       ("rebuild", '{"rebuild": {"imageRef": "%s", "name": "rb", '
                                   '"metadata": {"a": "b"}}}' % IMG1),
                       ("console", '{"os-getConsoleOutput": {"length": "10"}}'),
                       ("two-actions", '{"pause": null, "unpause": null}')):
        s["action-" + name] = c("POST", "/v2.1/servers/%s/action" % (S2 if name == "start"
                                                                     else S1), [JSON], body)
    s["metadata-list"] = c("GET", "/v2.1/servers/%s/metadata" % S1)
    s["metadata-merge"] = c("POST", "/v2.1/servers/%s/metadata" % S1, [JSON],
                            '{"metadata": {"x": "1", "role": "db"}}')
    s["metadata-replace"] = c("PUT", "/v2.1/servers/%s/metadata" % S1, [JSON],
                              '{"metadata": {}}')
    s["metadata-item-put"] = c("PUT", "/v2.1/servers/%s/metadata/role" % S1, [JSON],
                               '{"meta": {"role": "x"}}')
    s["metadata-item-get"] = c("GET", "/v2.1/servers/%s/metadata/tier" % S1)
    s["metadata-item-delete"] = c("DELETE", "/v2.1/servers/%s/metadata/nope" % S1)
    s["actions-list"] = c("GET", "/v2.1/servers/%s/os-instance-actions" % S2)
    s["action-show"] = c("GET", "/v2.1/servers/%s/os-instance-actions/req-fuzz-seed" % S1)
    s["limits"] = c("GET", "/v2.1/limits")
    s["flavors"] = c("GET", "/v2.1/flavors/detail?is_public=None&minRam=100&minDisk=1"
                     "&sort_key=memory_mb&limit=1&marker=1", token="admin:admin")
    s["flavor-show"] = c("GET", "/v2.1/flavors/2")
    s["flavor-create"] = c("POST", "/v2.1/flavors", [JSON],
                           '{"flavor": {"name": "f", "ram": "1024", "vcpus": 2, "disk": 0, '
                           '"OS-FLV-EXT-DATA:ephemeral": 1, "swap": 512, "rxtx_factor": 1.5, '
                           '"os-flavor-access:is_public": true}}', token="admin:admin")
    s["flavor-create-member"] = c("POST", "/v2.1/flavors", [JSON],
                                  '{"flavor": {"name": "f", "ram": 1, "vcpus": 1, "disk": 1}}')
    s["flavor-delete"] = c("DELETE", "/v2.1/flavors/2", token="admin:admin")
    s["extra-specs"] = c("POST", "/v2.1/flavors/1/os-extra_specs", [JSON],
                         '{"extra_specs": {"hw:numa_nodes": 1, "bad key!": "x"}}',
                         token="admin:admin")
    s["extra-spec-put"] = c("PUT", "/v2.1/flavors/1/os-extra_specs/hw:cpu_policy", [JSON],
                            '{"hw:cpu_policy": "dedicated"}', token="admin:admin")
    s["extra-spec-get"] = c("GET", "/v2.1/flavors/1/os-extra_specs/hw:cpu_policy")
    s["keypairs"] = c("GET", "/v2.1/os-keypairs")
    s["keypair-import"] = c("POST", "/v2.1/os-keypairs", [JSON], (
        '{"keypair": {"name": "imp", "public_key": "ssh-ed25519 '
        'AAAAC3NzaC1lZDI1NTE5AAAAIGd1dGVuIFRhZyB3aWUgZ2VodCBlcyBkaXIgaGV1dGU= x@y"}}'))
    s["keypair-show"] = c("GET", "/v2.1/os-keypairs/kp1")
    s["keypair-delete"] = c("DELETE", "/v2.1/os-keypairs/kp1")
    s["images-nova"] = c("GET", "/v2.1/images/detail?limit=5")
    s["image-nova-show"] = c("GET", "/v2.1/images/" + IMG1)
    s["hypervisors"] = c("GET", "/v2.1/os-hypervisors/detail", token="admin:admin")
    s["hypervisor-uptime"] = c("GET", "/v2.1/os-hypervisors/1/uptime", token="admin:admin")
    s["hypervisor-stats"] = c("GET", "/v2.1/os-hypervisors/statistics", token="admin:admin")
    s["az-detail"] = c("GET", "/v2.1/os-availability-zone/detail", token="admin:admin")
    s["services"] = c("GET", "/v2.1/os-services", token="member:p1")
    s["microversion-bad"] = c("GET", "/v2.1/servers",
                              ["OpenStack-API-Version: compute 2.99, placement 1.0"])
    s["microversion-old-header"] = c("GET", "/v2.1/flavors",
                                     ["X-OpenStack-Nova-API-Version: latest"])
    s["identity-token"] = c("POST", "/identity/v3/auth/tokens", [JSON], (
        '{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "u1", '
        '"password": "x", "domain": {"name": "Default"}}}}, "scope": {"project": '
        '{"name": "p1", "domain": {"id": "default"}}}}}'), token=None)
    s["method-not-allowed"] = c("PATCH", "/v2.1/servers/" + S1, [JSON], "{}")
    s["host-header"] = c("GET", "/v2.1/servers/" + S1, ["Host: [::1]:8774"])
    s["image-versions"] = i("GET", "/versions", token=None)
    s["glance-list"] = i("GET", "/v2/images?limit=1&visibility=public&status=active&name=cirros")
    s["glance-show"] = i("GET", "/v2/images/" + IMG2, token="u2:p2")
    s["glance-create"] = i("POST", "/v2/images", [JSON], (
        '{"name": "new", "disk_format": "qcow2", "container_format": "bare", '
        '"visibility": "private", "min_disk": 1, "min_ram": 64, "protected": false, '
        '"tags": ["a", "b"], "kernel_id": "%s", "os_command_line": "console=ttyS0"}' % IMG1))
    s["glance-create-bad"] = i("POST", "/v2/images", [JSON],
                               '{"id": 5, "visibility": "galaxy", "size": 1}')
    s["glance-patch"] = i("PATCH", "/v2/images/" + IMG2, [
        "Content-Type: application/openstack-images-v2.1-json-patch"], (
        '[{"op": "replace", "path": "/name", "value": "n"}, {"op": "add", "path": "/foo", '
        '"value": "bar"}, {"op": "remove", "path": "/foo"}, {"op": "replace", "path": "/tags", '
        '"value": ["y"]}]'), token="u2:p2")
    s["glance-upload"] = i("PUT", "/v2/images/%s/file" % IMG2,
                           ["Content-Type: application/octet-stream"], "0123456789abcdef",
                           token="u2:p2")
    s["glance-download"] = i("GET", "/v2/images/%s/file" % IMG1)
    s["glance-import"] = i("POST", "/v2/images/%s/import" % IMG2, [JSON], (
        '{"method": {"name": "web-download", "uri": "http://93.184.216.34/cirros.img", '
        '"validation_data": {"os_hash_algo": "sha512", "os_hash_value": "00"}}}'),
        token="u2:p2")
    s["glance-delete"] = i("DELETE", "/v2/images/" + IMG1, token="admin:admin")
    s["glance-import-info"] = i("GET", "/v2/info/import")
    return s


def write(name, seeds):
    """Replaces the made seeds of a corpus; found-* (inputs fuzzing found) are kept."""
    d = os.path.join(HERE, name)
    os.makedirs(d, exist_ok=True)
    for k in os.listdir(d):
        if not k.startswith("found-"):
            os.unlink(os.path.join(d, k))
    for k, v in sorted(seeds.items()):
        with open(os.path.join(d, k), "wb") as f:
            f.write(v)
    print("%s: %d seeds" % (name, len(seeds)))


def main():
    which = sys.argv[1:] or ["blk", "net", "api"]
    if "blk" in which:
        write("corpus-blk", blk_seeds())
    if "net" in which:
        write("corpus-net", net_seeds())
    if "api" in which:
        write("corpus-api", api_seeds())


if __name__ == "__main__":
    main()
