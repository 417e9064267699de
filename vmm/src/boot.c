/* SPDX-License-Identifier: Apache-2.0 */
#include "boot.h"
#include "platform.h"

#include <errno.h>
#include <string.h>

/* Offsets in the zero page / bzImage (struct boot_params, struct setup_header). */
#define BP_ACPI_RSDP      0x070
#define BP_EXT_RAMDISK    0x0c0
#define BP_EXT_RAMDISK_SZ 0x0c4
#define BP_EXT_CMDLINE    0x0c8
#define BP_E820_ENTRIES   0x1e8
#define BP_E820_TABLE     0x2d0
#define BP_E820_MAX       128
#define HDR_START         0x1f1
#define HDR_SETUP_SECTS   0x1f1
#define HDR_VID_MODE      0x1fa
#define HDR_BOOT_FLAG     0x1fe
#define HDR_JUMP          0x200
#define HDR_MAGIC         0x202
#define HDR_VERSION       0x206
#define HDR_LOADER_TYPE   0x210
#define HDR_LOADFLAGS     0x211
#define HDR_RAMDISK_IMAGE 0x218
#define HDR_RAMDISK_SIZE  0x21c
#define HDR_HEAP_END      0x224
#define HDR_CMDLINE_PTR   0x228
#define HDR_INITRD_MAX    0x22c
#define HDR_RELOCATABLE   0x234
#define HDR_XLOADFLAGS    0x236
#define HDR_CMDLINE_SIZE  0x238
#define HDR_PREF_ADDRESS  0x258
#define HDR_INIT_SIZE     0x260

#define LOADFLAG_LOADED_HIGH  0x01
#define LOADFLAG_CAN_USE_HEAP 0x80
#define XLF_KERNEL_64         0x01

const uint64_t boot_gdt[5] = {
    0,
    0,
    0x00af9b000000ffffULL, /* BOOT_CS: 64-bit code, flat */
    0x00cf93000000ffffULL, /* BOOT_DS: data, flat */
    0x008f8b000000ffffULL, /* BOOT_TSS: 32-bit busy TSS */
};

static uint32_t rd16(const uint8_t *p, size_t off)
{
    return (uint32_t)p[off] | (uint32_t)p[off + 1] << 8;
}
static uint32_t rd32(const uint8_t *p, size_t off)
{
    return rd16(p, off) | rd16(p, off + 2) << 16;
}
static uint64_t rd64(const uint8_t *p, size_t off)
{
    return rd32(p, off) | (uint64_t)rd32(p, off + 4) << 32;
}
static void wr16(uint8_t *p, size_t off, uint32_t v)
{
    p[off] = (uint8_t)v;
    p[off + 1] = (uint8_t)(v >> 8);
}
static void wr32(uint8_t *p, size_t off, uint32_t v)
{
    wr16(p, off, v);
    wr16(p, off + 2, v >> 16);
}
static void wr64(uint8_t *p, size_t off, uint64_t v)
{
    wr32(p, off, (uint32_t)v);
    wr32(p, off + 4, (uint32_t)(v >> 32));
}

int bzimage_parse(const uint8_t *data, size_t size, struct bzimage *k, const char **why)
{
    memset(k, 0, sizeof(*k));
    if (size < 0x1000 || memcmp(data + HDR_MAGIC, "HdrS", 4) != 0 ||
        rd16(data, HDR_BOOT_FLAG) != 0xaa55) {
        *why = "not a Linux bzImage (no HdrS setup header)";
        return -ENOEXEC;
    }
    k->version = (uint16_t)rd16(data, HDR_VERSION);
    if (k->version < 0x020c) {
        *why = "boot protocol older than 2.12 (no 64-bit entry)";
        return -ENOEXEC;
    }
    k->xloadflags = (uint16_t)rd16(data, HDR_XLOADFLAGS);
    if (!(k->xloadflags & XLF_KERNEL_64)) {
        *why = "kernel has no 64-bit entry point (xloadflags)";
        return -ENOEXEC;
    }
    unsigned sects = data[HDR_SETUP_SECTS] ? data[HDR_SETUP_SECTS] : 4;
    k->setup_size = (size_t)(sects + 1) * 512;
    if (k->setup_size >= size) {
        *why = "bzImage truncated (setup larger than the file)";
        return -ENOEXEC;
    }
    k->loadflags = data[HDR_LOADFLAGS];
    k->relocatable = data[HDR_RELOCATABLE] != 0;
    k->initrd_addr_max = rd32(data, HDR_INITRD_MAX);
    k->cmdline_size = rd32(data, HDR_CMDLINE_SIZE);
    k->pref_address = rd64(data, HDR_PREF_ADDRESS);
    k->init_size = rd32(data, HDR_INIT_SIZE);
    if (k->pref_address < HIMEM_START || k->pref_address >= GM_GAP_START ||
        (k->pref_address & 0xfff)) {
        *why = "kernel's preferred load address is unusable";
        return -ENOEXEC;
    }
    k->data = data;
    k->size = size;
    return 0;
}

static int e820_add(struct e820_entry *out, int n, int max, uint64_t addr, uint64_t size,
                    uint32_t type)
{
    if (size == 0)
        return n;
    if (n < 0 || n >= max)
        return -ENOSPC;
    out[n] = (struct e820_entry){addr, size, type};
    return n + 1;
}

int boot_e820(const struct guest_mem *gm, struct e820_entry *out, int max)
{
    int n = 0;
    uint64_t low = gm->low_size;
    n = e820_add(out, n, max, 0, low < BOOT_EBDA_START ? low : BOOT_EBDA_START, E820_RAM);
    n = e820_add(out, n, max, BOOT_EBDA_START, HIMEM_START - BOOT_EBDA_START, E820_RESERVED);
    if (low > HIMEM_START)
        n = e820_add(out, n, max, HIMEM_START, low - HIMEM_START, E820_RAM);
    n = e820_add(out, n, max, GM_HIGH_START, gm->high_size, E820_RAM);
    return n;
}

int boot_load(const struct guest_mem *gm, const struct bzimage *k, const uint8_t *initrd,
              size_t initrd_size, const char *cmdline, uint64_t rsdp, struct boot_result *res,
              const char **why)
{
    memset(res, 0, sizeof(*res));
    const uint8_t *img = k->data;
    size_t payload = k->size - k->setup_size;
    uint64_t load = k->pref_address;
    uint64_t need = k->init_size > payload ? k->init_size : payload;
    if (load + need > gm->low_size) {
        *why = "guest memory too small for the kernel (load address + init_size)";
        return -ENOMEM;
    }
    uint8_t *dst = gm_ptr(gm, load, payload);
    if (!dst) {
        *why = "kernel does not fit in guest memory";
        return -ENOMEM;
    }
    memcpy(dst, img + k->setup_size, payload);
    res->kernel_addr = load;
    res->kernel_end = load + need;

    /* Command line. */
    size_t clen = cmdline ? strlen(cmdline) : 0;
    uint64_t cmax = k->cmdline_size ? k->cmdline_size : 255;
    if (clen > cmax || clen + 1 > BOOT_CMDLINE_MAX) {
        *why = "kernel command line too long for this kernel";
        return -E2BIG;
    }
    if (gm_write(gm, BOOT_CMDLINE, cmdline ? cmdline : "", clen + 1) < 0) {
        *why = "guest memory too small for the command line";
        return -ENOMEM;
    }

    /* Initrd: as high as allowed below the gap, page aligned, above the kernel. */
    if (initrd && initrd_size) {
        uint64_t top = gm->low_size;
        if (k->initrd_addr_max && top > (uint64_t)k->initrd_addr_max + 1)
            top = (uint64_t)k->initrd_addr_max + 1;
        if (initrd_size > top || ((top - initrd_size) & ~0xfffULL) < res->kernel_end) {
            *why = "initrd does not fit in guest memory above the kernel";
            return -ENOMEM;
        }
        uint64_t addr = (top - initrd_size) & ~0xfffULL;
        if (gm_write(gm, addr, initrd, initrd_size) < 0) {
            *why = "initrd does not fit in guest memory";
            return -ENOMEM;
        }
        res->initrd_addr = addr;
        res->initrd_size = initrd_size;
    }

    /* Zero page: the image's own setup header, then what a boot loader fills in. */
    uint8_t *zp = gm_ptr(gm, BOOT_ZERO_PAGE, 4096);
    if (!zp) {
        *why = "guest memory too small for the zero page";
        return -ENOMEM;
    }
    memset(zp, 0, 4096);
    size_t hdr_end = HDR_JUMP + 2 + (size_t)img[HDR_JUMP + 1];
    if (hdr_end > 0x1000 || hdr_end > k->setup_size)
        hdr_end = 0x1000 < k->setup_size ? 0x1000 : k->setup_size;
    memcpy(zp + HDR_START, img + HDR_START, hdr_end - HDR_START);
    wr16(zp, HDR_VID_MODE, 0xffff);
    zp[HDR_LOADER_TYPE] = 0xff;
    zp[HDR_LOADFLAGS] = k->loadflags | LOADFLAG_LOADED_HIGH | LOADFLAG_CAN_USE_HEAP;
    wr16(zp, HDR_HEAP_END, 0xfe00);
    wr32(zp, HDR_CMDLINE_PTR, (uint32_t)BOOT_CMDLINE);
    wr32(zp, BP_EXT_CMDLINE, 0);
    wr32(zp, HDR_RAMDISK_IMAGE, (uint32_t)res->initrd_addr);
    wr32(zp, HDR_RAMDISK_SIZE, (uint32_t)res->initrd_size);
    wr32(zp, BP_EXT_RAMDISK, (uint32_t)(res->initrd_addr >> 32));
    wr32(zp, BP_EXT_RAMDISK_SZ, (uint32_t)((uint64_t)res->initrd_size >> 32));
    if (k->version >= 0x020e)
        wr64(zp, BP_ACPI_RSDP, rsdp);
    struct e820_entry map[BP_E820_MAX];
    int n = boot_e820(gm, map, BP_E820_MAX);
    if (n < 0) {
        *why = "e820 map too large";
        return n;
    }
    zp[BP_E820_ENTRIES] = (uint8_t)n;
    memcpy(zp + BP_E820_TABLE, map, (size_t)n * sizeof(map[0]));

    /* GDT and identity page tables (4 GiB, 2 MiB pages) for the 64-bit entry. */
    uint8_t *gdt = gm_ptr(gm, BOOT_GDT_ADDR, sizeof(boot_gdt));
    uint8_t *pml4 = gm_ptr(gm, BOOT_PML4_ADDR, 4096);
    uint8_t *pdpt = gm_ptr(gm, BOOT_PDPT_ADDR, 4096);
    uint8_t *pd = gm_ptr(gm, BOOT_PD_ADDR, 4 * 4096);
    if (!gdt || !pml4 || !pdpt || !pd) {
        *why = "guest memory too small for the boot page tables";
        return -ENOMEM;
    }
    for (size_t i = 0; i < 5; i++)
        wr64(gdt, i * 8, boot_gdt[i]);
    memset(pml4, 0, 4096);
    memset(pdpt, 0, 4096);
    wr64(pml4, 0, BOOT_PDPT_ADDR | 0x3);
    for (uint64_t i = 0; i < 4; i++)
        wr64(pdpt, i * 8, (BOOT_PD_ADDR + i * 4096) | 0x3);
    for (uint64_t i = 0; i < 4 * 512; i++)
        wr64(pd, i * 8, (i << 21) | 0x83);

    /* Reset vector stub. A hardware-reduced ACPI guest without EFI reboots through the "BIOS"
     * (Linux: machine_real_restart jumps to f000:fff0 in real mode). There is no firmware, so
     * the stub there asks the i8042 for a CPU reset: mov al, 0xfe; out 0x64, al; hlt; jmp $-1. */
    static const uint8_t reset_stub[] = {0xb0, 0xfe, 0xe6, 0x64, 0xf4, 0xeb, 0xfd};
    if (gm_write(gm, BOOT_RESET_VECTOR, reset_stub, sizeof(reset_stub)) < 0) {
        *why = "guest memory too small for the reset vector";
        return -ENOMEM;
    }

    res->entry = load + 0x200;
    res->zero_page = BOOT_ZERO_PAGE;
    return 0;
}
