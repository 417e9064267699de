/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The KVM system and one x86 VM's fds: /dev/kvm with the API version and the capabilities
 * kova-vmm cannot run without, a new VM with its TSS and identity-map pages placed, and the
 * guest's RAM as KVM memory slots. No vCPUs (cpu.h) and no interrupt controller (irqchip.h).
 *
 * Errors: 0 or -errno with *why set to a static message naming the step that failed. The fds
 * belong to the caller, who closes them (also after a failure: an fd already opened is in
 * *kvm_fd / *vm_fd, -1 otherwise).
 */
#ifndef KOVA_VMM_KVM_H
#define KOVA_VMM_KVM_H

#include <stddef.h>

#include "mem.h"

/* Opens /dev/kvm and checks it: API version, irqchip, PIT2, MSI, immediate exit and extended
 * CPUID; at least cpus vCPUs (when KVM says how many it allows); the vCPUs' kvm_run size goes to
 * *run_size. -ENOTSUP for a KVM that lacks something, -EINVAL for too many vCPUs. */
int kvm_open(int *kvm_fd, unsigned cpus, size_t *run_size, const char **why);
/* Creates a VM with the TSS and identity map below 4 GiB (in the MMIO gap, out of RAM). */
int kvm_create_vm(int kvm_fd, int *vm_fd, const char **why);
/* Hands mem to KVM: slot 0 the RAM below the gap, slot 1 the RAM above 4 GiB (if any). */
int kvm_set_memory(int vm_fd, const struct guest_mem *mem, const char **why);
/* Maps size bytes at host (page-aligned, size a multiple of 4 KiB) read-only at guest address
 * gpa as slot 2: guest reads see the bytes, guest writes exit as MMIO (and reach nothing). Needs
 * KVM_CAP_READONLY_MEM (-ENOTSUP without). */
int kvm_map_rom(int kvm_fd, int vm_fd, uint64_t gpa, void *host, size_t size, const char **why);

#endif
