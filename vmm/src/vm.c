/* SPDX-License-Identifier: Apache-2.0 */
#include "vm.h"
#include "acpi.h"
#include "log.h"
#include "platform.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define KVM_TSS_ADDR   0xfffbd000ULL
#define KVM_IDMAP_ADDR 0xfffbc000ULL

uint64_t vm_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* ---- interrupts and power events from devices ---- */

static int kvm_set_level(void *opaque, uint32_t gsi, int level)
{
    struct vm *vm = opaque;
    struct kvm_irq_level l = {.irq = gsi, .level = (uint32_t)level};
    return ioctl(vm->vm_fd, KVM_IRQ_LINE, &l) < 0 ? -errno : 0;
}

static int kvm_msi(void *opaque, uint64_t addr, uint32_t data)
{
    struct vm *vm = opaque;
    struct kvm_msi m = {
        .address_lo = (uint32_t)addr, .address_hi = (uint32_t)(addr >> 32), .data = data};
    return ioctl(vm->vm_fd, KVM_SIGNAL_MSI, &m) < 0 ? -errno : 0;
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
static int routes_commit(struct vm *vm)
{
    struct kvm_irq_routing *rt =
        calloc(1, sizeof(*rt) + (40 + VM_MSI_ROUTES) * sizeof(rt->entries[0]));
    if (!rt)
        return -ENOMEM;
    vm_gsi_routing_fill(rt, vm->msi_routes, VM_MSI_ROUTES);
    int r = ioctl(vm->vm_fd, KVM_SET_GSI_ROUTING, rt) < 0 ? -errno : 0;
    free(rt);
    return r;
}

static int kvm_msi_route_add(void *opaque, int fd, uint64_t addr, uint32_t data)
{
    struct vm *vm = opaque;
    pthread_mutex_lock(&vm->routes_lock);
    unsigned i = 0;
    while (i < VM_MSI_ROUTES && vm->msi_routes[i].used)
        i++;
    int r = -ENOSPC;
    if (i == VM_MSI_ROUTES)
        goto out;
    vm->msi_routes[i] = (struct vm_msi_route){true, addr, data};
    if ((r = routes_commit(vm)) < 0)
        goto undo;
    struct kvm_irqfd f = {.fd = (uint32_t)fd, .gsi = VM_MSI_GSI_BASE + i};
    if (ioctl(vm->vm_fd, KVM_IRQFD, &f) < 0) {
        r = -errno;
        goto undo;
    }
    r = VM_MSI_GSI_BASE + (int)i;
    goto out;
undo:
    vm->msi_routes[i].used = false;
    routes_commit(vm);
out:
    pthread_mutex_unlock(&vm->routes_lock);
    return r;
}

static int kvm_msi_route_set(void *opaque, int gsi, uint64_t addr, uint32_t data)
{
    struct vm *vm = opaque;
    unsigned i = (unsigned)(gsi - VM_MSI_GSI_BASE);
    if (gsi < VM_MSI_GSI_BASE || i >= VM_MSI_ROUTES)
        return -EINVAL;
    pthread_mutex_lock(&vm->routes_lock);
    int r = -EINVAL;
    if (vm->msi_routes[i].used) {
        vm->msi_routes[i].addr = addr;
        vm->msi_routes[i].data = data;
        r = routes_commit(vm);
    }
    pthread_mutex_unlock(&vm->routes_lock);
    return r;
}

static void kvm_msi_route_del(void *opaque, int gsi, int fd)
{
    struct vm *vm = opaque;
    unsigned i = (unsigned)(gsi - VM_MSI_GSI_BASE);
    if (gsi < VM_MSI_GSI_BASE || i >= VM_MSI_ROUTES)
        return;
    pthread_mutex_lock(&vm->routes_lock);
    struct kvm_irqfd f = {
        .fd = (uint32_t)fd, .gsi = (uint32_t)gsi, .flags = KVM_IRQFD_FLAG_DEASSIGN};
    if (ioctl(vm->vm_fd, KVM_IRQFD, &f) < 0)
        log_debug("KVM_IRQFD deassign (gsi %d): %s", gsi, strerror(errno));
    vm->msi_routes[i].used = false;
    pthread_mutex_unlock(&vm->routes_lock);
}

static int kvm_ioeventfd(void *opaque, uint64_t addr, uint32_t len, int fd, bool assign)
{
    struct vm *vm = opaque;
    struct kvm_ioeventfd e = {
        .addr = addr,
        .len = len,
        .fd = fd,
        .flags = assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN,
    };
    return ioctl(vm->vm_fd, KVM_IOEVENTFD, &e) < 0 ? -errno : 0;
}

/* irqfds and ioeventfds where KVM has them (KOVA_VMM_NO_EVENTFDS=1 turns both off: the
 * KVM_SIGNAL_MSI and MMIO-exit paths, for comparisons and tests). */
static void setup_eventfd_hooks(struct vm *vm)
{
    const char *off = getenv("KOVA_VMM_NO_EVENTFDS");
    if (off && strcmp(off, "1") == 0) {
        log_info("irqfd and ioeventfd off (KOVA_VMM_NO_EVENTFDS=1)");
        return;
    }
    if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQFD) > 0 &&
        ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQ_ROUTING) >=
            VM_MSI_GSI_BASE + VM_MSI_ROUTES) {
        vm->irq.msi_route_add = kvm_msi_route_add;
        vm->irq.msi_route_set = kvm_msi_route_set;
        vm->irq.msi_route_del = kvm_msi_route_del;
    } else {
        log_info("KVM lacks irqfd or GSI routing: MSIs through KVM_SIGNAL_MSI");
    }
    if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IOEVENTFD) > 0)
        vm->irq.ioeventfd = kvm_ioeventfd;
    else
        log_info("KVM lacks ioeventfd: virtqueue notifications exit to the VMM");
}

static void power_event(void *opaque, enum power_event ev)
{
    struct vm *vm = opaque;
    if (ev == POWER_OFF)
        vm_stop(vm, VM_POWEROFF, NULL);
    else if (ev == POWER_RESET)
        vm_stop(vm, VM_RESET, NULL);
}

static void boot_timer(void *opaque)
{
    struct vm *vm = opaque;
    uint64_t now = vm_now_ns() - vm->t0_ns;
    uint64_t zero = 0;
    if (atomic_compare_exchange_strong(&vm->boot_timer_ns, &zero, now ? now : 1))
        log_info("guest init started %.1f ms after the VMM start or reset (%.1f ms after this "
                 "VM's creation)",
                 now / 1e6, (double)(vm_now_ns() - vm->start_ns) / 1e6);
}

/* ---- vCPUs ---- */

static void kick(struct vm *vm)
{
    for (unsigned i = 0; i < vm->ncpus; i++) {
        struct vcpu *c = &vm->vcpus[i];
        if (c->run)
            __atomic_store_n(&c->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
        if (c->thread_started)
            pthread_kill(c->thread, SIGUSR1);
    }
}

void vm_stop(struct vm *vm, enum vm_state state, const char *error)
{
    pthread_mutex_lock(&vm->lock);
    if (vm->state == VM_RUNNING) {
        vm->state = state;
        vm->stop_ns = vm_now_ns();
        if (error)
            snprintf(vm->error, sizeof(vm->error), "%s", error);
        uint64_t one = 1;
        if (write(vm->done_fd, &one, sizeof(one)) < 0) {
            /* an eventfd write only fails on overflow: it is readable either way */
        }
    }
    pthread_cond_broadcast(&vm->cond);
    pthread_cond_broadcast(&vm->parked_cond);
    kick(vm);
    pthread_mutex_unlock(&vm->lock);
}

void vm_pause(struct vm *vm)
{
    pthread_mutex_lock(&vm->lock);
    vm->paused = true;
    kick(vm);
    while (vm->state == VM_RUNNING && vm->parked < vm->running)
        pthread_cond_wait(&vm->parked_cond, &vm->lock);
    pthread_mutex_unlock(&vm->lock);
}

void vm_resume(struct vm *vm)
{
    pthread_mutex_lock(&vm->lock);
    vm->paused = false;
    pthread_cond_broadcast(&vm->cond);
    pthread_mutex_unlock(&vm->lock);
}

bool vm_paused(struct vm *vm)
{
    pthread_mutex_lock(&vm->lock);
    bool p = vm->paused;
    pthread_mutex_unlock(&vm->lock);
    return p;
}

int vm_power_button(struct vm *vm)
{
    int r = kvm_set_level(vm, GSI_GED, 1);
    if (r == 0)
        r = kvm_set_level(vm, GSI_GED, 0);
    return r;
}

/* Waits while paused; returns false once the VM is stopping. */
static bool vcpu_may_run(struct vcpu *c)
{
    struct vm *vm = c->vm;
    pthread_mutex_lock(&vm->lock);
    while (vm->paused && vm->state == VM_RUNNING) {
        vm->parked++;
        pthread_cond_broadcast(&vm->parked_cond);
        pthread_cond_wait(&vm->cond, &vm->lock);
        vm->parked--;
    }
    bool go = vm->state == VM_RUNNING;
    if (go)
        __atomic_store_n(&c->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&vm->lock);
    return go;
}

static void vcpu_fail(struct vcpu *c, const char *fmt, unsigned long long a)
{
    char msg[160];
    snprintf(msg, sizeof(msg), fmt, a);
    log_err("vcpu %u: %s", c->id, msg);
    vm_stop(c->vm, VM_ERROR, msg);
}

static void dump_seg(unsigned id, const char *name, const struct kvm_segment *s)
{
    log_err("vcpu %u: %-3s sel %04x base %016llx limit %08x type %x p%u dpl%u db%u s%u l%u g%u", id,
            name, s->selector, (unsigned long long)s->base, s->limit, s->type, s->present, s->dpl,
            s->db, s->s, s->l, s->g);
}

/* Logs (at error level) what a vCPU was executing: registers, control registers, segments,
 * pending events and the code bytes at CS:RIP, so that a guest triple fault can be diagnosed
 * from the log alone. */
static void vcpu_dump(struct vcpu *c)
{
    struct vm *vm = c->vm;
    struct kvm_regs r;
    struct kvm_sregs s;
    struct kvm_mp_state mp = {0};
    struct kvm_vcpu_events ev;
    if (ioctl(c->fd, KVM_GET_REGS, &r) < 0 || ioctl(c->fd, KVM_GET_SREGS, &s) < 0) {
        log_err("vcpu %u: cannot read the registers: errno %d", c->id, errno);
        return;
    }
    ioctl(c->fd, KVM_GET_MP_STATE, &mp);
    if (s.cs.selector == 0xf000 && r.rip == 0xfff0)
        log_err("vcpu %u: registers already reset: KVM on AMD (SVM) INITs a vCPU at a shutdown, "
                "so what it executed is lost (KVM's kvm_exit trace events still show it)",
                c->id);
    log_err("vcpu %u: rip %016llx rsp %016llx rflags %08llx mp_state %u", c->id,
            (unsigned long long)r.rip, (unsigned long long)r.rsp, (unsigned long long)r.rflags,
            mp.mp_state);
    log_err("vcpu %u: rax %016llx rbx %016llx rcx %016llx rdx %016llx", c->id,
            (unsigned long long)r.rax, (unsigned long long)r.rbx, (unsigned long long)r.rcx,
            (unsigned long long)r.rdx);
    log_err("vcpu %u: rsi %016llx rdi %016llx rbp %016llx r8  %016llx", c->id,
            (unsigned long long)r.rsi, (unsigned long long)r.rdi, (unsigned long long)r.rbp,
            (unsigned long long)r.r8);
    log_err("vcpu %u: cr0 %016llx cr2 %016llx cr3 %016llx cr4 %016llx efer %llx apic_base %llx",
            c->id, (unsigned long long)s.cr0, (unsigned long long)s.cr2, (unsigned long long)s.cr3,
            (unsigned long long)s.cr4, (unsigned long long)s.efer, (unsigned long long)s.apic_base);
    log_err("vcpu %u: gdt %016llx/%x idt %016llx/%x", c->id, (unsigned long long)s.gdt.base,
            s.gdt.limit, (unsigned long long)s.idt.base, s.idt.limit);
    dump_seg(c->id, "cs", &s.cs);
    dump_seg(c->id, "ss", &s.ss);
    dump_seg(c->id, "ds", &s.ds);
    dump_seg(c->id, "tr", &s.tr);
    if (ioctl(c->fd, KVM_GET_VCPU_EVENTS, &ev) == 0)
        log_err("vcpu %u: exception injected %u nr %u has_error %u error %x; nmi pending %u "
                "masked %u; sipi_vector %x",
                c->id, ev.exception.injected, ev.exception.nr, ev.exception.has_error_code,
                ev.exception.error_code, ev.nmi.pending, ev.nmi.masked, ev.sipi_vector);
    /* Code bytes at CS:RIP when paging is off (real mode, the AP trampoline) or the address is
     * identity mapped low memory; otherwise the linear address is not a guest-physical one. */
    uint64_t lin = s.cs.base + r.rip;
    if (!(s.cr0 & 0x80000000u) || lin < (UINT64_C(1) << 30)) {
        const uint8_t *b = gm_ptr(&vm->mem, lin, 16);
        if (b) {
            char hex[16 * 3 + 1];
            for (int i = 0; i < 16; i++)
                snprintf(hex + i * 3, 4, " %02x", b[i]);
            log_err("vcpu %u: bytes at %s %llx:%s", c->id,
                    (s.cr0 & 0x80000000u) ? "linear (if identity mapped)" : "physical",
                    (unsigned long long)lin, hex);
        }
    }
}

static void *vcpu_thread(void *arg)
{
    struct vcpu *c = arg;
    struct vm *vm = c->vm;
    struct kvm_run *run = c->run;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);

    while (vcpu_may_run(c)) {
        if (ioctl(c->fd, KVM_RUN, 0) < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            vcpu_fail(c, "KVM_RUN failed: errno %llu", (unsigned long long)errno);
            break;
        }
        switch (run->exit_reason) {
        case KVM_EXIT_IO: {
            uint8_t *data = (uint8_t *)run + run->io.data_offset;
            uint32_t size = run->io.size;
            if ((uint64_t)run->io.data_offset + (uint64_t)size * run->io.count > vm->run_size) {
                vcpu_fail(c, "I/O exit data outside kvm_run (%llu)",
                          (unsigned long long)run->io.count);
                break;
            }
            for (uint32_t i = 0; i < run->io.count; i++, data += size) {
                if (run->io.direction == KVM_EXIT_IO_OUT)
                    bus_write(&vm->pio, run->io.port, data, size);
                else
                    bus_read(&vm->pio, run->io.port, data, size);
            }
            break;
        }
        case KVM_EXIT_MMIO:
            if (run->mmio.is_write)
                bus_write(&vm->mmio, run->mmio.phys_addr, run->mmio.data, run->mmio.len);
            else
                bus_read(&vm->mmio, run->mmio.phys_addr, run->mmio.data, run->mmio.len);
            break;
        case KVM_EXIT_HLT:
        case KVM_EXIT_IRQ_WINDOW_OPEN:
        case KVM_EXIT_INTR:
            break;
        case KVM_EXIT_SHUTDOWN:
            log_err("vcpu %u: triple fault (KVM_EXIT_SHUTDOWN)", c->id);
            vcpu_dump(c);
            vm_stop(vm, VM_SHUTDOWN, "triple fault");
            break;
        case KVM_EXIT_SYSTEM_EVENT:
            if (run->system_event.type == KVM_SYSTEM_EVENT_RESET)
                vm_stop(vm, VM_RESET, NULL);
            else if (run->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN)
                vm_stop(vm, VM_POWEROFF, NULL);
            else
                vcpu_fail(c, "system event %llu", (unsigned long long)run->system_event.type);
            break;
        case KVM_EXIT_FAIL_ENTRY:
            vcpu_fail(c, "VM entry failed (hardware reason 0x%llx)",
                      (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
            break;
        case KVM_EXIT_INTERNAL_ERROR:
            vcpu_fail(c, "KVM internal error, suberror %llu",
                      (unsigned long long)run->internal.suberror);
            break;
        default:
            vcpu_fail(c, "unexpected KVM exit reason %llu", (unsigned long long)run->exit_reason);
            break;
        }
    }
    pthread_mutex_lock(&vm->lock);
    vm->running--;
    pthread_cond_broadcast(&vm->parked_cond);
    pthread_mutex_unlock(&vm->lock);
    return NULL;
}

static unsigned order_of(unsigned n)
{
    unsigned s = 0;
    while ((1u << s) < n)
        s++;
    return s;
}

/* KVM's supported CPUID with this vCPU's APIC ID and an n-core, one-thread-per-core package. */
static int vcpu_set_cpuid(struct vm *vm, struct vcpu *c)
{
    struct kvm_cpuid2 *src = vm->cpuid;
    size_t sz = sizeof(*src) + src->nent * sizeof(src->entries[0]);
    struct kvm_cpuid2 *cp = malloc(sz);
    if (!cp)
        return -ENOMEM;
    memcpy(cp, src, sz);
    unsigned n = vm->ncpus, shift = order_of(n), id = c->id;
    int tsc_deadline = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0;
    for (unsigned i = 0; i < cp->nent; i++) {
        struct kvm_cpuid_entry2 *e = &cp->entries[i];
        switch (e->function) {
        case 1:
            e->ebx = (e->ebx & 0x0000ffffu) | (id << 24) | ((n > 1 ? n : 1) << 16);
            e->ecx |= 1u << 31; /* hypervisor */
            if (tsc_deadline)
                e->ecx |= 1u << 24;
            if (n > 1)
                e->edx |= 1u << 28; /* HTT: more than one logical CPU in the package */
            break;
        case 4: /* Intel cache topology: cores per package */
            e->eax = (e->eax & 0x03ffffffu) | ((n - 1) << 26);
            e->eax &= ~(0xfffu << 14); /* one thread shares each cache level */
            break;
        case 0xb:
        case 0x1f:
            e->edx = id;
            if (e->index == 0) {
                e->eax = 0;
                e->ebx = 1;
                e->ecx = 0 | (1u << 8); /* SMT level */
            } else if (e->index == 1) {
                e->eax = shift;
                e->ebx = n;
                e->ecx = 1 | (2u << 8); /* core level */
            } else {
                e->eax = 0;
                e->ebx = 0;
                e->ecx = e->index; /* invalid level */
            }
            break;
        case 0x80000008:
            e->ecx = (e->ecx & ~0xf0ffu) | (shift << 12) | (n - 1);
            break;
        case 0x8000001e:
            e->eax = id;
            e->ebx = id & 0xff; /* core id, one thread per core */
            e->ecx = 0;
            break;
        }
    }
    int r = ioctl(c->fd, KVM_SET_CPUID2, cp) < 0 ? -errno : 0;
    free(cp);
    return r;
}

static void seg(struct kvm_segment *s, uint16_t sel, uint8_t type, int code64)
{
    memset(s, 0, sizeof(*s));
    s->base = 0;
    s->limit = 0xffffffff;
    s->selector = sel;
    s->type = type;
    s->present = 1;
    s->dpl = 0;
    s->db = code64 ? 0 : 1;
    s->s = 1;
    s->l = code64 ? 1 : 0;
    s->g = 1;
}

static int vcpu_boot_regs(struct vm *vm, struct vcpu *c)
{
    struct kvm_sregs sregs;
    if (ioctl(c->fd, KVM_GET_SREGS, &sregs) < 0)
        return -errno;
    seg(&sregs.cs, BOOT_CS, 0xb, 1);
    seg(&sregs.ds, BOOT_DS, 0x3, 0);
    sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
    seg(&sregs.tr, BOOT_TSS, 0xb, 0);
    sregs.tr.s = 0;
    sregs.tr.limit = 0xfffff;
    sregs.tr.g = 0;
    sregs.gdt.base = BOOT_GDT_ADDR;
    sregs.gdt.limit = sizeof(boot_gdt) - 1;
    sregs.idt.base = 0;
    sregs.idt.limit = 0;
    sregs.cr3 = BOOT_PML4_ADDR;
    sregs.cr4 = 0x20;                /* PAE */
    sregs.cr0 = 0x80000001u | 0x10u; /* PG | PE | ET */
    sregs.efer = 0x500;              /* LME | LMA */
    if (ioctl(c->fd, KVM_SET_SREGS, &sregs) < 0)
        return -errno;

    struct kvm_regs regs;
    memset(&regs, 0, sizeof(regs));
    regs.rflags = 2;
    regs.rip = vm->boot.entry;
    regs.rsi = vm->boot.zero_page;
    regs.rsp = BOOT_STACK_TOP;
    regs.rbp = BOOT_STACK_TOP;
    if (ioctl(c->fd, KVM_SET_REGS, &regs) < 0)
        return -errno;

    struct kvm_fpu fpu;
    memset(&fpu, 0, sizeof(fpu));
    fpu.fcw = 0x37f;
    fpu.mxcsr = 0x1f80;
    if (ioctl(c->fd, KVM_SET_FPU, &fpu) < 0)
        return -errno;
    return 0;
}

/* LINT0 = ExtINT, LINT1 = NMI, as firmware leaves them. */
static int vcpu_set_lint(struct vcpu *c)
{
    struct kvm_lapic_state l;
    if (ioctl(c->fd, KVM_GET_LAPIC, &l) < 0)
        return -errno;
    uint32_t lvt0, lvt1;
    memcpy(&lvt0, l.regs + 0x350, 4);
    memcpy(&lvt1, l.regs + 0x360, 4);
    lvt0 = (lvt0 & ~0x700u) | (7u << 8);
    lvt1 = (lvt1 & ~0x700u) | (4u << 8);
    memcpy(l.regs + 0x350, &lvt0, 4);
    memcpy(l.regs + 0x360, &lvt1, 4);
    return ioctl(c->fd, KVM_SET_LAPIC, &l) < 0 ? -errno : 0;
}

static int vcpu_create(struct vm *vm, unsigned id, const char **why)
{
    struct vcpu *c = &vm->vcpus[id];
    c->vm = vm;
    c->id = id;
    c->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)id);
    if (c->fd < 0) {
        *why = "KVM_CREATE_VCPU failed";
        return -errno;
    }
    void *run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, 0);
    if (run == MAP_FAILED) {
        *why = "cannot map the vCPU's kvm_run";
        return -errno;
    }
    c->run = run;
    int r = vcpu_set_cpuid(vm, c);
    if (r < 0) {
        *why = "KVM_SET_CPUID2 failed";
        return r;
    }
    r = vcpu_set_lint(c);
    if (r < 0) {
        *why = "cannot set up the local APIC";
        return r;
    }
    if (id == 0) {
        r = vcpu_boot_regs(vm, c);
        if (r < 0) {
            *why = "cannot set the boot CPU's registers";
            return r;
        }
    }
    return 0;
}

/* ---- the VM ---- */

static int set_memory(struct vm *vm, const char **why)
{
    struct kvm_userspace_memory_region low = {
        .slot = 0,
        .guest_phys_addr = 0,
        .memory_size = vm->mem.low_size,
        .userspace_addr = (uintptr_t)vm->mem.host,
    };
    if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &low) < 0) {
        *why = "KVM_SET_USER_MEMORY_REGION failed";
        return -errno;
    }
    if (vm->mem.high_size) {
        struct kvm_userspace_memory_region high = {
            .slot = 1,
            .guest_phys_addr = GM_HIGH_START,
            .memory_size = vm->mem.high_size,
            .userspace_addr = (uintptr_t)(vm->mem.host + vm->mem.low_size),
        };
        if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &high) < 0) {
            *why = "KVM_SET_USER_MEMORY_REGION (above 4 GiB) failed";
            return -errno;
        }
    }
    return 0;
}

static int add_devices(struct vm *vm, const struct vm_params *p, const char **why)
{
    serial_init(&vm->serial, &vm->irq, GSI_COM1, p->console_fd, p->stdout_fd);
    i8042_init(&vm->i8042, &vm->power);
    cmos_init(&vm->cmos);
    vm->acpi_pm.power = &vm->power;
    int r = 0;
    r = r ? r : bus_register(&vm->pio, PIO_COM1, 8, &serial_ops, &vm->serial, "com1");
    r = r ? r : bus_register(&vm->pio, PIO_I8042_DATA, 5, &i8042_ops, &vm->i8042, "i8042");
    r = r ? r : bus_register(&vm->pio, PIO_RTC, 2, &cmos_ops, &vm->cmos, "cmos");
    r = r ? r : bus_register(&vm->pio, PIO_ACPI_SLEEP_CTL, 3, &acpi_pm_ops, &vm->acpi_pm, "acpi");
    r = r ? r
          : bus_register(&vm->pio, PIO_BOOT_TIMER, 1, &boot_timer_ops, &vm->power, "boot-timer");
    r = r ? r : pci_host_init(&vm->pci, &vm->pio, &vm->mmio);
    if (r < 0) {
        *why = "cannot register the devices";
        return r;
    }
    r = virtio_rng_create(&vm->rng, &vm->mem, &vm->irq);
    if (r == 0)
        r = pci_host_add(&vm->pci, &vm->rng->pci);
    if (r < 0) {
        *why = "cannot create virtio-rng";
        return r;
    }
    if (p->ndisks > BLK_MAX_DISKS) {
        *why = "too many disks";
        return -E2BIG;
    }
    for (unsigned i = 0; i < p->ndisks; i++) {
        r = virtio_blk_create(&vm->blk[i], &vm->mem, &vm->irq, &p->disks[i]);
        if (r < 0) {
            *why = "cannot create virtio-blk";
            return r;
        }
        vm->nblk++;
        r = pci_host_add(&vm->pci, &vm->blk[i]->pci);
        if (r < 0) {
            *why = "no free PCI slot for a disk";
            return r;
        }
    }
    return 0;
}

int vm_create(struct vm *vm, const struct vm_params *p, const char **why)
{
    int r;
    memset(vm, 0, sizeof(*vm));
    vm->kvm_fd = vm->vm_fd = vm->done_fd = -1;
    pthread_mutex_init(&vm->lock, NULL);
    pthread_cond_init(&vm->cond, NULL);
    pthread_cond_init(&vm->parked_cond, NULL);
    pthread_mutex_init(&vm->routes_lock, NULL);
    bus_init(&vm->pio, "pio");
    bus_init(&vm->mmio, "mmio");
    vm->ncpus = p->cpus;
    vm->t0_ns = p->t0_ns;
    vm->start_ns = vm_now_ns();
    vm->irq = (struct irq_sink){.opaque = vm, .set_level = kvm_set_level, .msi = kvm_msi};
    vm->power = (struct power_sink){vm, power_event, boot_timer};

    vm->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (vm->done_fd < 0) {
        *why = "eventfd failed";
        return -errno;
    }
    vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (vm->kvm_fd < 0) {
        *why = "cannot open /dev/kvm";
        return -errno;
    }
    if (ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
        *why = "unsupported KVM API version";
        return -ENOTSUP;
    }
    static const int caps[] = {KVM_CAP_IRQCHIP, KVM_CAP_PIT2, KVM_CAP_SIGNAL_MSI,
                               KVM_CAP_IMMEDIATE_EXIT, KVM_CAP_EXT_CPUID};
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
        if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, caps[i]) <= 0) {
            *why = "KVM lacks a needed capability (irqchip, PIT2, MSI, immediate exit, cpuid)";
            return -ENOTSUP;
        }
    }
    int max_vcpus = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
    if (max_vcpus > 0 && p->cpus > (unsigned)max_vcpus) {
        *why = "more vCPUs than KVM supports";
        return -EINVAL;
    }
    int run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (run_size < (int)sizeof(struct kvm_run)) {
        *why = "KVM_GET_VCPU_MMAP_SIZE failed";
        return -EIO;
    }
    vm->run_size = (size_t)run_size;
    for (int nent = 128; nent <= 4096; nent *= 2) {
        free(vm->cpuid);
        vm->cpuid = calloc(1, sizeof(*vm->cpuid) + (size_t)nent * sizeof(vm->cpuid->entries[0]));
        if (!vm->cpuid) {
            *why = "out of memory";
            return -ENOMEM;
        }
        vm->cpuid->nent = (uint32_t)nent;
        if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, vm->cpuid) == 0)
            break;
        if (errno != E2BIG || nent == 4096) {
            *why = "KVM_GET_SUPPORTED_CPUID failed";
            return -errno;
        }
    }

    vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
    if (vm->vm_fd < 0) {
        *why = "KVM_CREATE_VM failed";
        return -errno;
    }
    if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)KVM_TSS_ADDR) < 0) {
        *why = "KVM_SET_TSS_ADDR failed";
        return -errno;
    }
    uint64_t idmap = KVM_IDMAP_ADDR;
    if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0) {
        *why = "KVM_SET_IDENTITY_MAP_ADDR failed";
        return -errno;
    }
    if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
        *why = "KVM_CREATE_IRQCHIP failed";
        return -errno;
    }
    struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
    if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
        *why = "KVM_CREATE_PIT2 failed";
        return -errno;
    }
    setup_eventfd_hooks(vm);

    r = gm_alloc(&vm->mem, p->mem_bytes);
    if (r < 0) {
        *why = "cannot allocate guest memory";
        return r;
    }
    r = set_memory(vm, why);
    if (r < 0)
        return r;

    /* ACPI tables, then kernel, initrd, command line, zero page. */
    uint8_t *acpi = gm_ptr(&vm->mem, ACPI_TABLES, ACPI_TABLES_MAX);
    struct acpi_tables tables;
    if (!acpi || (r = acpi_build(acpi, ACPI_TABLES_MAX, ACPI_TABLES, p->cpus, &tables)) < 0) {
        *why = "cannot build the ACPI tables";
        return r < 0 ? r : -ENOMEM;
    }
    struct bzimage k;
    r = bzimage_parse(p->kernel, p->kernel_size, &k, why);
    if (r < 0)
        return r;
    r = boot_load(&vm->mem, &k, p->initrd, p->initrd_size, p->cmdline,
                  ACPI_TABLES + tables.rsdp_off, &vm->boot, why);
    if (r < 0)
        return r;
    r = add_devices(vm, p, why);
    if (r < 0)
        return r;

    vm->vcpus = calloc(p->cpus, sizeof(*vm->vcpus));
    if (!vm->vcpus) {
        *why = "out of memory";
        return -ENOMEM;
    }
    for (unsigned i = 0; i < p->cpus; i++)
        vm->vcpus[i].fd = -1;
    for (unsigned i = 0; i < p->cpus; i++) {
        r = vcpu_create(vm, i, why);
        if (r < 0)
            return r;
    }
    log_debug("kernel at 0x%llx..0x%llx, initrd at 0x%llx (%llu bytes), %u vCPUs, %llu MiB",
              (unsigned long long)vm->boot.kernel_addr, (unsigned long long)vm->boot.kernel_end,
              (unsigned long long)vm->boot.initrd_addr, (unsigned long long)vm->boot.initrd_size,
              p->cpus, (unsigned long long)(p->mem_bytes >> 20));
    return 0;
}

int vm_start(struct vm *vm)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    int r = 0;
    pthread_mutex_lock(&vm->lock);
    for (unsigned i = 0; i < vm->ncpus; i++) {
        struct vcpu *c = &vm->vcpus[i];
        r = -pthread_create(&c->thread, &attr, vcpu_thread, c);
        if (r < 0)
            break;
        c->thread_started = true;
        vm->running++;
    }
    pthread_mutex_unlock(&vm->lock);
    pthread_attr_destroy(&attr);
    if (r < 0)
        vm_stop(vm, VM_ERROR, "cannot start a vCPU thread");
    return r;
}

void vm_destroy(struct vm *vm)
{
    if (vm->vcpus) {
        vm_stop(vm, vm->state == VM_RUNNING ? VM_QUIT : vm->state, NULL);
        for (unsigned i = 0; i < vm->ncpus; i++) {
            struct vcpu *c = &vm->vcpus[i];
            if (c->thread_started)
                pthread_join(c->thread, NULL);
            if (c->run)
                munmap(c->run, vm->run_size);
            if (c->fd >= 0)
                close(c->fd);
        }
        free(vm->vcpus);
        vm->vcpus = NULL;
    }
    serial_destroy(&vm->serial);
    virtio_rng_free(vm->rng);
    vm->rng = NULL;
    for (unsigned i = 0; i < vm->nblk; i++) {
        virtio_blk_free(vm->blk[i]); /* its workers finish the requests in flight first */
        vm->blk[i] = NULL;
    }
    vm->nblk = 0;
    bus_destroy(&vm->pio);
    bus_destroy(&vm->mmio);
    free(vm->cpuid);
    vm->cpuid = NULL;
    if (vm->vm_fd >= 0)
        close(vm->vm_fd);
    if (vm->kvm_fd >= 0)
        close(vm->kvm_fd);
    if (vm->done_fd >= 0)
        close(vm->done_fd);
    vm->vm_fd = vm->kvm_fd = vm->done_fd = -1;
    /* Guest memory last: after the devices (which may still complete requests into it) and
     * after the VM's fds are closed, so that the old VM's memory slots never cover a mapping
     * that a rebooted guest's new memory may reuse at the same host address. */
    gm_free(&vm->mem);
    pci_host_destroy(&vm->pci);
    pthread_cond_destroy(&vm->cond);
    pthread_cond_destroy(&vm->parked_cond);
    pthread_mutex_destroy(&vm->routes_lock);
    pthread_mutex_destroy(&vm->lock);
}
