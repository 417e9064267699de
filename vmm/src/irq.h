/* SPDX-License-Identifier: Apache-2.0 */
/* How devices raise interrupts; KVM's irqchip in the VMM, a recorder in the unit tests. */
#ifndef KOVA_VMM_IRQ_H
#define KOVA_VMM_IRQ_H

#include <stdbool.h>
#include <stdint.h>

struct irq_sink {
    void *opaque;
    /* Drives IOAPIC pin gsi to level (0/1). 0 or -errno. */
    int (*set_level)(void *opaque, uint32_t gsi, int level);
    /* Delivers one MSI message. 0 or -errno. */
    int (*msi)(void *opaque, uint64_t addr, uint32_t data);

    /* The rest is optional: NULL where KVM lacks the capability (or in tests); devices then
     * use msi() and MMIO exits.
     * MSI routes raised through an eventfd (KVM_IRQFD + KVM_SET_GSI_ROUTING): msi_route_add
     * routes a new GSI to (addr, data), binds eventfd fd to it and returns the GSI or -errno;
     * msi_route_set changes the message; msi_route_del unbinds fd and frees the GSI. */
    int (*msi_route_add)(void *opaque, int fd, uint64_t addr, uint32_t data);
    int (*msi_route_set)(void *opaque, int gsi, uint64_t addr, uint32_t data);
    void (*msi_route_del)(void *opaque, int gsi, int fd);
    /* KVM_IOEVENTFD: a guest write of len bytes at MMIO address addr signals eventfd fd in the
     * kernel instead of exiting to the VMM; assign false removes it. 0 or -errno. */
    int (*ioeventfd)(void *opaque, uint64_t addr, uint32_t len, int fd, bool assign);
};

#endif
