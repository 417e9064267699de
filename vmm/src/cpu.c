/* SPDX-License-Identifier: Apache-2.0 */
#include "cpu.h"
#include "boot.h"
#include "log.h"
#include "platform.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

/* ---- CPUID ---- */

int cpu_model_init(struct cpu_model *m, int kvm_fd, unsigned ncpus, const char **why)
{
    memset(m, 0, sizeof(*m));
    m->ncpus = ncpus;
    for (int nent = 128; nent <= 4096; nent *= 2) {
        free(m->cpuid);
        m->cpuid = calloc(1, sizeof(*m->cpuid) + (size_t)nent * sizeof(m->cpuid->entries[0]));
        if (!m->cpuid) {
            *why = "out of memory";
            return -ENOMEM;
        }
        m->cpuid->nent = (uint32_t)nent;
        if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, m->cpuid) == 0)
            break;
        if (errno != E2BIG || nent == 4096) {
            *why = "KVM_GET_SUPPORTED_CPUID failed";
            return -errno;
        }
    }
    m->tsc_deadline = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0;
    return 0;
}

void cpu_model_free(struct cpu_model *m)
{
    free(m->cpuid);
    m->cpuid = NULL;
}

static unsigned order_of(unsigned n)
{
    unsigned s = 0;
    while ((1u << s) < n)
        s++;
    return s;
}

void cpu_cpuid_patch(struct kvm_cpuid2 *cp, unsigned id, unsigned n, bool tsc_deadline)
{
    unsigned shift = order_of(n);
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
}

int cpu_set_cpuid(int vcpu_fd, const struct cpu_model *m, unsigned id)
{
    const struct kvm_cpuid2 *src = m->cpuid;
    size_t sz = sizeof(*src) + src->nent * sizeof(src->entries[0]);
    struct kvm_cpuid2 *cp = malloc(sz);
    if (!cp)
        return -ENOMEM;
    memcpy(cp, src, sz);
    cpu_cpuid_patch(cp, id, m->ncpus, m->tsc_deadline);
    int r = ioctl(vcpu_fd, KVM_SET_CPUID2, cp) < 0 ? -errno : 0;
    free(cp);
    return r;
}

/* ---- registers ---- */

int cpu_set_lint(int vcpu_fd)
{
    struct kvm_lapic_state l;
    if (ioctl(vcpu_fd, KVM_GET_LAPIC, &l) < 0)
        return -errno;
    uint32_t lvt0, lvt1;
    memcpy(&lvt0, l.regs + 0x350, 4);
    memcpy(&lvt1, l.regs + 0x360, 4);
    lvt0 = (lvt0 & ~0x700u) | (7u << 8);
    lvt1 = (lvt1 & ~0x700u) | (4u << 8);
    memcpy(l.regs + 0x350, &lvt0, 4);
    memcpy(l.regs + 0x360, &lvt1, 4);
    return ioctl(vcpu_fd, KVM_SET_LAPIC, &l) < 0 ? -errno : 0;
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

int cpu_set_boot_regs(int vcpu_fd, uint64_t entry, uint64_t zero_page)
{
    struct kvm_sregs sregs;
    if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
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
    if (ioctl(vcpu_fd, KVM_SET_SREGS, &sregs) < 0)
        return -errno;

    struct kvm_regs regs;
    memset(&regs, 0, sizeof(regs));
    regs.rflags = 2;
    regs.rip = entry;
    regs.rsi = zero_page;
    regs.rsp = BOOT_STACK_TOP;
    regs.rbp = BOOT_STACK_TOP;
    if (ioctl(vcpu_fd, KVM_SET_REGS, &regs) < 0)
        return -errno;

    struct kvm_fpu fpu;
    memset(&fpu, 0, sizeof(fpu));
    fpu.fcw = 0x37f;
    fpu.mxcsr = 0x1f80;
    if (ioctl(vcpu_fd, KVM_SET_FPU, &fpu) < 0)
        return -errno;
    return 0;
}

/* ---- diagnosis ---- */

static void dump_seg(unsigned id, const char *name, const struct kvm_segment *s)
{
    log_err("vcpu %u: %-3s sel %04x base %016llx limit %08x type %x p%u dpl%u db%u s%u l%u g%u", id,
            name, s->selector, (unsigned long long)s->base, s->limit, s->type, s->present, s->dpl,
            s->db, s->s, s->l, s->g);
}

void cpu_dump(int fd, unsigned id, const struct guest_mem *mem)
{
    struct kvm_regs r;
    struct kvm_sregs s;
    struct kvm_mp_state mp = {0};
    struct kvm_vcpu_events ev;
    if (ioctl(fd, KVM_GET_REGS, &r) < 0 || ioctl(fd, KVM_GET_SREGS, &s) < 0) {
        log_err("vcpu %u: cannot read the registers: errno %d", id, errno);
        return;
    }
    ioctl(fd, KVM_GET_MP_STATE, &mp);
    if (s.cs.selector == 0xf000 && r.rip == 0xfff0)
        log_err("vcpu %u: registers already reset: KVM on AMD (SVM) INITs a vCPU at a shutdown, "
                "so what it executed is lost (KVM's kvm_exit trace events still show it)",
                id);
    log_err("vcpu %u: rip %016llx rsp %016llx rflags %08llx mp_state %u", id,
            (unsigned long long)r.rip, (unsigned long long)r.rsp, (unsigned long long)r.rflags,
            mp.mp_state);
    log_err("vcpu %u: rax %016llx rbx %016llx rcx %016llx rdx %016llx", id,
            (unsigned long long)r.rax, (unsigned long long)r.rbx, (unsigned long long)r.rcx,
            (unsigned long long)r.rdx);
    log_err("vcpu %u: rsi %016llx rdi %016llx rbp %016llx r8  %016llx", id,
            (unsigned long long)r.rsi, (unsigned long long)r.rdi, (unsigned long long)r.rbp,
            (unsigned long long)r.r8);
    log_err("vcpu %u: cr0 %016llx cr2 %016llx cr3 %016llx cr4 %016llx efer %llx apic_base %llx", id,
            (unsigned long long)s.cr0, (unsigned long long)s.cr2, (unsigned long long)s.cr3,
            (unsigned long long)s.cr4, (unsigned long long)s.efer, (unsigned long long)s.apic_base);
    log_err("vcpu %u: gdt %016llx/%x idt %016llx/%x", id, (unsigned long long)s.gdt.base,
            s.gdt.limit, (unsigned long long)s.idt.base, s.idt.limit);
    dump_seg(id, "cs", &s.cs);
    dump_seg(id, "ss", &s.ss);
    dump_seg(id, "ds", &s.ds);
    dump_seg(id, "tr", &s.tr);
    if (ioctl(fd, KVM_GET_VCPU_EVENTS, &ev) == 0)
        log_err("vcpu %u: exception injected %u nr %u has_error %u error %x; nmi pending %u "
                "masked %u; sipi_vector %x",
                id, ev.exception.injected, ev.exception.nr, ev.exception.has_error_code,
                ev.exception.error_code, ev.nmi.pending, ev.nmi.masked, ev.sipi_vector);
    /* Code bytes at CS:RIP when paging is off (real mode, the AP trampoline) or the address is
     * identity mapped low memory; otherwise the linear address is not a guest-physical one. */
    uint64_t lin = s.cs.base + r.rip;
    if (!(s.cr0 & 0x80000000u) || lin < (UINT64_C(1) << 30)) {
        const uint8_t *b = gm_ptr(mem, lin, 16);
        if (b) {
            char hex[16 * 3 + 1];
            for (int i = 0; i < 16; i++)
                snprintf(hex + i * 3, 4, " %02x", b[i]);
            log_err("vcpu %u: bytes at %s %llx:%s", id,
                    (s.cr0 & 0x80000000u) ? "linear (if identity mapped)" : "physical",
                    (unsigned long long)lin, hex);
        }
    }
}
