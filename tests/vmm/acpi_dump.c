/* SPDX-License-Identifier: Apache-2.0 */
/* Writes kova-vmm's ACPI tables for N CPUs as separate files into DIR (for iasl -d). */
#include "acpi.h"
#include "platform.h"

#include <stdio.h>
#include <stdlib.h>

static int dump(const char *dir, const char *name, const uint8_t *p, size_t len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s.dat", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s DIR NCPUS\n", argv[0]);
        return 2;
    }
    static uint8_t buf[ACPI_TABLES_MAX];
    struct acpi_tables t;
    if (acpi_build(buf, sizeof(buf), ACPI_TABLES, (unsigned)atoi(argv[2]), &t) < 0) {
        fprintf(stderr, "acpi_build failed\n");
        return 1;
    }
    int r = 0;
    r |= dump(argv[1], "rsdp", buf + t.rsdp_off, t.rsdp_len);
    r |= dump(argv[1], "xsdt", buf + t.xsdt_off, t.xsdt_len);
    r |= dump(argv[1], "facp", buf + t.fadt_off, t.fadt_len);
    r |= dump(argv[1], "apic", buf + t.madt_off, t.madt_len);
    r |= dump(argv[1], "dsdt", buf + t.dsdt_off, t.dsdt_len);
    return r;
}
