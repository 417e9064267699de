/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Guest physical memory. RAM below the 32-bit MMIO gap starts at 0, the rest starts at 4 GiB.
 * gm_ptr() is the one place where a guest physical address range becomes a host pointer: every
 * guest-supplied address and length goes through it.
 */
#ifndef KOVA_VMM_MEM_H
#define KOVA_VMM_MEM_H

#include <stddef.h>
#include <stdint.h>

#define GM_GAP_START  0xC0000000ULL /* first byte of the 32-bit MMIO gap (3 GiB) */
#define GM_HUGE_PAGE  0x200000ULL
#define GM_HIGH_START 0x100000000ULL /* RAM above the gap starts here (4 GiB) */

struct guest_mem {
    uint8_t *host;      /* one host mapping: low RAM, then high RAM */
    uint64_t size;      /* total RAM bytes */
    uint64_t low_size;  /* bytes at [0, low_size) */
    uint64_t high_size; /* bytes at [4 GiB, 4 GiB + high_size) */
};

/* Splits size bytes of RAM around the gap (no allocation); for tests and gm_alloc. */
void gm_layout(struct guest_mem *gm, uint64_t size);
/* Maps size bytes of anonymous RAM. 0 or -errno. */
int gm_alloc(struct guest_mem *gm, uint64_t size);
void gm_free(struct guest_mem *gm);

/* Host pointer for [gpa, gpa + len) if it lies wholly inside one RAM region, else NULL.
 * len 0 is allowed (returns the address's pointer when gpa is inside RAM). */
void *gm_ptr(const struct guest_mem *gm, uint64_t gpa, uint64_t len);
int gm_read(const struct guest_mem *gm, uint64_t gpa, void *dst, uint64_t len);
int gm_write(const struct guest_mem *gm, uint64_t gpa, const void *src, uint64_t len);

#endif
