/* SPDX-License-Identifier: Apache-2.0 */
#include "irqchip.h"
#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

/* ---- IRQ lines and MSIs ---- */

static int kvm_set_level(void *opaque, uint32_t gsi, int level)
{
    struct irqchip *ic = opaque;
    struct kvm_irq_level l = {.irq = gsi, .level = (uint32_t)level};
    return ioctl(ic->vm_fd, KVM_IRQ_LINE, &l) < 0 ? -errno : 0;
}

static int kvm_msi(void *opaque, uint64_t addr, uint32_t data)
{
    struct irqchip *ic = opaque;
    struct kvm_msi m = {
        .address_lo = (uint32_t)addr, .address_hi = (uint32_t)(addr >> 32), .data = data};
    return ioctl(ic->vm_fd, KVM_SIGNAL_MSI, &m) < 0 ? -errno : 0;
}

/* ---- irqfd routes and ioeventfds ---- */

void vm_gsi_routing_fill(struct kvm_irq_routing *rt, const struct vm_msi_route *msi, unsigned n)
{
    uint32_t k = 0;
    for (uint32_t gsi = 0; gsi < 24; gsi++) {
        rt->entries[k++] = (struct kvm_irq_routing_entry){
            .gsi = gsi,
            .type = KVM_IRQ_ROUTING_IRQCHIP,
            .u.irqchip = {.irqchip = KVM_IRQCHIP_IOAPIC, .pin = gsi},
        };
        if (gsi < 16)
            rt->entries[k++] = (struct kvm_irq_routing_entry){
                .gsi = gsi,
                .type = KVM_IRQ_ROUTING_IRQCHIP,
                .u.irqchip = {.irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE,
                              .pin = gsi % 8},
            };
    }
    for (unsigned i = 0; i < n; i++) {
        if (!msi[i].used)
            continue;
        rt->entries[k++] = (struct kvm_irq_routing_entry){
            .gsi = VM_MSI_GSI_BASE + i,
            .type = KVM_IRQ_ROUTING_MSI,
            .u.msi = {.address_lo = (uint32_t)msi[i].addr,
                      .address_hi = (uint32_t)(msi[i].addr >> 32),
                      .data = msi[i].data},
        };
    }
    rt->nr = k;
    rt->flags = 0;
}

/* Hands the whole table to KVM (routes_lock held). */
static int routes_commit(struct irqchip *ic)
{
    struct kvm_irq_routing *rt =
        calloc(1, sizeof(*rt) + (40 + VM_MSI_ROUTES) * sizeof(rt->entries[0]));
    if (!rt)
        return -ENOMEM;
    vm_gsi_routing_fill(rt, ic->msi_routes, VM_MSI_ROUTES);
    int r = ioctl(ic->vm_fd, KVM_SET_GSI_ROUTING, rt) < 0 ? -errno : 0;
    free(rt);
    return r;
}

static int kvm_msi_route_add(void *opaque, int fd, uint64_t addr, uint32_t data)
{
    struct irqchip *ic = opaque;
    pthread_mutex_lock(&ic->routes_lock);
    unsigned i = 0;
    while (i < VM_MSI_ROUTES && ic->msi_routes[i].used)
        i++;
    int r = -ENOSPC;
    if (i == VM_MSI_ROUTES)
        goto out;
    ic->msi_routes[i] = (struct vm_msi_route){true, addr, data};
    if ((r = routes_commit(ic)) < 0)
        goto undo;
    struct kvm_irqfd f = {.fd = (uint32_t)fd, .gsi = VM_MSI_GSI_BASE + i};
    if (ioctl(ic->vm_fd, KVM_IRQFD, &f) < 0) {
        r = -errno;
        goto undo;
    }
    r = VM_MSI_GSI_BASE + (int)i;
    goto out;
undo:
    ic->msi_routes[i].used = false;
    routes_commit(ic);
out:
    pthread_mutex_unlock(&ic->routes_lock);
    return r;
}

static int kvm_msi_route_set(void *opaque, int gsi, uint64_t addr, uint32_t data)
{
    struct irqchip *ic = opaque;
    unsigned i = (unsigned)(gsi - VM_MSI_GSI_BASE);
    if (gsi < VM_MSI_GSI_BASE || i >= VM_MSI_ROUTES)
        return -EINVAL;
    pthread_mutex_lock(&ic->routes_lock);
    int r = -EINVAL;
    if (ic->msi_routes[i].used) {
        ic->msi_routes[i].addr = addr;
        ic->msi_routes[i].data = data;
        r = routes_commit(ic);
    }
    pthread_mutex_unlock(&ic->routes_lock);
    return r;
}

static void kvm_msi_route_del(void *opaque, int gsi, int fd)
{
    struct irqchip *ic = opaque;
    unsigned i = (unsigned)(gsi - VM_MSI_GSI_BASE);
    if (gsi < VM_MSI_GSI_BASE || i >= VM_MSI_ROUTES)
        return;
    pthread_mutex_lock(&ic->routes_lock);
    struct kvm_irqfd f = {
        .fd = (uint32_t)fd, .gsi = (uint32_t)gsi, .flags = KVM_IRQFD_FLAG_DEASSIGN};
    if (ioctl(ic->vm_fd, KVM_IRQFD, &f) < 0)
        log_debug("KVM_IRQFD deassign (gsi %d): %s", gsi, strerror(errno));
    ic->msi_routes[i].used = false;
    pthread_mutex_unlock(&ic->routes_lock);
}

static int kvm_ioeventfd(void *opaque, uint64_t addr, uint32_t len, int fd, bool assign)
{
    struct irqchip *ic = opaque;
    struct kvm_ioeventfd e = {
        .addr = addr,
        .len = len,
        .fd = fd,
        .flags = assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN,
    };
    return ioctl(ic->vm_fd, KVM_IOEVENTFD, &e) < 0 ? -errno : 0;
}

/* irqfds and ioeventfds where KVM has them (KOVA_VMM_NO_EVENTFDS=1 turns both off: the
 * KVM_SIGNAL_MSI and MMIO-exit paths, for comparisons and tests). */
static void setup_eventfd_hooks(int kvm_fd, struct irq_sink *sink)
{
    const char *off = getenv("KOVA_VMM_NO_EVENTFDS");
    if (off && strcmp(off, "1") == 0) {
        log_info("irqfd and ioeventfd off (KOVA_VMM_NO_EVENTFDS=1)");
        return;
    }
    if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQFD) > 0 &&
        ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQ_ROUTING) >=
            VM_MSI_GSI_BASE + VM_MSI_ROUTES) {
        sink->msi_route_add = kvm_msi_route_add;
        sink->msi_route_set = kvm_msi_route_set;
        sink->msi_route_del = kvm_msi_route_del;
    } else {
        log_info("KVM lacks irqfd or GSI routing: MSIs through KVM_SIGNAL_MSI");
    }
    if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IOEVENTFD) > 0)
        sink->ioeventfd = kvm_ioeventfd;
    else
        log_info("KVM lacks ioeventfd: virtqueue notifications exit to the VMM");
}

void irqchip_init(struct irqchip *ic)
{
    memset(ic, 0, sizeof(*ic));
    ic->vm_fd = -1;
    pthread_mutex_init(&ic->routes_lock, NULL);
}

int irqchip_create(struct irqchip *ic, int kvm_fd, int vm_fd, struct irq_sink *sink,
                   const char **why)
{
    ic->vm_fd = vm_fd;
    *sink = (struct irq_sink){.opaque = ic, .set_level = kvm_set_level, .msi = kvm_msi};
    if (ioctl(vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
        *why = "KVM_CREATE_IRQCHIP failed";
        return -errno;
    }
    struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
    if (ioctl(vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
        *why = "KVM_CREATE_PIT2 failed";
        return -errno;
    }
    setup_eventfd_hooks(kvm_fd, sink);
    return 0;
}

void irqchip_destroy(struct irqchip *ic)
{
    pthread_mutex_destroy(&ic->routes_lock);
}

int irqchip_set_level(struct irqchip *ic, uint32_t gsi, int level)
{
    return kvm_set_level(ic, gsi, level);
}
