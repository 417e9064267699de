/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KOVA_VMM_FIRMWARE_H
#define KOVA_VMM_FIRMWARE_H
/*
 * Where a BIOS image goes in the guest (firmware boot), computed in one place from its size.
 *
 * The whole image is a read-only ROM ending at 4 GiB (the reset vector F000:FFF0 is its
 * 16th-last byte); its last min(size, 128 KiB) bytes are also copied into RAM ending at 1 MiB
 * (0xE0000..0xFFFFF for a 128 KiB or larger image), the writable "shadow" that SeaBIOS runs from
 * after POST. Both are placed anew on every VM build (kova-vmm rebuilds the VM on each reset),
 * so a reset always finds the pristine image.
 *
 * A usable image is a multiple of 64 KiB from 64 KiB to FIRMWARE_MAX (16 MiB): the ROM then lies
 * in [0xFF000000, 4 GiB), above the IOAPIC and local APIC pages and the PCI MMIO window.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FIRMWARE_MAX (16u << 20)

struct firmware_layout {
    uint64_t rom_gpa;     /* guest-physical start of the ROM (size bytes, read-only) */
    uint64_t shadow_gpa;  /* guest-physical start of the RAM copy */
    size_t shadow_offset; /* where the copy starts in the image */
    size_t shadow_len;    /* its length */
};

/* Whether size suits a BIOS image: a multiple of 64 KiB, 64 KiB .. FIRMWARE_MAX. */
bool firmware_size_ok(size_t size);

/* The layout of an image of `size` bytes. 0, or -EINVAL when !firmware_size_ok(size). */
int firmware_layout(size_t size, struct firmware_layout *out);

#endif
