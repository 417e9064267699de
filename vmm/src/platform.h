/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The machine kova-vmm emulates: fixed guest physical addresses, I/O ports and interrupt lines.
 * dsdt.asl repeats the values the DSDT needs (marked there); keep both in step.
 */
#ifndef KOVA_VMM_PLATFORM_H
#define KOVA_VMM_PLATFORM_H

/* Low memory used while booting (all below 1 MiB, inside RAM). */
#define BOOT_GDT_ADDR     0x500ULL
#define BOOT_ZERO_PAGE    0x7000ULL
#define BOOT_STACK_TOP    0x8ff0ULL
#define BOOT_PML4_ADDR    0x9000ULL
#define BOOT_PDPT_ADDR    0xa000ULL
#define BOOT_PD_ADDR      0xb000ULL /* four page directories: 4 GiB identity map with 2 MiB pages */
#define BOOT_CMDLINE      0x20000ULL
#define BOOT_CMDLINE_MAX  0x10000ULL
#define BOOT_EBDA_START   0x9fc00ULL /* [EBDA, 1 MiB) is reserved in the e820 map */
#define ACPI_TABLES       0xe0000ULL /* RSDP first, then the other tables */
#define ACPI_TABLES_MAX   0x10000ULL
#define HIMEM_START       0x100000ULL
#define BIOS_SHADOW_END   0x100000ULL /* firmware boot: the ROM's last 128 KiB end here */
#define BIOS_SHADOW_SIZE  0x20000ULL
#define BOOT_RESET_VECTOR 0xffff0ULL /* real-mode f000:fff0: the reset stub (boot.c) */

/* GDT selectors of the 64-bit boot protocol. */
#define BOOT_CS  0x10
#define BOOT_DS  0x18
#define BOOT_TSS 0x20

/* Port I/O. */
#define PIO_I8042_DATA        0x60
#define PIO_I8042_CMD         0x64
#define PIO_RTC               0x70 /* index, data */
#define PIO_COM1              0x3f8
#define PIO_BOOT_TIMER        0x440 /* the guest writes BOOT_TIMER_MAGIC here once its init runs */
#define BOOT_TIMER_MAGIC      123
#define PIO_ACPI_SLEEP_CTL    0x600 /* FADT sleep control register (dsdt.asl: _S5 = 5) */
#define PIO_ACPI_SLEEP_STS    0x601 /* FADT sleep status register */
#define PIO_ACPI_RESET        0x602 /* FADT reset register */
#define ACPI_RESET_VALUE      0x01
#define ACPI_S5_TYP           5
#define PIO_PCI_CONF          0xcf8 /* conf1 address (0xcf8) and data (0xcfc..0xcff) */
#define PIO_RESET_CONTROL     0xcf9 /* reset control register (byte accesses), in the conf1 ports */
#define RESET_CONTROL_RST_CPU 0x04

/* Interrupts (IOAPIC pins / GSIs). */
#define GSI_COM1 4
#define GSI_RTC  8
#define GSI_GED  5 /* ACPI generic event device: power button (dsdt.asl) */

/* MMIO. The PCI window (dsdt.asl _CRS) ends below the IOAPIC. */
#define MMIO_PCI_START 0xc0000000ULL
#define MMIO_PCI_END   0xfec00000ULL
#define IOAPIC_ADDR    0xfec00000ULL
#define LAPIC_ADDR     0xfee00000ULL

#endif
