/* SPDX-License-Identifier: Apache-2.0 */
#include "acpi.h"
#include "platform.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define OEM_ID       "KOVA  "
#define OEM_TABLE_ID "KOVAVMM "
#define CREATOR_ID   "KOVA"

uint8_t acpi_checksum(const uint8_t *p, size_t len)
{
    uint8_t sum = 0;
    for (size_t i = 0; i < len; i++)
        sum = (uint8_t)(sum + p[i]);
    return sum;
}

static void put16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static void put32(uint8_t *p, uint32_t v)
{
    put16(p, v);
    put16(p + 2, v >> 16);
}
static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

static void header(uint8_t *t, const char *sig, uint32_t len, uint8_t rev)
{
    memcpy(t, sig, 4);
    put32(t + 4, len);
    t[8] = rev;
    t[9] = 0;
    memcpy(t + 10, OEM_ID, 6);
    memcpy(t + 16, OEM_TABLE_ID, 8);
    put32(t + 24, 1);
    memcpy(t + 28, CREATOR_ID, 4);
    put32(t + 32, 1);
}

static void finish(uint8_t *t, uint32_t len)
{
    t[9] = 0;
    t[9] = (uint8_t)(0 - acpi_checksum(t, len));
}

/* Generic address structure: system I/O, byte wide. */
static void gas_io8(uint8_t *p, uint16_t port)
{
    p[0] = 1; /* system I/O */
    p[1] = 8; /* bit width */
    p[2] = 0; /* bit offset */
    p[3] = 1; /* byte access */
    put64(p + 4, port);
}

#define FADT_LEN       276
#define MADT_LAPIC_LEN 8

int acpi_build(uint8_t *buf, size_t len, uint64_t base, unsigned ncpus, struct acpi_tables *t)
{
    if (ncpus == 0 || ncpus > 255)
        return -EINVAL;
    memset(t, 0, sizeof(*t));
    size_t off = 0;
#define ALLOC(field, n)                                                                            \
    do {                                                                                           \
        t->field##_off = off;                                                                      \
        t->field##_len = (n);                                                                      \
        off = (off + (n) + 15) & ~(size_t)15;                                                      \
    } while (0)
    ALLOC(rsdp, 36);
    ALLOC(xsdt, 36 + 2 * 8);
    ALLOC(fadt, FADT_LEN);
    ALLOC(madt, 44 + ncpus * MADT_LAPIC_LEN + 12 + 6);
    ALLOC(dsdt, kova_dsdt_aml_len);
#undef ALLOC
    t->total = off;
    if (off > len)
        return -ENOSPC;
    memset(buf, 0, off);

    /* DSDT (compiled by iasl; checksum already right, recomputed anyway). */
    uint8_t *dsdt = buf + t->dsdt_off;
    memcpy(dsdt, kova_dsdt_aml, kova_dsdt_aml_len);
    finish(dsdt, (uint32_t)t->dsdt_len);

    /* FADT, revision 6: hardware-reduced, sleep control/status and reset registers. */
    uint8_t *f = buf + t->fadt_off;
    header(f, "FACP", FADT_LEN, 6);
    put32(f + 40, (uint32_t)(base + t->dsdt_off)); /* DSDT */
    f[45] = 0;                                     /* preferred PM profile: unspecified */
    put16(f + 109, 1u << 2);                       /* IAPC boot arch: no VGA */
    put32(f + 112, (1u << 10) | (1u << 20));       /* RESET_REG_SUP | HW_REDUCED_ACPI */
    gas_io8(f + 116, PIO_ACPI_RESET);              /* reset register */
    f[128] = ACPI_RESET_VALUE;                     /* reset value */
    f[131] = 0;                                    /* FADT minor version */
    put64(f + 140, base + t->dsdt_off);            /* X_DSDT */
    gas_io8(f + 244, PIO_ACPI_SLEEP_CTL);          /* sleep control register */
    gas_io8(f + 256, PIO_ACPI_SLEEP_STS);          /* sleep status register */
    memcpy(f + 268, "KOVAVMM\0", 8);               /* hypervisor vendor identity */
    finish(f, FADT_LEN);

    /* MADT: one local APIC per CPU, the IOAPIC, LINT1 = NMI on all CPUs. */
    uint8_t *m = buf + t->madt_off;
    header(m, "APIC", (uint32_t)t->madt_len, 5);
    put32(m + 36, (uint32_t)LAPIC_ADDR);
    put32(m + 40, 0); /* no dual 8259 set-up: the guest uses the IOAPIC */
    uint8_t *e = m + 44;
    for (unsigned i = 0; i < ncpus; i++, e += MADT_LAPIC_LEN) {
        e[0] = 0; /* processor local APIC */
        e[1] = MADT_LAPIC_LEN;
        e[2] = (uint8_t)i; /* ACPI processor UID */
        e[3] = (uint8_t)i; /* APIC ID */
        put32(e + 4, 1);   /* enabled */
    }
    e[0] = 1; /* IOAPIC */
    e[1] = 12;
    e[2] = 0; /* IOAPIC ID: the in-kernel IOAPIC's ID is 0 */
    put32(e + 4, (uint32_t)IOAPIC_ADDR);
    put32(e + 8, 0); /* GSI base */
    e += 12;
    e[0] = 4; /* local APIC NMI */
    e[1] = 6;
    e[2] = 0xff; /* all processors */
    put16(e + 3, 0);
    e[5] = 1; /* LINT1 */
    finish(m, (uint32_t)t->madt_len);

    /* XSDT. */
    uint8_t *x = buf + t->xsdt_off;
    header(x, "XSDT", (uint32_t)t->xsdt_len, 1);
    put64(x + 36, base + t->fadt_off);
    put64(x + 44, base + t->madt_off);
    finish(x, (uint32_t)t->xsdt_len);

    /* RSDP 2.0. */
    uint8_t *r = buf + t->rsdp_off;
    memcpy(r, "RSD PTR ", 8);
    memcpy(r + 9, OEM_ID, 6);
    r[15] = 2;
    put32(r + 16, 0); /* no RSDT: the XSDT is used */
    put32(r + 20, 36);
    put64(r + 24, base + t->xsdt_off);
    r[8] = (uint8_t)(0 - acpi_checksum(r, 20));
    r[32] = (uint8_t)(0 - acpi_checksum(r, 36));
    return 0;
}

/* ---- firmware boot: the tables through SeaBIOS's linker/loader ---- */

enum { LOADER_ALLOCATE = 1, LOADER_ADD_POINTER = 2, LOADER_ADD_CHECKSUM = 3 };
enum { ZONE_HIGH = 1, ZONE_FSEG = 2 };
#define LOADER_NAME 56
#define FW_TABLES   "etc/acpi/tables"
#define FW_RSDP     "etc/acpi/rsdp"

static uint8_t *loader_entry(struct acpi_fw *fw, uint32_t command)
{
    uint8_t *e = fw->loader + fw->loader_len;
    fw->loader_len += ACPI_LOADER_ENTRY;
    put32(e, command);
    return e + 4;
}

static void loader_allocate(struct acpi_fw *fw, const char *file, uint32_t align, uint8_t zone)
{
    uint8_t *a = loader_entry(fw, LOADER_ALLOCATE);
    memcpy(a, file, strlen(file));
    put32(a + LOADER_NAME, align);
    a[LOADER_NAME + 4] = zone;
}

/* dest's size-byte field at offset gets src's address added. */
static void loader_pointer(struct acpi_fw *fw, const char *dest, const char *src, size_t offset,
                           uint8_t size)
{
    uint8_t *a = loader_entry(fw, LOADER_ADD_POINTER);
    memcpy(a, dest, strlen(dest));
    memcpy(a + LOADER_NAME, src, strlen(src));
    put32(a + 2 * LOADER_NAME, (uint32_t)offset);
    a[2 * LOADER_NAME + 4] = size;
}

/* The byte at offset makes [start, start + len) of file sum to 0. */
static void loader_checksum(struct acpi_fw *fw, const char *file, size_t offset, size_t start,
                            size_t len)
{
    uint8_t *a = loader_entry(fw, LOADER_ADD_CHECKSUM);
    memcpy(a, file, strlen(file));
    put32(a + LOADER_NAME, (uint32_t)offset);
    put32(a + LOADER_NAME + 4, (uint32_t)start);
    put32(a + LOADER_NAME + 8, (uint32_t)len);
}

int acpi_build_fw(unsigned ncpus, struct acpi_fw *fw)
{
    memset(fw, 0, sizeof(*fw));
    if (ncpus == 0 || ncpus > 255)
        return -EINVAL;
    struct acpi_tables t;
    size_t cap = 64 * 1024;
    fw->tables = malloc(cap);
    if (!fw->tables)
        return -ENOMEM;
    int r = acpi_build(fw->tables, cap, 0, ncpus, &t);
    if (r < 0) {
        acpi_fw_free(fw);
        return r;
    }
    fw->tables_len = t.total;
    memcpy(fw->rsdp, fw->tables + t.rsdp_off, sizeof(fw->rsdp));

    loader_allocate(fw, FW_RSDP, 16, ZONE_FSEG);
    loader_allocate(fw, FW_TABLES, 64, ZONE_HIGH);
    loader_pointer(fw, FW_TABLES, FW_TABLES, t.fadt_off + 40, 4);  /* FADT.DSDT */
    loader_pointer(fw, FW_TABLES, FW_TABLES, t.fadt_off + 140, 8); /* FADT.X_DSDT */
    loader_checksum(fw, FW_TABLES, t.fadt_off + 9, t.fadt_off, t.fadt_len);
    loader_pointer(fw, FW_TABLES, FW_TABLES, t.xsdt_off + 36, 8); /* XSDT -> FADT */
    loader_pointer(fw, FW_TABLES, FW_TABLES, t.xsdt_off + 44, 8); /* XSDT -> MADT */
    loader_checksum(fw, FW_TABLES, t.xsdt_off + 9, t.xsdt_off, t.xsdt_len);
    loader_pointer(fw, FW_RSDP, FW_TABLES, 24, 8); /* RSDP -> XSDT */
    loader_checksum(fw, FW_RSDP, 8, 0, 20);        /* the ACPI 1.0 checksum */
    loader_checksum(fw, FW_RSDP, 32, 0, 36);       /* the extended one */
    return 0;
}

void acpi_fw_free(struct acpi_fw *fw)
{
    free(fw->tables);
    fw->tables = NULL;
}
