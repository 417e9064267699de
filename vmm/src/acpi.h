/* SPDX-License-Identifier: Apache-2.0 */
/* ACPI tables: RSDP, XSDT, HW-reduced FADT, MADT and the iasl-compiled DSDT. No KVM here. */
#ifndef KOVA_VMM_ACPI_H
#define KOVA_VMM_ACPI_H

#include <stddef.h>
#include <stdint.h>

struct acpi_tables {
    /* Offsets into the buffer and lengths; the guest address is base + offset. */
    size_t rsdp_off, xsdt_off, fadt_off, madt_off, dsdt_off;
    size_t rsdp_len, xsdt_len, fadt_len, madt_len, dsdt_len;
    size_t total;
};

/* Builds the tables for ncpus CPUs into buf (placed at guest address base).
 * 0, -EINVAL (ncpus out of 1..255), -ENOSPC (buffer too small). */
int acpi_build(uint8_t *buf, size_t len, uint64_t base, unsigned ncpus, struct acpi_tables *t);

/*
 * The same tables for firmware boot, as SeaBIOS's ACPI loader takes them from fw_cfg (QEMU's
 * linker/loader format, 128-byte commands): etc/acpi/tables (the tables built at base 0, so each
 * pointer holds its target's offset), etc/acpi/rsdp (the RSDP alone) and etc/table-loader, which
 * tells the firmware to allocate the RSDP in the F segment and the tables in high memory, add
 * the tables' address to every pointer (RSDP -> XSDT -> FADT, MADT; FADT -> DSDT) and then set
 * the checksums of what it changed.
 */
#define ACPI_LOADER_ENTRY 128
#define ACPI_LOADER_MAX   16 /* commands */
struct acpi_fw {
    uint8_t *tables; /* malloc'd */
    size_t tables_len;
    uint8_t rsdp[36];
    uint8_t loader[ACPI_LOADER_MAX * ACPI_LOADER_ENTRY];
    size_t loader_len;
};
/* 0, -EINVAL (ncpus out of 1..255) or -ENOMEM; acpi_fw_free releases what it holds. */
int acpi_build_fw(unsigned ncpus, struct acpi_fw *fw);
void acpi_fw_free(struct acpi_fw *fw);

/* Sum of the bytes (0 for a valid table). */
uint8_t acpi_checksum(const uint8_t *p, size_t len);

extern const unsigned char kova_dsdt_aml[];
extern const unsigned int kova_dsdt_aml_len;

#endif
