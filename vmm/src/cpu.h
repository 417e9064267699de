/* SPDX-License-Identifier: Apache-2.0 */
/*
 * x86 vCPU set-up: the CPUID each vCPU sees (KVM's supported CPUID with its APIC ID and an
 * n-core package of one thread per core), the LAPIC's LINT pins as firmware leaves them, the
 * registers of the 64-bit boot entry, and a register dump for diagnosing a guest fault.
 * Everything here works on one vCPU fd; no threads, no VM state (vm.c creates the vCPUs and
 * runs them).
 *
 * Errors: 0 or -errno (a failed KVM ioctl's errno). The cpu_model owns its CPUID table;
 * cpu_model_free releases it (also after a failed cpu_model_init, and twice).
 */
#ifndef KOVA_VMM_CPU_H
#define KOVA_VMM_CPU_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>

#include "mem.h"

/* What every vCPU of one VM starts from. */
struct cpu_model {
    struct kvm_cpuid2 *cpuid; /* KVM_GET_SUPPORTED_CPUID */
    unsigned ncpus;
    bool tsc_deadline; /* KVM emulates the LAPIC TSC-deadline timer */
};

/* Reads KVM's supported CPUID (growing the table as KVM asks). 0 or -errno with *why set. */
int cpu_model_init(struct cpu_model *m, int kvm_fd, unsigned ncpus, const char **why);
void cpu_model_free(struct cpu_model *m);

/* Patches a copy of the supported CPUID for vCPU id of ncpus: APIC ID, topology leaves (1, 4,
 * 0xb, 0x1f, 0x80000008, 0x8000001e), the hypervisor bit and TSC-deadline. */
void cpu_cpuid_patch(struct kvm_cpuid2 *cp, unsigned id, unsigned ncpus, bool tsc_deadline);
/* KVM_SET_CPUID2 of the model's CPUID patched for vCPU id. */
int cpu_set_cpuid(int vcpu_fd, const struct cpu_model *m, unsigned id);
/* LINT0 = ExtINT, LINT1 = NMI. */
int cpu_set_lint(int vcpu_fd);
/* The boot CPU's state at the 64-bit entry (boot.h): long mode with the boot GDT and page
 * tables, rip = entry, rsi = zero page, the boot stack, a clean FPU. */
int cpu_set_boot_regs(int vcpu_fd, uint64_t entry, uint64_t zero_page);
/* Logs (at error level) what vCPU id was executing: registers, control registers, segments,
 * pending events and the code bytes at CS:RIP (read from mem through gm_ptr), so that a guest
 * triple fault can be diagnosed from the log alone. */
void cpu_dump(int vcpu_fd, unsigned id, const struct guest_mem *mem);

#endif
