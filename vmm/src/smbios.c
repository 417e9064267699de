/* SPDX-License-Identifier: Apache-2.0 */
/* SMBIOS 3.0 entry point and structure table (smbios.h). Offsets: DSP0134 3.0.0, chapter 7. */
#include "smbios.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kova/common.h"
#include "mem.h"
#include "platform.h"

#define MIB (1ULL << 20)

/* Type 0: kova's own BIOS identity (SeaBIOS adds its own only when there is no type 0). Keep the
 * version in step with project(kova VERSION ...) in the top CMakeLists.txt. */
#define BIOS_VENDOR  "kova"
#define BIOS_VERSION "0.1.0"
#define BIOS_DATE    "01/01/2025" /* mm/dd/yyyy */
#define BIOS_MAJOR   0
#define BIOS_MINOR   1
#define HW_VENDOR    "kova" /* type 4 processor and type 17 memory manufacturer, as QEMU's "QEMU" */

/* Formatted lengths (SMBIOS 3.0). */
enum {
    T0_LEN = 0x18,
    T1_LEN = 0x1b,
    T3_LEN = 0x16, /* no contained elements, SKU string */
    T4_LEN = 0x30,
    T16_LEN = 0x17,
    T17_LEN = 0x28,
    T19_LEN = 0x1f,
    T32_LEN = 0x0b,
    T127_LEN = 0x04,
};

/* The table under construction. After an allocation failure every call is a no-op and oom stays
 * set; fields are written through offsets (the buffer moves as it grows). */
struct sbuf {
    uint8_t *p;
    size_t len, cap;
    bool oom;
    size_t start;    /* the current structure's offset */
    unsigned nstr;   /* strings the current structure has so far */
    uint16_t handle; /* the next handle */
};

static bool sb_reserve(struct sbuf *b, size_t n)
{
    if (b->oom)
        return false;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q) {
            b->oom = true;
            return false;
        }
        b->p = q;
        b->cap = cap;
    }
    return true;
}

static void sb_append(struct sbuf *b, const void *data, size_t n)
{
    if (!sb_reserve(b, n))
        return;
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

/* Starts a structure: a zeroed formatted area of len bytes with its header. Returns its handle. */
static uint16_t sb_begin(struct sbuf *b, uint8_t type, uint8_t len)
{
    uint16_t h = b->handle++;
    b->start = b->len;
    b->nstr = 0;
    if (!sb_reserve(b, len))
        return h;
    memset(b->p + b->len, 0, len);
    b->p[b->len] = type;
    b->p[b->len + 1] = len;
    kova_le_put(b->p + b->len + 2, 2, h);
    b->len += len;
    return h;
}

/* Writes a field of the current structure (off from its start). */
static void sb_put(struct sbuf *b, size_t off, uint32_t size, uint64_t v)
{
    if (!b->oom)
        kova_le_put(b->p + b->start + off, size, v);
}

/* Appends s to the current structure's string set and stores its number in the byte field at
 * off; NULL or "" stores 0 (not specified) and appends nothing. */
static void sb_str(struct sbuf *b, size_t off, const char *s)
{
    if (!s || !*s) {
        sb_put(b, off, 1, 0);
        return;
    }
    sb_append(b, s, strlen(s) + 1);
    sb_put(b, off, 1, ++b->nstr);
}

/* Ends the current structure: the string set's terminating NUL (two NULs without strings). */
static void sb_end(struct sbuf *b)
{
    static const uint8_t nul[2];
    sb_append(b, nul, b->nstr ? 1 : 2);
}

int smbios_uuid_encode(const char *text, uint8_t wire[16])
{
    uint8_t b[16];
    unsigned n = 0;

    if (!text || !wire || strnlen(text, SMBIOS_UUID_TEXT + 1) != SMBIOS_UUID_TEXT)
        return -EINVAL;
    for (unsigned i = 0; i < SMBIOS_UUID_TEXT; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash) {
            if (text[i] != '-')
                return -EINVAL;
            continue;
        }
        int v = kova_hexval(text[i]);
        if (v < 0)
            return -EINVAL;
        if (n % 2 == 0)
            b[n / 2] = (uint8_t)(v << 4);
        else
            b[n / 2] |= (uint8_t)v;
        n++;
    }
    /* time_low, time_mid, time_hi_and_version little endian; clock_seq and node as written. */
    static const uint8_t order[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};
    for (unsigned i = 0; i < 16; i++)
        wire[i] = b[order[i]];
    return 0;
}

static bool str_ok(const char *s)
{
    return !s || strnlen(s, SMBIOS_STR_MAX + 1) <= SMBIOS_STR_MAX;
}

static void build_type0(struct sbuf *b)
{
    sb_begin(b, 0, T0_LEN);
    sb_str(b, 0x04, BIOS_VENDOR);
    sb_str(b, 0x05, BIOS_VERSION);
    /* The firmware's real-mode segment and ROM size: the shadowed BIOS area below 1 MiB. */
    sb_put(b, 0x06, 2, (BIOS_SHADOW_END - BIOS_SHADOW_SIZE) >> 4);
    sb_str(b, 0x08, BIOS_DATE);
    sb_put(b, 0x09, 1, BIOS_SHADOW_SIZE / (64 * 1024) - 1); /* 64 KiB * (n + 1) */
    sb_put(b, 0x0a, 8, 1u << 3);                            /* characteristics not supported */
    sb_put(b, 0x12, 1, 0);
    /* Extension byte 2: targeted content distribution (bit 2, SVVP), virtual machine (bit 4). */
    sb_put(b, 0x13, 1, (1u << 2) | (1u << 4));
    sb_put(b, 0x14, 1, BIOS_MAJOR);
    sb_put(b, 0x15, 1, BIOS_MINOR);
    sb_put(b, 0x16, 1, 0xff); /* no embedded controller */
    sb_put(b, 0x17, 1, 0xff);
    sb_end(b);
}

static void build_type1(struct sbuf *b, const struct smbios_params *p, const uint8_t uuid[16])
{
    sb_begin(b, 1, T1_LEN);
    sb_str(b, 0x04, p->manufacturer ? p->manufacturer : SMBIOS_DEFAULT_MANUFACTURER);
    sb_str(b, 0x05, p->product ? p->product : SMBIOS_DEFAULT_PRODUCT);
    sb_str(b, 0x06, p->version);
    sb_str(b, 0x07, p->uuid); /* serial number: the instance UUID, as Nova's default */
    if (!b->oom)
        memcpy(b->p + b->start + 0x08, uuid, 16);
    sb_put(b, 0x18, 1, 0x06); /* wake-up type: power switch */
    sb_str(b, 0x19, NULL);    /* SKU */
    sb_str(b, 0x1a, p->family ? p->family : SMBIOS_DEFAULT_FAMILY);
    sb_end(b);
}

static void build_type3(struct sbuf *b, const struct smbios_params *p)
{
    sb_begin(b, 3, T3_LEN);
    sb_str(b, 0x04, p->manufacturer ? p->manufacturer : SMBIOS_DEFAULT_MANUFACTURER);
    sb_put(b, 0x05, 1, 0x01); /* type: other, no lock */
    sb_put(b, 0x09, 1, 0x03); /* boot-up state: safe */
    sb_put(b, 0x0a, 1, 0x03); /* power supply state: safe */
    sb_put(b, 0x0b, 1, 0x03); /* thermal state: safe */
    sb_put(b, 0x0c, 1, 0x03); /* security status: none */
    /* OEM 0, height and power cords unspecified, no contained elements, no SKU (0x15). */
    sb_end(b);
}

static void build_type4(struct sbuf *b, const struct smbios_params *p, unsigned cpu)
{
    char name[16];
    snprintf(name, sizeof(name), "CPU %u", cpu);
    sb_begin(b, 4, T4_LEN);
    sb_str(b, 0x04, name);    /* socket designation */
    sb_put(b, 0x05, 1, 0x03); /* central processor */
    sb_put(b, 0x06, 1, 0x01); /* family: other (family 2 below) */
    sb_str(b, 0x07, HW_VENDOR);
    sb_put(b, 0x08, 4, p->cpuid_1_eax);
    sb_put(b, 0x0c, 4, p->cpuid_1_edx);
    /* version string 0, voltage 0 and external clock 0: unknown. */
    sb_put(b, 0x14, 2, 2000); /* max and current speed in MHz: QEMU's 2000 (SVVP wants both) */
    sb_put(b, 0x16, 2, 2000);
    sb_put(b, 0x18, 1, 0x41);   /* socket populated, CPU enabled */
    sb_put(b, 0x19, 1, 0x01);   /* upgrade: other */
    sb_put(b, 0x1a, 2, 0xffff); /* no L1, L2, L3 cache information */
    sb_put(b, 0x1c, 2, 0xffff);
    sb_put(b, 0x1e, 2, 0xffff);
    sb_put(b, 0x23, 1, 1); /* cores, cores enabled, threads */
    sb_put(b, 0x24, 1, 1);
    sb_put(b, 0x25, 1, 1);
    sb_put(b, 0x26, 2, 1u << 2); /* 64-bit capable */
    sb_put(b, 0x28, 2, 0x01);    /* family 2: other */
    sb_put(b, 0x2a, 2, 1);       /* core count 2, core enabled 2, thread count 2 */
    sb_put(b, 0x2c, 2, 1);
    sb_put(b, 0x2e, 2, 1);
    sb_end(b);
}

static uint16_t build_type16(struct sbuf *b, uint64_t mem, unsigned ndimms)
{
    uint16_t h = sb_begin(b, 16, T16_LEN);
    sb_put(b, 0x04, 1, 0x03); /* location: system board */
    sb_put(b, 0x05, 1, 0x03); /* use: system memory */
    sb_put(b, 0x06, 1, 0x03); /* error correction: none */
    uint64_t kib = mem >> 10;
    if (kib < 0x80000000ULL) {
        sb_put(b, 0x07, 4, kib);
    } else { /* 2 TiB and more: the extended maximum capacity, in bytes */
        sb_put(b, 0x07, 4, 0x80000000u);
        sb_put(b, 0x0f, 8, mem);
    }
    sb_put(b, 0x0b, 2, 0xfffe); /* memory error information: not provided */
    sb_put(b, 0x0d, 2, ndimms);
    sb_end(b);
    return h;
}

static void build_type17(struct sbuf *b, uint16_t array, unsigned i, uint64_t size)
{
    char name[16];
    snprintf(name, sizeof(name), "DIMM %u", i);
    sb_begin(b, 17, T17_LEN);
    sb_put(b, 0x04, 2, array);
    sb_put(b, 0x06, 2, 0xfffe); /* memory error information: not provided */
    sb_put(b, 0x08, 2, 64);     /* total and data width, bits */
    sb_put(b, 0x0a, 2, 64);
    uint64_t mib = size / MIB;
    if (mib < 0x7fff) {
        sb_put(b, 0x0c, 2, mib);
    } else { /* 32 GiB - 1 MiB and more: the extended size, in MiB */
        sb_put(b, 0x0c, 2, 0x7fff);
        sb_put(b, 0x1c, 4, mib & 0x7fffffffu);
    }
    sb_put(b, 0x0e, 1, 0x09);    /* form factor: DIMM */
    sb_str(b, 0x10, name);       /* device locator */
    sb_put(b, 0x12, 1, 0x07);    /* memory type: RAM */
    sb_put(b, 0x13, 2, 1u << 1); /* type detail: other */
    sb_str(b, 0x17, HW_VENDOR);
    /* speeds, rank and voltages 0: unknown. */
    sb_end(b);
}

static void build_type19(struct sbuf *b, uint16_t array, uint64_t start, uint64_t size)
{
    uint64_t end = start + size - 1;
    sb_begin(b, 19, T19_LEN);
    if ((end >> 10) < 0xffffffffULL) {
        sb_put(b, 0x04, 4, start >> 10);
        sb_put(b, 0x08, 4, end >> 10);
    } else { /* at or over 4 TiB: the extended addresses, in bytes */
        sb_put(b, 0x04, 4, 0xffffffffu);
        sb_put(b, 0x08, 4, 0xffffffffu);
        sb_put(b, 0x0f, 8, start);
        sb_put(b, 0x17, 8, end);
    }
    sb_put(b, 0x0c, 2, array);
    sb_put(b, 0x0e, 1, 1); /* partition width, as QEMU */
    sb_end(b);
}

int smbios_build(const struct smbios_params *p, uint8_t anchor[SMBIOS_ANCHOR_LEN], uint8_t **tables,
                 size_t *tables_len)
{
    struct sbuf b = {0};
    uint8_t uuid[16] = {0};
    int r;

    if (!tables || !tables_len)
        return -EINVAL;
    *tables = NULL;
    *tables_len = 0;
    if (!p || !anchor || p->ncpus == 0 || p->ncpus > SMBIOS_MAX_CPUS || p->mem_bytes == 0 ||
        p->mem_bytes % MIB != 0)
        return -EINVAL;
    if (p->uuid && smbios_uuid_encode(p->uuid, uuid) < 0)
        return -EINVAL;
    if (!str_ok(p->manufacturer) || !str_ok(p->product) || !str_ok(p->version) ||
        !str_ok(p->family))
        return -EINVAL;
    uint64_t ndimms64 = (p->mem_bytes + SMBIOS_DIMM_MAX - 1) / SMBIOS_DIMM_MAX;
    /* Each type 17 takes more than 0x28 bytes: more devices than this cannot fit. */
    if (ndimms64 > SMBIOS_TABLES_MAX / T17_LEN)
        return -E2BIG;
    unsigned ndimms = (unsigned)ndimms64;

    build_type0(&b);
    build_type1(&b, p, uuid);
    build_type3(&b, p);
    for (unsigned i = 0; i < p->ncpus; i++)
        build_type4(&b, p, i);
    uint16_t array = build_type16(&b, p->mem_bytes, ndimms);
    uint64_t left = p->mem_bytes;
    for (unsigned i = 0; i < ndimms; i++) {
        uint64_t size = left < SMBIOS_DIMM_MAX ? left : SMBIOS_DIMM_MAX;
        build_type17(&b, array, i, size);
        left -= size;
    }
    struct guest_mem gm;
    gm_layout(&gm, p->mem_bytes);
    if (gm.low_size)
        build_type19(&b, array, 0, gm.low_size);
    if (gm.high_size)
        build_type19(&b, array, GM_HIGH_START, gm.high_size);
    sb_begin(&b, 32, T32_LEN); /* reserved bytes and boot status 0: no errors detected */
    sb_end(&b);
    sb_begin(&b, 127, T127_LEN);
    sb_end(&b);

    if (b.oom) {
        r = -ENOMEM;
        goto fail;
    }
    if (b.len > SMBIOS_TABLES_MAX) {
        r = -E2BIG;
        goto fail;
    }

    memset(anchor, 0, SMBIOS_ANCHOR_LEN);
    memcpy(anchor, "_SM3_", 5);
    anchor[0x06] = SMBIOS_ANCHOR_LEN;
    anchor[0x07] = 3; /* SMBIOS 3.0.0 */
    anchor[0x08] = 0;
    anchor[0x09] = 0;
    anchor[0x0a] = 0x01;                  /* entry point revision: 3.0 */
    kova_le_put(anchor + 0x0c, 4, b.len); /* structure table maximum size */
    /* 0x10: the table address, 0 until the firmware places the table. */
    uint8_t sum = 0;
    for (unsigned i = 0; i < SMBIOS_ANCHOR_LEN; i++)
        sum += anchor[i];
    anchor[0x05] = (uint8_t)-sum;

    *tables = b.p;
    *tables_len = b.len;
    return 0;

fail:
    free(b.p);
    return r;
}
