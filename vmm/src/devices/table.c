/* SPDX-License-Identifier: Apache-2.0 */
/* The device table: the devices of every VM, in the order vm.c creates them (PCI slots follow
 * it: virtio-rng in slot 1, then the disks, then the NICs). */
#include "device.h"
#include "fw_cfg.h"
#include "legacy.h"
#include "serial.h"
#include "virtio.h"
#include "virtio_blk.h"
#include "virtio_net.h"
#include "virtio_pci.h"

static const struct device_kind virtio_rng_pci = VIRTIO_PCI_KIND("virtio-rng", &virtio_rng_type);
static const struct device_kind virtio_blk_pci = VIRTIO_PCI_KIND("virtio-blk", &virtio_blk_type);
static const struct device_kind virtio_net_pci = VIRTIO_PCI_KIND("virtio-net", &virtio_net_type);

const struct device_kind *const vm_device_kinds[] = {
    &serial_kind,     /* COM1 */
    &i8042_kind,      /* keyboard controller: reset */
    &cmos_kind,       /* RTC */
    &acpi_pm_kind,    /* ACPI sleep and reset registers */
    &boot_timer_kind, /* the guest's "init started" port */
    &fw_cfg_kind,     /* firmware boot only */
    &virtio_rng_pci,  /* one */
    &virtio_blk_pci,  /* one per disk */
    &virtio_net_pci,  /* one per NIC */
    NULL,
};

/* ---- one device on virtio-pci outside a VM (the unit tests) ---- */

int virtio_rng_create(struct virtio_pci_dev **out, const struct guest_mem *mem,
                      const struct irq_sink *irq)
{
    const struct dev_config cfg = {.console_fd = -1, .stdout_fd = -1};
    const char *why = NULL;
    return virtio_pci_create(out, &virtio_rng_type, &cfg, 0, mem, irq, &why);
}

void virtio_rng_free(struct virtio_pci_dev *d)
{
    virtio_pci_free(d, &virtio_rng_type);
}

int virtio_blk_create(struct virtio_pci_dev **out, const struct guest_mem *mem,
                      const struct irq_sink *irq, const struct blk_backend *be)
{
    const struct dev_config cfg = {.console_fd = -1, .stdout_fd = -1, .disks = be, .ndisks = 1};
    const char *why = NULL;
    return virtio_pci_create(out, &virtio_blk_type, &cfg, 0, mem, irq, &why);
}

void virtio_blk_free(struct virtio_pci_dev *d)
{
    virtio_pci_free(d, &virtio_blk_type);
}

int virtio_net_create(struct virtio_pci_dev **out, const struct guest_mem *mem,
                      const struct irq_sink *irq, const struct net_backend *be)
{
    const struct dev_config cfg = {.console_fd = -1, .stdout_fd = -1, .nets = be, .nnets = 1};
    const char *why = NULL;
    return virtio_pci_create(out, &virtio_net_type, &cfg, 0, mem, irq, &why);
}

void virtio_net_free(struct virtio_pci_dev *d)
{
    virtio_pci_free(d, &virtio_net_type);
}
