/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The in-kernel interrupt controllers (IOAPIC, PIC, the LAPICs) and PIT, and the irq_sink
 * (irq.h) through which devices reach them: IRQ lines (KVM_IRQ_LINE), single MSIs
 * (KVM_SIGNAL_MSI) and, where KVM has them, MSI routes raised through eventfds (KVM_IRQFD on a
 * GSI routed by KVM_SET_GSI_ROUTING) and ioeventfds (KVM_IOEVENTFD).
 *
 * The GSI routing table is KVM's default for the IRQ chip (GSIs 0-23) plus the MSI routes, all
 * kept here under routes_lock and handed to KVM whole on every change; the sink's callbacks may
 * be called from any thread. The irqchip does not own the VM fd (the VM closes it, which also
 * drops every route and irqfd); devices delete the routes they added before they go.
 * Errors: 0 or -errno.
 */
#ifndef KOVA_VMM_IRQCHIP_H
#define KOVA_VMM_IRQCHIP_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "irq.h"

/* MSI routes for irqfds: GSIs VM_MSI_GSI_BASE .. + VM_MSI_ROUTES - 1 (below: the IRQ chip's). */
#define VM_MSI_GSI_BASE 24
#define VM_MSI_ROUTES   256

struct vm_msi_route {
    bool used;
    uint64_t addr;
    uint32_t data;
};

struct irqchip {
    int vm_fd; /* not owned */
    pthread_mutex_t routes_lock;
    struct vm_msi_route msi_routes[VM_MSI_ROUTES]; /* under routes_lock */
};

/* Fills rt with the whole GSI routing table: KVM's default IRQ chip routes (GSIs 0-15 to the
 * IOAPIC pin of the same number and to the PIC, 16-23 to the IOAPIC) and one MSI route per used
 * entry of msi (GSI VM_MSI_GSI_BASE + index). rt has room for 40 + n entries. */
void vm_gsi_routing_fill(struct kvm_irq_routing *rt, const struct vm_msi_route *msi, unsigned n);

/* Sets up the routes lock; cannot fail. irqchip_destroy is then always safe. */
void irqchip_init(struct irqchip *ic);
/* Creates the IRQ chip and the PIT in vm_fd and points *sink at them: set_level and msi always;
 * the MSI-route callbacks with KVM_CAP_IRQFD and enough GSI routes, ioeventfd with
 * KVM_CAP_IOEVENTFD, neither with KOVA_VMM_NO_EVENTFDS=1 (then MSIs go through KVM_SIGNAL_MSI
 * and queue notifications exit to the VMM). 0 or -errno with *why set. */
int irqchip_create(struct irqchip *ic, int kvm_fd, int vm_fd, struct irq_sink *sink,
                   const char **why);
void irqchip_destroy(struct irqchip *ic);
/* Drives IOAPIC pin gsi to level (0/1). */
int irqchip_set_level(struct irqchip *ic, uint32_t gsi, int level);

#endif
