/* SPDX-License-Identifier: Apache-2.0 */
/* Linux x86 boot protocol (Documentation/x86/boot.rst): bzImage parsing, the zero page with its
 * e820 map, and the identity-mapped page tables + GDT of the 64-bit entry. No KVM here. */
#ifndef KOVA_VMM_BOOT_H
#define KOVA_VMM_BOOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mem.h"

struct bzimage {
    const uint8_t *data;
    size_t size;
    uint16_t version;      /* boot protocol, e.g. 0x020f */
    size_t setup_size;     /* bytes before the protected-mode kernel */
    uint64_t pref_address; /* where the kernel wants to be loaded */
    uint32_t init_size;    /* bytes the kernel needs from its load address while booting */
    uint32_t initrd_addr_max;
    uint32_t cmdline_size; /* longest command line, without the NUL */
    uint8_t loadflags;
    uint16_t xloadflags;
    bool relocatable;
};

struct e820_entry {
    uint64_t addr, size;
    uint32_t type; /* 1 RAM, 2 reserved */
} __attribute__((packed));

#define E820_RAM      1
#define E820_RESERVED 2

/* Checks a bzImage for the 64-bit boot protocol. 0 or -errno with *why set. */
int bzimage_parse(const uint8_t *data, size_t size, struct bzimage *k, const char **why);

/* Fills out[] (up to max) with the RAM map of gm; returns the entry count or -ENOSPC. */
int boot_e820(const struct guest_mem *gm, struct e820_entry *out, int max);

struct boot_result {
    uint64_t entry;     /* 64-bit entry point (rip) */
    uint64_t zero_page; /* rsi */
    uint64_t kernel_addr, kernel_end;
    uint64_t initrd_addr, initrd_size;
};

/* Loads kernel, initrd (may be NULL) and command line into gm, writes the zero page, GDT and
 * page tables. rsdp: the ACPI RSDP address to pass (0 = none). 0 or -errno with *why set. */
int boot_load(const struct guest_mem *gm, const struct bzimage *k, const uint8_t *initrd,
              size_t initrd_size, const char *cmdline, uint64_t rsdp, struct boot_result *res,
              const char **why);

/* GDT entries written at BOOT_GDT_ADDR (index = selector / 8). */
extern const uint64_t boot_gdt[5];

#endif
