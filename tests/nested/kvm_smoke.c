/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kvm_smoke: proves the chain CI → (nested VM) → /dev/kvm before the VMM exists. Creates a VM
 * with one vCPU in real mode, runs a few instructions that compute a value and write bytes to an
 * I/O port, then halt, and checks every exit. Exit status 0 on success, 1 with a message on any
 * mismatch, 77 when /dev/kvm cannot be opened.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define GUEST_MEM 0x10000
#define CODE_ADDR 0x1000
#define TEST_PORT 0x0500

/* Real-mode code: out "KVM", then 2 + 3 + '0' ('5'), then hlt. */
static const uint8_t guest_code[] = {
    0xba,           TEST_PORT & 0xff,
    TEST_PORT >> 8,      /* mov dx, TEST_PORT */
    0xb0,           'K', /* mov al, 'K' */
    0xee,                /* out dx, al */
    0xb0,           'V',
    0xee, /* mov al, 'V'; out dx, al */
    0xb0,           'M',
    0xee,                /* mov al, 'M'; out dx, al */
    0xb0,           2,   /* mov al, 2 */
    0x04,           3,   /* add al, 3 */
    0x04,           '0', /* add al, '0' */
    0xee,                /* out dx, al */
    0xf4,                /* hlt */
};

static int fail(const char *what)
{
    fprintf(stderr, "kvm_smoke: %s: %s\n", what, errno ? strerror(errno) : "unexpected");
    return 1;
}

int main(void)
{
    int ret = 1;
    int kvm = -1, vm = -1, vcpu = -1;
    void *mem = MAP_FAILED;
    struct kvm_run *run = MAP_FAILED;
    int run_size = 0;
    char out[16];
    size_t nout = 0;

    kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) {
        fprintf(stderr, "kvm_smoke: open /dev/kvm: %s\n", strerror(errno));
        return 77;
    }
    errno = 0;
    if (ioctl(kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
        ret = fail("KVM_GET_API_VERSION");
        goto out;
    }
    vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0) {
        ret = fail("KVM_CREATE_VM");
        goto out;
    }
    mem = mmap(NULL, GUEST_MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        ret = fail("mmap guest memory");
        goto out;
    }
    memcpy((uint8_t *)mem + CODE_ADDR, guest_code, sizeof(guest_code));
    struct kvm_userspace_memory_region region = {
        .slot = 0,
        .guest_phys_addr = 0,
        .memory_size = GUEST_MEM,
        .userspace_addr = (uintptr_t)mem,
    };
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
        ret = fail("KVM_SET_USER_MEMORY_REGION");
        goto out;
    }
    vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    if (vcpu < 0) {
        ret = fail("KVM_CREATE_VCPU");
        goto out;
    }
    run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (run_size < (int)sizeof(*run)) {
        ret = fail("KVM_GET_VCPU_MMAP_SIZE");
        goto out;
    }
    run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    if (run == MAP_FAILED) {
        ret = fail("mmap kvm_run");
        goto out;
    }

    struct kvm_sregs sregs;
    if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0) {
        ret = fail("KVM_GET_SREGS");
        goto out;
    }
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0) {
        ret = fail("KVM_SET_SREGS");
        goto out;
    }
    struct kvm_regs regs = {.rip = CODE_ADDR, .rflags = 0x2};
    if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0) {
        ret = fail("KVM_SET_REGS");
        goto out;
    }

    for (int exits = 0; exits < 64; exits++) {
        if (ioctl(vcpu, KVM_RUN, 0) < 0) {
            if (errno == EINTR)
                continue;
            ret = fail("KVM_RUN");
            goto out;
        }
        switch (run->exit_reason) {
        case KVM_EXIT_IO:
            if (run->io.direction != KVM_EXIT_IO_OUT || run->io.port != TEST_PORT ||
                run->io.size != 1 || run->io.count != 1 || nout >= sizeof(out)) {
                fprintf(stderr, "kvm_smoke: unexpected I/O exit: dir %u port 0x%x size %u\n",
                        run->io.direction, run->io.port, run->io.size);
                goto out;
            }
            out[nout++] = *((char *)run + run->io.data_offset);
            break;
        case KVM_EXIT_HLT:
            if (nout != 4 || memcmp(out, "KVM5", 4) != 0) {
                fprintf(stderr, "kvm_smoke: guest wrote %zu bytes '%.*s', want 'KVM5'\n", nout,
                        (int)nout, out);
                goto out;
            }
            printf("kvm_smoke: guest wrote '%.*s' to port 0x%x and halted: KVM works\n", (int)nout,
                   out, TEST_PORT);
            ret = 0;
            goto out;
        default:
            fprintf(stderr, "kvm_smoke: unexpected exit reason %u\n", run->exit_reason);
            goto out;
        }
    }
    fprintf(stderr, "kvm_smoke: guest did not halt\n");
out:
    if (run != MAP_FAILED)
        munmap(run, (size_t)run_size);
    if (vcpu >= 0)
        close(vcpu);
    if (mem != MAP_FAILED)
        munmap(mem, GUEST_MEM);
    if (vm >= 0)
        close(vm);
    close(kvm);
    return ret;
}
