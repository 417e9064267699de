/* SPDX-License-Identifier: Apache-2.0 */
#include "pci.h"
#include "platform.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

void pci_dev_init(struct pci_dev *dev, uint16_t vendor, uint16_t device, uint32_t class_code,
                  uint8_t revision, uint16_t subsys_vendor, uint16_t subsys_id)
{
    memset(dev->cfg, 0, sizeof(dev->cfg));
    memset(dev->wmask, 0, sizeof(dev->wmask));
    kova_le_put(dev->cfg + 0x00, 2, vendor);
    kova_le_put(dev->cfg + 0x02, 2, device);
    dev->cfg[0x08] = revision;
    kova_le_put(dev->cfg + 0x09, 3, class_code);
    kova_le_put(dev->cfg + 0x2c, 2, subsys_vendor);
    kova_le_put(dev->cfg + 0x2e, 2, subsys_id);
    kova_le_put(dev->wmask + PCI_COMMAND, 2, 0x0406); /* memory, bus master, INTx disable */
    dev->wmask[0x0c] = 0xff;                          /* cache line size */
    dev->wmask[0x0d] = 0xff;                          /* latency timer */
    dev->wmask[0x3c] = 0xff;                          /* interrupt line */
}

void pci_dev_set_bar(struct pci_dev *dev, unsigned n, uint32_t size, const struct bus_ops *ops,
                     void *opaque)
{
    dev->bar_size[n] = size;
    dev->bar_ops[n] = ops;
    dev->bar_opaque[n] = opaque;
    kova_le_put(dev->wmask + PCI_BAR0 + 4 * n, 4, ~(size - 1) & ~0xfU);
}

static struct pci_dev *dev_at(struct pci_host *h, unsigned slot)
{
    if (slot == 0)
        return &h->bridge;
    return slot < PCI_SLOTS ? h->slots[slot] : NULL;
}

uint32_t pci_cfg_read(struct pci_host *h, unsigned slot, uint32_t off, uint32_t size)
{
    if (size == 0 || size > 4 || off >= 256 || size > 256 - off)
        return 0xffffffffU;
    pthread_mutex_lock(&h->lock);
    struct pci_dev *d = dev_at(h, slot);
    uint32_t v = d ? (uint32_t)kova_le_get(d->cfg + off, size)
                   : (size == 4 ? 0xffffffffU : (1U << (8 * size)) - 1);
    pthread_mutex_unlock(&h->lock);
    return v;
}

void pci_cfg_write(struct pci_host *h, unsigned slot, uint32_t off, uint32_t size, uint32_t v)
{
    if (size == 0 || size > 4 || off >= 256 || size > 256 - off)
        return;
    pthread_mutex_lock(&h->lock);
    struct pci_dev *d = dev_at(h, slot);
    if (d) {
        for (uint32_t i = 0; i < size; i++) {
            uint8_t m = d->wmask[off + i];
            d->cfg[off + i] = (uint8_t)((d->cfg[off + i] & ~m) | ((v >> (8 * i)) & m));
        }
        if (d->cfg_written)
            d->cfg_written(d, off, size);
    }
    pthread_mutex_unlock(&h->lock);
}

/* A data-port access at off (4..7) of 0xCF8: whether the address register (enable bit set, bus 0,
 * function 0) selects a slot; *slot and the config-space offset *reg then. */
static bool conf1_target(struct pci_host *h, uint64_t off, unsigned *slot, uint32_t *reg)
{
    if (off < 4)
        return false;
    pthread_mutex_lock(&h->lock);
    uint32_t a = h->conf_addr;
    pthread_mutex_unlock(&h->lock);
    unsigned bus = (a >> 16) & 0xff, fn = (a >> 8) & 7;
    *slot = (a >> 11) & 0x1f;
    *reg = (a & 0xfc) + (uint32_t)(off - 4);
    return (a & 0x80000000U) && bus == 0 && fn == 0;
}

static void conf1_read(void *opaque, uint64_t off, uint8_t *data, uint32_t size)
{
    struct pci_host *h = opaque;
    unsigned slot;
    uint32_t reg;
    uint32_t v = 0xffffffffU;
    if (off == 0 && size == 4) {
        pthread_mutex_lock(&h->lock);
        v = h->conf_addr;
        pthread_mutex_unlock(&h->lock);
    } else if (conf1_target(h, off, &slot, &reg)) {
        v = pci_cfg_read(h, slot, reg, size);
    }
    kova_le_put(data, size, v);
}

static void conf1_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t size)
{
    struct pci_host *h = opaque;
    unsigned slot;
    uint32_t reg;
    uint32_t v = (uint32_t)kova_le_get(data, size);
    if (off == 0 && size == 4) {
        pthread_mutex_lock(&h->lock);
        h->conf_addr = v & 0x80fffffcU;
        pthread_mutex_unlock(&h->lock);
    } else if (off == PIO_RESET_CONTROL - PIO_PCI_CONF && size == 1) {
        if ((v & RESET_CONTROL_RST_CPU) && h->reset)
            h->reset(h->reset_opaque);
    } else if (conf1_target(h, off, &slot, &reg)) {
        pci_cfg_write(h, slot, reg, size, v);
    }
}

const struct bus_ops pci_conf1_ops = {conf1_read, conf1_write};

/* Finds the BAR holding [addr, addr + size) among devices with memory decoding on. */
static int bar_lookup(struct pci_host *h, uint64_t addr, uint32_t size, const struct bus_ops **ops,
                      void **opaque, uint64_t *bar_off)
{
    int found = 0;
    pthread_mutex_lock(&h->lock);
    for (unsigned s = 1; s < PCI_SLOTS && !found; s++) {
        struct pci_dev *d = h->slots[s];
        if (!d || !(d->cfg[PCI_COMMAND] & PCI_CMD_MEMORY))
            continue;
        for (unsigned b = 0; b < PCI_BARS; b++) {
            if (!d->bar_size[b])
                continue;
            uint64_t base = kova_le_get(d->cfg + PCI_BAR0 + 4 * b, 4) & ~0xfU;
            if (addr >= base && addr - base < d->bar_size[b] &&
                size <= d->bar_size[b] - (addr - base)) {
                *ops = d->bar_ops[b];
                *opaque = d->bar_opaque[b];
                *bar_off = addr - base;
                found = 1;
                break;
            }
        }
    }
    pthread_mutex_unlock(&h->lock);
    return found;
}

static void mmio_read(void *opaque, uint64_t off, uint8_t *data, uint32_t size)
{
    const struct bus_ops *ops;
    void *dev;
    uint64_t bar_off;
    if (bar_lookup(opaque, MMIO_PCI_START + off, size, &ops, &dev, &bar_off) && ops->read)
        ops->read(dev, bar_off, data, size);
    else
        memset(data, 0xff, size);
}

static void mmio_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t size)
{
    const struct bus_ops *ops;
    void *dev;
    uint64_t bar_off;
    if (bar_lookup(opaque, MMIO_PCI_START + off, size, &ops, &dev, &bar_off) && ops->write)
        ops->write(dev, bar_off, data, size);
}

const struct bus_ops pci_mmio_ops = {mmio_read, mmio_write};

int pci_host_init(struct pci_host *h, struct bus *pio, struct bus *mmio, void (*reset)(void *),
                  void *reset_opaque)
{
    memset(h, 0, sizeof(*h));
    h->reset = reset;
    h->reset_opaque = reset_opaque;
    pthread_mutex_init(&h->lock, NULL);
    /* Host bridge at 00:00.0 (class 0x0600); the guest's conf1 probe looks for it. */
    pci_dev_init(&h->bridge, 0x1b36, 0x0008, 0x060000, 0, 0x1af4, 0x1100);
    h->bridge.name = "host-bridge";
    h->next_bar = MMIO_PCI_START;
    int r = bus_register(pio, PIO_PCI_CONF, 8, &pci_conf1_ops, h, "pci-conf1");
    if (r == 0)
        r = bus_register(mmio, MMIO_PCI_START, MMIO_PCI_END - MMIO_PCI_START, &pci_mmio_ops, h,
                         "pci-mmio");
    return r;
}

void pci_host_destroy(struct pci_host *h)
{
    pthread_mutex_destroy(&h->lock);
}

int pci_host_add(struct pci_host *h, struct pci_dev *dev)
{
    unsigned slot = 1;
    while (slot < PCI_SLOTS && h->slots[slot])
        slot++;
    if (slot == PCI_SLOTS)
        return -ENOSPC;
    for (unsigned b = 0; b < PCI_BARS; b++) {
        uint32_t size = dev->bar_size[b];
        if (!size)
            continue;
        uint64_t base = (h->next_bar + size - 1) & ~((uint64_t)size - 1);
        if (base + size > MMIO_PCI_END)
            return -ENOSPC;
        kova_le_put(dev->cfg + PCI_BAR0 + 4 * b, 4, (uint32_t)base);
        h->next_bar = base + size;
    }
    h->slots[slot] = dev;
    return 0;
}
