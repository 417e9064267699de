/* SPDX-License-Identifier: Apache-2.0 */
#include "kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define KVM_TSS_ADDR   0xfffbd000ULL
#define KVM_IDMAP_ADDR 0xfffbc000ULL

int kvm_open(int *kvm_fd, unsigned cpus, size_t *run_size, const char **why)
{
    *kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (*kvm_fd < 0) {
        *why = "cannot open /dev/kvm";
        return -errno;
    }
    int fd = *kvm_fd;
    if (ioctl(fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
        *why = "unsupported KVM API version";
        return -ENOTSUP;
    }
    static const int caps[] = {KVM_CAP_IRQCHIP, KVM_CAP_PIT2, KVM_CAP_SIGNAL_MSI,
                               KVM_CAP_IMMEDIATE_EXIT, KVM_CAP_EXT_CPUID};
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
        if (ioctl(fd, KVM_CHECK_EXTENSION, caps[i]) <= 0) {
            *why = "KVM lacks a needed capability (irqchip, PIT2, MSI, immediate exit, cpuid)";
            return -ENOTSUP;
        }
    }
    int max_vcpus = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
    if (max_vcpus > 0 && cpus > (unsigned)max_vcpus) {
        *why = "more vCPUs than KVM supports";
        return -EINVAL;
    }
    int size = ioctl(fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (size < (int)sizeof(struct kvm_run)) {
        *why = "KVM_GET_VCPU_MMAP_SIZE failed";
        return -EIO;
    }
    *run_size = (size_t)size;
    return 0;
}

int kvm_create_vm(int kvm_fd, int *vm_fd, const char **why)
{
    *vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
    if (*vm_fd < 0) {
        *why = "KVM_CREATE_VM failed";
        return -errno;
    }
    if (ioctl(*vm_fd, KVM_SET_TSS_ADDR, (unsigned long)KVM_TSS_ADDR) < 0) {
        *why = "KVM_SET_TSS_ADDR failed";
        return -errno;
    }
    uint64_t idmap = KVM_IDMAP_ADDR;
    if (ioctl(*vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0) {
        *why = "KVM_SET_IDENTITY_MAP_ADDR failed";
        return -errno;
    }
    return 0;
}

int kvm_set_memory(int vm_fd, const struct guest_mem *mem, const char **why)
{
    struct kvm_userspace_memory_region low = {
        .slot = 0,
        .guest_phys_addr = 0,
        .memory_size = mem->low_size,
        .userspace_addr = (uintptr_t)mem->host,
    };
    if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &low) < 0) {
        *why = "KVM_SET_USER_MEMORY_REGION failed";
        return -errno;
    }
    if (mem->high_size) {
        struct kvm_userspace_memory_region high = {
            .slot = 1,
            .guest_phys_addr = GM_HIGH_START,
            .memory_size = mem->high_size,
            .userspace_addr = (uintptr_t)(mem->host + mem->low_size),
        };
        if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &high) < 0) {
            *why = "KVM_SET_USER_MEMORY_REGION (above 4 GiB) failed";
            return -errno;
        }
    }
    return 0;
}

int kvm_map_rom(int kvm_fd, int vm_fd, uint64_t gpa, void *host, size_t size, const char **why)
{
    if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_READONLY_MEM) <= 0) {
        *why = "KVM cannot map read-only memory (KVM_CAP_READONLY_MEM) for the firmware";
        return -ENOTSUP;
    }
    struct kvm_userspace_memory_region rom = {
        .slot = 2,
        .flags = KVM_MEM_READONLY,
        .guest_phys_addr = gpa,
        .memory_size = size,
        .userspace_addr = (uintptr_t)host,
    };
    if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &rom) < 0) {
        *why = "KVM_SET_USER_MEMORY_REGION (firmware) failed";
        return -errno;
    }
    return 0;
}
