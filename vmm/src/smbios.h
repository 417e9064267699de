/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SMBIOS tables for firmware boot (DMTF DSP0134). SeaBIOS reads them from the fw_cfg files
 * etc/smbios/smbios-anchor (the entry point) and etc/smbios/smbios-tables (the structure table),
 * copies the table into guest memory, fills in the entry point's table address and fixes its
 * checksum; the guest then reads /sys/class/dmi/id (cloud-init looks for the OpenStack metadata
 * service only when the product name is "OpenStack Nova"). Pure: no KVM, no I/O.
 *
 * Entry point: SMBIOS 3.0 (64-bit, "_SM3_", 24 bytes). SeaBIOS >= 1.16.0 (Debian 12 ships 1.16.2)
 * takes a 24-byte "_SM3_" anchor from fw_cfg as well as the 31-byte 2.1 "_SM_" one: it requires
 * the tables file to be exactly "structure table maximum size" bytes long, keeps our type 0,
 * places the table below 4 GiB and copies the entry point into the F segment, where Linux scans
 * for "_SM3_" first. The 3.0 format has no structure count or 64 KiB table limit to keep in
 * step, and is what QEMU's newer machine types emit when 2.1 no longer fits.
 *
 * What smbios_build produces, in this order, with handles 0, 1, 2, ... (unique and increasing):
 *   type 0 BIOS (vendor "kova"), type 1 system (manufacturer, product, version, serial = the UUID
 *   text, UUID, wake-up "power switch", family), type 3 chassis ("Other"), one type 4 per vCPU
 *   (one socket each, "CPU 0".."CPU n-1", 1 core, 1 thread, populated and enabled), type 16 (the
 *   RAM array), type 17 per memory device (RAM split into devices of at most SMBIOS_DIMM_MAX bytes
 *   as QEMU does; sizes sum to mem_bytes), type 19 per RAM region of the guest layout (mem.h:
 *   below the 3 GiB MMIO gap, and from 4 GiB), type 32 (no errors), type 127 (end of table, last).
 * Invariants: every structure has the formatted length of SMBIOS 3.0 for its type and ends with
 * its string set and a double NUL; string fields are 0 ("not specified") for NULL or "" strings,
 * else 1..n in order; the entry point's table maximum size is the table length; its table address
 * is 0 (the firmware sets it); its checksum makes its 24 bytes sum to 0 mod 256; the table length
 * is at most SMBIOS_TABLES_MAX (SeaBIOS 1.16 handles the table with 16-bit lengths).
 */
#ifndef KOVA_VMM_SMBIOS_H
#define KOVA_VMM_SMBIOS_H

#include <stddef.h>
#include <stdint.h>

#define SMBIOS_ANCHOR_LEN 24            /* the 3.0 entry point */
#define SMBIOS_MAX_CPUS   255           /* as the ACPI tables (xAPIC IDs) */
#define SMBIOS_STR_MAX    255           /* bytes of one string, without its NUL */
#define SMBIOS_TABLES_MAX 0xffffu       /* bytes of the structure table */
#define SMBIOS_DIMM_MAX   (16ULL << 30) /* largest type 17 memory device, as QEMU */
#define SMBIOS_UUID_TEXT  36            /* canonical 8-4-4-4-12 text */

/* Defaults, as Nova's libvirt driver sets type 1 for its guests. */
#define SMBIOS_DEFAULT_MANUFACTURER "OpenStack Foundation"
#define SMBIOS_DEFAULT_PRODUCT      "OpenStack Nova"
#define SMBIOS_DEFAULT_FAMILY       "Virtual Machine"

struct smbios_params {
    /* The instance's UUID as canonical text (36 characters, either case), or NULL: then the
     * type 1 UUID is all zero and the serial number is not specified. */
    const char *uuid;
    unsigned ncpus;     /* vCPUs, 1..SMBIOS_MAX_CPUS: one type 4 (socket) each */
    uint64_t mem_bytes; /* guest RAM, a non-zero multiple of 1 MiB */
    /* Type 1 overrides, NULL = the defaults above (version: none); "" = not specified. */
    const char *manufacturer, *product, *version, *family;
    /* Optional type 4 processor ID: CPUID leaf 1 EAX (signature) and EDX (features); 0 = none. */
    uint32_t cpuid_1_eax, cpuid_1_edx;
};

/* Builds the entry point into anchor and the structure table into *tables (malloc'd,
 * *tables_len bytes; the caller frees it). 0, or -errno with *tables NULL, *tables_len 0 and
 * anchor untouched: -EINVAL (NULL arguments, ncpus out of range, a malformed uuid, mem_bytes 0
 * or not a multiple of 1 MiB, a string over SMBIOS_STR_MAX bytes), -E2BIG (the table would be
 * over SMBIOS_TABLES_MAX bytes: too much memory for the type 17 devices), -ENOMEM. */
int smbios_build(const struct smbios_params *p, uint8_t anchor[SMBIOS_ANCHOR_LEN], uint8_t **tables,
                 size_t *tables_len);

/* The type 1 UUID field for canonical UUID text: the first three fields little endian, the rest
 * in text order (SMBIOS 2.6+), so that the guest's dmidecode and /sys/class/dmi/id/product_uuid
 * print the same text. 0 or -EINVAL (NULL, not 36 characters, a misplaced '-', a non-hex digit). */
int smbios_uuid_encode(const char *text, uint8_t wire[16]);

#endif
