/* SPDX-License-Identifier: Apache-2.0 */
#include "vm.h"
#include "sandbox.h"
#include "firmware.h"
#include "acpi.h"
#include "kvm.h"
#include "log.h"
#include "platform.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

uint64_t vm_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* ---- power events from devices ---- */

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
    int r = irqchip_set_level(&vm->irqchip, GSI_GED, 1);
    if (r == 0)
        r = irqchip_set_level(&vm->irqchip, GSI_GED, 0);
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

static void *vcpu_thread(void *arg)
{
    struct vcpu *c = arg;
    struct vm *vm = c->vm;
    struct kvm_run *run = c->run;
    sigset_t set;
    const char *why = NULL;
    if (sandbox_thread(SANDBOX_VCPU, &why) < 0) {
        log_err("vcpu %u: %s", c->id, why);
        vm_stop(vm, VM_ERROR, why); /* never runs the guest unsandboxed */
        return NULL;
    }
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
            cpu_dump(c->fd, c->id, &vm->mem);
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
    int r = cpu_set_cpuid(c->fd, &vm->cpu, id);
    if (r < 0) {
        *why = "KVM_SET_CPUID2 failed";
        return r;
    }
    r = cpu_set_lint(c->fd);
    if (r < 0) {
        *why = "cannot set up the local APIC";
        return r;
    }
    if (id == 0 && !vm->rom) { /* firmware boot: KVM's reset state is the firmware's */
        r = cpu_set_boot_regs(c->fd, vm->boot.entry, vm->boot.zero_page);
        if (r < 0) {
            *why = "cannot set the boot CPU's registers";
            return r;
        }
    }
    return 0;
}

/* ---- the VM ---- */

static void pci_reset(void *opaque)
{
    vm_stop(opaque, VM_RESET, NULL);
}

/* Walks the device table: every kind's instances for this configuration, in order. */
static int add_devices(struct vm *vm, const struct dev_config *cfg, const char **why)
{
    const struct dev_env env = {
        .mem = &vm->mem,
        .irq = &vm->irq,
        .power = &vm->power,
        .pio = &vm->pio,
        .mmio = &vm->mmio,
        .pci = &vm->pci,
    };
    int r = pci_host_init(&vm->pci, &vm->pio, &vm->mmio, pci_reset, vm);
    if (r < 0) {
        *why = "cannot register the devices";
        return r;
    }
    for (const struct device_kind *const *k = vm_device_kinds; *k; k++) {
        unsigned n = (*k)->count ? (*k)->count(*k, cfg) : 1;
        for (unsigned i = 0; i < n; i++) {
            if (vm->ndevices == VM_MAX_DEVICES) {
                *why = "too many devices";
                return -E2BIG;
            }
            struct vm_device *d = &vm->devices[vm->ndevices];
            *why = (*k)->why;
            r = (*k)->create(*k, &env, cfg, i, &d->dev, why);
            if (r < 0)
                return r;
            d->kind = *k;
            vm->ndevices++;
        }
    }
    return 0;
}

/* Direct boot: ACPI tables, then kernel, initrd, command line, zero page. */
static int load_kernel(struct vm *vm, const struct vm_params *p, const char **why)
{
    uint8_t *acpi = gm_ptr(&vm->mem, ACPI_TABLES, ACPI_TABLES_MAX);
    struct acpi_tables tables;
    int r = -ENOMEM;
    if (!acpi || (r = acpi_build(acpi, ACPI_TABLES_MAX, ACPI_TABLES, p->cpus, &tables)) < 0) {
        *why = "cannot build the ACPI tables";
        return r;
    }
    struct bzimage k;
    r = bzimage_parse(p->kernel, p->kernel_size, &k, why);
    if (r < 0)
        return r;
    return boot_load(&vm->mem, &k, p->initrd, p->initrd_size, p->cmdline,
                     ACPI_TABLES + tables.rsdp_off, &vm->boot, why);
}

/* One etc/e820 record: {le64 address, le64 length, le32 type}. */
static void e820_put(uint8_t *rec, uint64_t addr, uint64_t len, uint32_t type)
{
    kova_le_put(rec, 8, addr);
    kova_le_put(rec + 8, 8, len);
    kova_le_put(rec + 16, 4, type);
}

/*
 * Firmware boot: the BIOS image read-only just below 4 GiB (where the reset vector finds it),
 * its last 128 KiB copied into RAM at 0xE0000 (the legacy BIOS area that SeaBIOS shadows; a
 * reset rebuilds the VM, so the copy is fresh on every boot), and what SeaBIOS reads through
 * fw_cfg: the RAM map (etc/e820; SeaBIOS adds its own reservations), COM1 as its console
 * (etc/sercon-port: there is no VGA, so its messages and the boot menu go to console.log) and
 * the SMBIOS tables (smbios.h: "OpenStack Nova", the instance's UUID), and the same ACPI tables
 * as a direct boot through SeaBIOS's loader (acpi_build_fw). The
 * vCPUs stay in KVM's reset state: CS:IP F000:FFF0 at the top of the ROM.
 */
static int load_firmware(struct vm *vm, const struct vm_params *p, struct dev_config *devices,
                         const char **why)
{
    size_t n = p->firmware_size;
    struct firmware_layout fl;
    if (firmware_layout(n, &fl) < 0) {
        *why = "the firmware image has an unusable size";
        return -EINVAL;
    }
    void *rom = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (rom == MAP_FAILED) {
        *why = "cannot allocate the firmware ROM";
        return -errno;
    }
    memcpy(rom, p->firmware, n);
    vm->rom = rom;
    vm->rom_size = n;
    int r = kvm_map_rom(vm->kvm_fd, vm->vm_fd, fl.rom_gpa, rom, n, why);
    if (r < 0)
        return r;
    if (gm_write(&vm->mem, fl.shadow_gpa, p->firmware + fl.shadow_offset, fl.shadow_len) < 0) {
        *why = "guest memory too small for the firmware";
        return -EINVAL;
    }
    unsigned ne = 0;
    e820_put(vm->fw_e820, 0, vm->mem.low_size, 1);
    ne++;
    if (vm->mem.high_size)
        e820_put(vm->fw_e820 + 20 * ne++, GM_HIGH_START, vm->mem.high_size, 1);
    kova_le_put(vm->fw_sercon, 2, PIO_COM1);
    const struct smbios_params sp = {.uuid = p->uuid, .ncpus = p->cpus, .mem_bytes = p->mem_bytes};
    r = smbios_build(&sp, vm->fw_smbios_anchor, &vm->fw_smbios_tables, &vm->fw_smbios_len);
    if (r < 0) {
        *why = "cannot build the SMBIOS tables";
        return r;
    }
    vm->fw_files[0] = (struct fw_file){"etc/e820", vm->fw_e820, 20 * (size_t)ne};
    vm->fw_files[1] = (struct fw_file){"etc/sercon-port", vm->fw_sercon, sizeof(vm->fw_sercon)};
    vm->fw_files[2] = (struct fw_file){"etc/smbios/smbios-anchor", vm->fw_smbios_anchor,
                                       sizeof(vm->fw_smbios_anchor)};
    vm->fw_files[3] =
        (struct fw_file){"etc/smbios/smbios-tables", vm->fw_smbios_tables, vm->fw_smbios_len};
    r = acpi_build_fw(p->cpus, &vm->fw_acpi);
    if (r < 0) {
        *why = "cannot build the ACPI tables";
        return r;
    }
    vm->fw_files[4] =
        (struct fw_file){"etc/table-loader", vm->fw_acpi.loader, vm->fw_acpi.loader_len};
    vm->fw_files[5] = (struct fw_file){"etc/acpi/rsdp", vm->fw_acpi.rsdp, sizeof(vm->fw_acpi.rsdp)};
    vm->fw_files[6] =
        (struct fw_file){"etc/acpi/tables", vm->fw_acpi.tables, vm->fw_acpi.tables_len};
    vm->nfw_files = 7;
    devices->firmware = true;
    devices->ncpus = p->cpus;
    devices->fw_files = vm->fw_files;
    devices->nfw_files = vm->nfw_files;
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
    irqchip_init(&vm->irqchip);
    bus_init(&vm->pio, "pio");
    bus_init(&vm->mmio, "mmio");
    vm->ncpus = p->cpus;
    vm->t0_ns = p->t0_ns;
    vm->start_ns = vm_now_ns();
    vm->power = (struct power_sink){vm, power_event, boot_timer};

    vm->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (vm->done_fd < 0) {
        *why = "eventfd failed";
        return -errno;
    }
    vm->kvm_fd = p->kvm_fd; /* not owned */
    vm->run_size = p->run_size;
    r = cpu_model_init(&vm->cpu, vm->kvm_fd, p->cpus, why);
    if (r < 0)
        return r;
    r = kvm_create_vm(vm->kvm_fd, &vm->vm_fd, why);
    if (r < 0)
        return r;
    r = irqchip_create(&vm->irqchip, vm->kvm_fd, vm->vm_fd, &vm->irq, why);
    if (r < 0)
        return r;

    r = gm_alloc(&vm->mem, p->mem_bytes);
    if (r < 0) {
        *why = "cannot allocate guest memory";
        return r;
    }
    r = kvm_set_memory(vm->vm_fd, &vm->mem, why);
    if (r < 0)
        return r;

    struct dev_config devices = p->devices;
    r = p->kernel ? load_kernel(vm, p, why) : load_firmware(vm, p, &devices, why);
    if (r < 0)
        return r;
    r = add_devices(vm, &devices, why);
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
    if (vm->rom)
        log_debug("firmware: %zu KiB below 4 GiB, %u vCPUs, %llu MiB", vm->rom_size >> 10, p->cpus,
                  (unsigned long long)(p->mem_bytes >> 20));
    else
        log_debug("kernel at 0x%llx..0x%llx, initrd at 0x%llx (%llu bytes), %u vCPUs, %llu MiB",
                  (unsigned long long)vm->boot.kernel_addr, (unsigned long long)vm->boot.kernel_end,
                  (unsigned long long)vm->boot.initrd_addr,
                  (unsigned long long)vm->boot.initrd_size, p->cpus,
                  (unsigned long long)(p->mem_bytes >> 20));
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
    /* Devices in the reverse order of their creation; virtio-blk's workers finish the requests
     * in flight first. */
    while (vm->ndevices) {
        struct vm_device *d = &vm->devices[--vm->ndevices];
        d->kind->destroy(d->kind, d->dev);
        *d = (struct vm_device){0};
    }
    bus_destroy(&vm->pio);
    bus_destroy(&vm->mmio);
    cpu_model_free(&vm->cpu);
    if (vm->vm_fd >= 0)
        close(vm->vm_fd);
    if (vm->done_fd >= 0)
        close(vm->done_fd);
    vm->vm_fd = vm->kvm_fd = vm->done_fd = -1;
    /* Guest memory last: after the devices (which may still complete requests into it) and
     * after the VM's fds are closed, so that the old VM's memory slots never cover a mapping
     * that a rebooted guest's new memory may reuse at the same host address. */
    gm_free(&vm->mem);
    if (vm->rom)
        munmap(vm->rom, vm->rom_size);
    vm->rom = NULL;
    free(vm->fw_smbios_tables);
    vm->fw_smbios_tables = NULL;
    acpi_fw_free(&vm->fw_acpi);
    pci_host_destroy(&vm->pci);
    pthread_cond_destroy(&vm->cond);
    pthread_cond_destroy(&vm->parked_cond);
    irqchip_destroy(&vm->irqchip);
    pthread_mutex_destroy(&vm->lock);
}
