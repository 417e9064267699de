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

/* Sum of the bytes (0 for a valid table). */
uint8_t acpi_checksum(const uint8_t *p, size_t len);

extern const unsigned char kova_dsdt_aml[];
extern const unsigned int kova_dsdt_aml_len;

#endif
