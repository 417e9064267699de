/* SPDX-License-Identifier: Apache-2.0 */
#include "bus.h"
#include "log.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

void bus_init(struct bus *bus, const char *name)
{
    memset(bus, 0, sizeof(*bus));
    bus->name = name;
}

void bus_destroy(struct bus *bus)
{
    free(bus->ranges);
    bus->ranges = NULL;
    bus->n = bus->cap = 0;
}

int bus_register(struct bus *bus, uint64_t base, uint64_t len, const struct bus_ops *ops,
                 void *opaque, const char *name)
{
    if (len == 0 || base + len - 1 < base || !ops)
        return -EINVAL;
    size_t pos = 0;
    while (pos < bus->n && bus->ranges[pos].base < base)
        pos++;
    if (pos > 0) {
        const struct bus_range *prev = &bus->ranges[pos - 1];
        if (prev->base + prev->len - 1 >= base)
            return -EEXIST;
    }
    if (pos < bus->n && base + len - 1 >= bus->ranges[pos].base)
        return -EEXIST;
    if (bus->n == bus->cap) {
        size_t cap = bus->cap ? bus->cap * 2 : 16;
        struct bus_range *r = realloc(bus->ranges, cap * sizeof(*r));
        if (!r)
            return -ENOMEM;
        bus->ranges = r;
        bus->cap = cap;
    }
    memmove(&bus->ranges[pos + 1], &bus->ranges[pos], (bus->n - pos) * sizeof(bus->ranges[0]));
    bus->ranges[pos] = (struct bus_range){base, len, ops, opaque, name};
    bus->n++;
    return 0;
}

/* The range that holds the whole access [addr, addr + size), or NULL. */
static const struct bus_range *bus_find(const struct bus *bus, uint64_t addr, uint32_t size)
{
    size_t lo = 0, hi = bus->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct bus_range *r = &bus->ranges[mid];
        if (addr < r->base)
            hi = mid;
        else if (addr - r->base >= r->len)
            lo = mid + 1;
        else
            return (size <= r->len - (addr - r->base)) ? r : NULL;
    }
    return NULL;
}

/* Both directions of an access: the size check, the lookup and the counting of what no device
 * claims, in one place. data is only written for a read. */
static int bus_access(struct bus *bus, uint64_t addr, uint8_t *data, uint32_t size, bool write)
{
    if (size == 0 || size > 8) {
        atomic_fetch_add(&bus->bad_size, 1);
        return -EINVAL;
    }
    const struct bus_range *r = bus_find(bus, addr, size);
    if (!r || (write ? !r->ops->write : !r->ops->read)) {
        if (!write)
            memset(data, 0xff, size);
        unsigned long n = atomic_fetch_add(write ? &bus->unknown_writes : &bus->unknown_reads, 1);
        if (n < 64)
            log_debug("%s: unhandled %s of %u at 0x%llx", bus->name, write ? "write" : "read", size,
                      (unsigned long long)addr);
        return -ENOENT;
    }
    if (write)
        r->ops->write(r->opaque, addr - r->base, data, size);
    else
        r->ops->read(r->opaque, addr - r->base, data, size);
    return 0;
}

int bus_read(struct bus *bus, uint64_t addr, uint8_t *data, uint32_t size)
{
    return bus_access(bus, addr, data, size, false);
}

int bus_write(struct bus *bus, uint64_t addr, const uint8_t *data, uint32_t size)
{
    return bus_access(bus, addr, (uint8_t *)(uintptr_t)data, size, true);
}
