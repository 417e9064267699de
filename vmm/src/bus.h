/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Port-I/O and MMIO dispatch. A bus holds non-overlapping ranges, each owned by one device.
 * Ranges are registered before the vCPUs start and never change afterwards, so lookups take no
 * lock; devices lock their own state. bus_read/bus_write are the one place where a guest access
 * (address, size) is checked against device ranges: a handler only ever sees an access that
 * lies wholly inside its range, with 1 <= size <= 8.
 */
#ifndef KOVA_VMM_BUS_H
#define KOVA_VMM_BUS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "kova/common.h" /* kova_le_get/kova_le_put for device register files */

struct bus_ops {
    /* off is relative to the range base; data holds size bytes (little endian). */
    void (*read)(void *opaque, uint64_t off, uint8_t *data, uint32_t size);
    void (*write)(void *opaque, uint64_t off, const uint8_t *data, uint32_t size);
};

struct bus_range {
    uint64_t base, len;
    const struct bus_ops *ops;
    void *opaque;
    const char *name;
};

struct bus {
    const char *name;         /* "pio" or "mmio", for logs */
    struct bus_range *ranges; /* sorted by base */
    size_t n, cap;
    atomic_ulong unknown_reads, unknown_writes, bad_size;
};

void bus_init(struct bus *bus, const char *name);
void bus_destroy(struct bus *bus);
/* 0, -EINVAL (empty or wrapping range), -EEXIST (overlap), -ENOMEM. */
int bus_register(struct bus *bus, uint64_t base, uint64_t len, const struct bus_ops *ops,
                 void *opaque, const char *name);
/* 0 when a device handled it; -ENOENT when no device claims the whole access (reads give
 * all-ones), -EINVAL for a size outside 1..8. Never fatal. */
int bus_read(struct bus *bus, uint64_t addr, uint8_t *data, uint32_t size);
int bus_write(struct bus *bus, uint64_t addr, const uint8_t *data, uint32_t size);

#endif
