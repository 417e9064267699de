/* SPDX-License-Identifier: Apache-2.0 */
/* How devices raise interrupts; KVM's irqchip in the VMM, a recorder in the unit tests. */
#ifndef KOVA_VMM_IRQ_H
#define KOVA_VMM_IRQ_H

#include <stdint.h>

struct irq_sink {
    void *opaque;
    /* Drives IOAPIC pin gsi to level (0/1). 0 or -errno. */
    int (*set_level)(void *opaque, uint32_t gsi, int level);
    /* Delivers one MSI message. 0 or -errno. */
    int (*msi)(void *opaque, uint64_t addr, uint32_t data);
};

#endif
