/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SMBIOS tables (vmm/src/smbios.h): structural checks of the entry point and every structure,
 * then the tables as a dmidecode dump (the --dump-bin format: the entry point at offset 0 with
 * its table address set to 32, the structure table at offset 32) decoded by the real dmidecode.
 * Usage: vmm-smbios-test DMIDECODE (its path; a missing dmidecode fails the test).
 */
#include "smbios.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kova/common.h"

#include "../common/kova_test.h"

#define MIB (1ULL << 20)
#define GIB (1ULL << 30)

static const char *const UUID = "4b5c8e2a-1f3d-4e6a-9b7c-0d1e2f3a4b5c";
/* UUID in SMBIOS wire order: time_low, time_mid, time_hi_and_version byte-swapped. */
static const uint8_t UUID_WIRE[16] = {0x2a, 0x8e, 0x5c, 0x4b, 0x3d, 0x1f, 0x6a, 0x4e,
                                      0x9b, 0x7c, 0x0d, 0x1e, 0x2f, 0x3a, 0x4b, 0x5c};

/* ---- a parser of the structure table, independent of the builder ---- */

struct st {
    const uint8_t *p; /* formatted area */
    uint8_t type, len;
    uint16_t handle;
    unsigned nstr;
    const char *str[16]; /* str[1..nstr] */
};

#define MAX_ST 600

struct parsed {
    struct st s[MAX_ST];
    unsigned n;
    bool ok; /* walked to the end exactly, every structure well formed */
};

/* Formatted length SMBIOS 3.0 gives each type kova emits, and the offsets of its string fields. */
static int expected_len(uint8_t type)
{
    switch (type) {
    case 0:
        return 0x18;
    case 1:
        return 0x1b;
    case 3:
        return 0x16;
    case 4:
        return 0x30;
    case 16:
        return 0x17;
    case 17:
        return 0x28;
    case 19:
        return 0x1f;
    case 32:
        return 0x0b;
    case 127:
        return 0x04;
    }
    return -1;
}

static const uint8_t *string_fields(uint8_t type, unsigned *n)
{
    static const uint8_t t0[] = {0x04, 0x05, 0x08}, t1[] = {0x04, 0x05, 0x06, 0x07, 0x19, 0x1a},
                         t3[] = {0x04, 0x06, 0x07, 0x08, 0x15},
                         t4[] = {0x04, 0x07, 0x10, 0x20, 0x21, 0x22},
                         t17[] = {0x10, 0x11, 0x17, 0x18, 0x19, 0x1a};
    switch (type) {
    case 0:
        *n = sizeof(t0);
        return t0;
    case 1:
        *n = sizeof(t1);
        return t1;
    case 3:
        *n = sizeof(t3);
        return t3;
    case 4:
        *n = sizeof(t4);
        return t4;
    case 17:
        *n = sizeof(t17);
        return t17;
    }
    *n = 0;
    return NULL;
}

static void parse(const uint8_t *t, size_t len, struct parsed *out)
{
    size_t off = 0;
    memset(out, 0, sizeof(*out));
    out->ok = true;
    while (off < len) {
        if (out->n == MAX_ST || len - off < 4) {
            fprintf(stderr, "structure %u at %zu: truncated header\n", out->n, off);
            out->ok = false;
            return;
        }
        struct st *s = &out->s[out->n];
        s->p = t + off;
        s->type = t[off];
        s->len = t[off + 1];
        s->handle = (uint16_t)kova_le_get(t + off + 2, 2);
        if (s->len < 4 || s->len > len - off) {
            fprintf(stderr, "structure %u (type %u): bad length %u\n", out->n, s->type, s->len);
            out->ok = false;
            return;
        }
        /* The string set: NUL-terminated strings, then one more NUL (two NULs if empty). */
        size_t q = off + s->len;
        if (q + 1 < len && t[q] == 0 && t[q + 1] == 0) {
            q += 2;
        } else {
            while (q < len && t[q] != 0) {
                if (s->nstr + 1 >= 16) {
                    out->ok = false;
                    return;
                }
                s->str[++s->nstr] = (const char *)t + q;
                while (q < len && t[q] != 0)
                    q++;
                q++; /* its NUL */
            }
            if (q >= len || s->nstr == 0) {
                fprintf(stderr, "structure %u (type %u): unterminated string set\n", out->n,
                        s->type);
                out->ok = false;
                return;
            }
            q++; /* the set's terminating NUL */
        }
        out->n++;
        off = q;
        if (s->type == 127)
            break;
    }
    if (off != len) {
        fprintf(stderr, "table: %zu bytes after the walk ended at %zu\n", len, off);
        out->ok = false;
    }
}

static const char *get_str(const struct st *s, uint8_t field)
{
    uint8_t i = s->p[field];
    return i == 0 || i > s->nstr ? NULL : s->str[i];
}

static unsigned count_type(const struct parsed *ps, uint8_t type)
{
    unsigned n = 0;
    for (unsigned i = 0; i < ps->n; i++)
        n += ps->s[i].type == type;
    return n;
}

static const struct st *find_type(const struct parsed *ps, uint8_t type, unsigned nth)
{
    for (unsigned i = 0; i < ps->n; i++)
        if (ps->s[i].type == type && nth-- == 0)
            return &ps->s[i];
    return NULL;
}

/* Checks what holds for every table: entry point, lengths, strings, handles, the end. */
static void check_structure(const uint8_t *anchor, const uint8_t *t, size_t len,
                            const struct parsed *ps)
{
    uint8_t sum = 0;
    for (unsigned i = 0; i < SMBIOS_ANCHOR_LEN; i++)
        sum += anchor[i];
    CHECK(memcmp(anchor, "_SM3_", 5) == 0);
    CHECK(sum == 0);
    CHECK(anchor[0x06] == SMBIOS_ANCHOR_LEN);
    CHECK(anchor[0x07] == 3 && anchor[0x08] == 0 && anchor[0x09] == 0);
    CHECK(anchor[0x0a] == 1 && anchor[0x0b] == 0);
    CHECK(kova_le_get(anchor + 0x0c, 4) == len);
    CHECK(kova_le_get(anchor + 0x10, 8) == 0);
    CHECK(len <= SMBIOS_TABLES_MAX);

    CHECK(ps->ok);
    CHECK(ps->n >= 9);
    if (!ps->ok || ps->n == 0)
        return;
    CHECK(ps->s[0].type == 0);
    CHECK(ps->s[ps->n - 1].type == 127);
    CHECK(count_type(ps, 127) == 1);
    CHECK(count_type(ps, 0) == 1 && count_type(ps, 1) == 1 && count_type(ps, 3) == 1);
    CHECK(count_type(ps, 16) == 1 && count_type(ps, 32) == 1);
    for (unsigned i = 0; i < ps->n; i++) {
        const struct st *s = &ps->s[i];
        int want = expected_len(s->type);
        if (want < 0 || s->len != want) {
            fprintf(stderr, "structure %u: type %u length %u, want %d\n", i, s->type, s->len, want);
            failures++;
        }
        if (i > 0 && s->handle <= ps->s[i - 1].handle) {
            fprintf(stderr, "structure %u: handle %#x not above %#x\n", i, s->handle,
                    ps->s[i - 1].handle);
            failures++;
        }
        CHECK(s->handle < 0xfeff); /* 0xff00.. are reserved */
        unsigned nf;
        const uint8_t *f = string_fields(s->type, &nf);
        unsigned used = 0;
        for (unsigned k = 0; k < nf; k++) {
            uint8_t idx = s->p[f[k]];
            if (idx > s->nstr) {
                fprintf(stderr, "structure %u (type %u): string %u of %u at %#x\n", i, s->type, idx,
                        s->nstr, f[k]);
                failures++;
            }
            if (idx)
                used++;
        }
        CHECK(used == s->nstr); /* no unreferenced strings */
        for (unsigned k = 1; k <= s->nstr; k++)
            CHECK(strlen(s->str[k]) > 0);
    }
    (void)t;
}

static int build(const struct smbios_params *p, uint8_t *anchor, uint8_t **t, size_t *len,
                 struct parsed *ps)
{
    int r = smbios_build(p, anchor, t, len);
    if (r == 0) {
        parse(*t, *len, ps);
        check_structure(anchor, *t, *len, ps);
    }
    return r;
}

/* ---- structural tests ---- */

static void test_type01(void)
{
    struct smbios_params p = {.uuid = UUID, .ncpus = 1, .mem_bytes = 256 * MIB};
    uint8_t anchor[SMBIOS_ANCHOR_LEN];
    uint8_t *t;
    size_t len;
    static struct parsed ps;

    CHECK(build(&p, anchor, &t, &len, &ps) == 0);
    const struct st *s0 = find_type(&ps, 0, 0), *s1 = find_type(&ps, 1, 0),
                    *s3 = find_type(&ps, 3, 0), *s32 = find_type(&ps, 32, 0);
    CHECK(s0 && s1 && s3 && s32);
    if (s0 && s1 && s3 && s32) {
        CHECK(get_str(s0, 0x04) && strcmp(get_str(s0, 0x04), "kova") == 0);
        CHECK(get_str(s0, 0x05) != NULL);
        const char *date = get_str(s0, 0x08);
        CHECK(date && strlen(date) == 10 && date[2] == '/' && date[5] == '/');
        CHECK(kova_le_get(s0->p + 0x0a, 8) == 0x08); /* characteristics not supported */
        CHECK(s0->p[0x13] & 0x10);                   /* virtual machine */
        CHECK(s0->p[0x13] & 0x04);                   /* targeted content distribution */

        CHECK(strcmp(get_str(s1, 0x04), "OpenStack Foundation") == 0);
        CHECK(strcmp(get_str(s1, 0x05), "OpenStack Nova") == 0);
        CHECK(get_str(s1, 0x06) == NULL); /* no version by default */
        CHECK(strcmp(get_str(s1, 0x07), UUID) == 0);
        CHECK(memcmp(s1->p + 0x08, UUID_WIRE, 16) == 0);
        CHECK(s1->p[0x18] == 0x06);
        CHECK(get_str(s1, 0x19) == NULL);
        CHECK(strcmp(get_str(s1, 0x1a), "Virtual Machine") == 0);

        CHECK(s3->p[0x05] == 0x01);
        CHECK(get_str(s3, 0x04) && strcmp(get_str(s3, 0x04), "OpenStack Foundation") == 0);
        CHECK(s32->p[0x0a] == 0);
    }
    free(t);

    /* Overrides, an upper-case UUID (its text is the serial as given), "" = not specified. */
    p.uuid = "4B5C8E2A-1F3D-4E6A-9B7C-0D1E2F3A4B5C";
    p.manufacturer = "Example";
    p.product = "Other Product";
    p.version = "27.1.0";
    p.family = "";
    CHECK(build(&p, anchor, &t, &len, &ps) == 0);
    s1 = find_type(&ps, 1, 0);
    CHECK(s1 != NULL);
    if (s1) {
        CHECK(strcmp(get_str(s1, 0x04), "Example") == 0);
        CHECK(strcmp(get_str(s1, 0x05), "Other Product") == 0);
        CHECK(strcmp(get_str(s1, 0x06), "27.1.0") == 0);
        CHECK(strcmp(get_str(s1, 0x07), p.uuid) == 0);
        CHECK(memcmp(s1->p + 0x08, UUID_WIRE, 16) == 0);
        CHECK(get_str(s1, 0x1a) == NULL);
    }
    free(t);

    /* No UUID: all-zero UUID, no serial. */
    struct smbios_params q = {.ncpus = 1, .mem_bytes = 256 * MIB};
    static const uint8_t zero[16];
    CHECK(build(&q, anchor, &t, &len, &ps) == 0);
    s1 = find_type(&ps, 1, 0);
    CHECK(s1 && memcmp(s1->p + 0x08, zero, 16) == 0 && get_str(s1, 0x07) == NULL);
    free(t);

    uint8_t w[16];
    CHECK(smbios_uuid_encode(UUID, w) == 0 && memcmp(w, UUID_WIRE, 16) == 0);
}

static void test_cpus(void)
{
    static const unsigned counts[] = {1, 2, 4, 255};
    static struct parsed ps;
    for (unsigned k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
        struct smbios_params p = {.uuid = UUID,
                                  .ncpus = counts[k],
                                  .mem_bytes = 512 * MIB,
                                  .cpuid_1_eax = 0x000906ea,
                                  .cpuid_1_edx = 0x0f8bfbff};
        uint8_t anchor[SMBIOS_ANCHOR_LEN];
        uint8_t *t;
        size_t len;
        CHECK(build(&p, anchor, &t, &len, &ps) == 0);
        CHECK(count_type(&ps, 4) == counts[k]);
        for (unsigned i = 0; i < counts[k]; i++) {
            const struct st *s = find_type(&ps, 4, i);
            if (!s) {
                failures++;
                break;
            }
            char name[16];
            snprintf(name, sizeof(name), "CPU %u", i);
            CHECK(get_str(s, 0x04) && strcmp(get_str(s, 0x04), name) == 0);
            CHECK(s->p[0x05] == 0x03);
            CHECK(s->p[0x18] == 0x41);
            CHECK(s->p[0x23] == 1 && s->p[0x24] == 1 && s->p[0x25] == 1);
            CHECK(kova_le_get(s->p + 0x2a, 2) == 1 && kova_le_get(s->p + 0x2e, 2) == 1);
            CHECK(kova_le_get(s->p + 0x08, 4) == 0x000906ea);
            CHECK(kova_le_get(s->p + 0x0c, 4) == 0x0f8bfbff);
        }
        free(t);
    }
}

static uint64_t t17_bytes(const struct st *s)
{
    uint64_t v = kova_le_get(s->p + 0x0c, 2);
    if (v == 0x7fff)
        return (kova_le_get(s->p + 0x1c, 4) & 0x7fffffffu) * MIB;
    if (v & 0x8000)
        return (v & 0x7fff) << 10;
    return v * MIB;
}

static void test_memory(void)
{
    static const uint64_t sizes[] = {128 * MIB, 3 * GIB, 40 * GIB, 3 * GIB + MIB, 4096 * GIB};
    static struct parsed ps;
    for (unsigned k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        uint64_t mem = sizes[k];
        struct smbios_params p = {.uuid = UUID, .ncpus = 2, .mem_bytes = mem};
        uint8_t anchor[SMBIOS_ANCHOR_LEN];
        uint8_t *t;
        size_t len;
        CHECK(build(&p, anchor, &t, &len, &ps) == 0);
        const struct st *a = find_type(&ps, 16, 0);
        unsigned n17 = count_type(&ps, 17);
        CHECK(a != NULL);
        CHECK(n17 == (mem + (16 * GIB) - 1) / (16 * GIB));
        if (a) {
            CHECK(a->p[0x05] == 0x03); /* system memory */
            uint64_t cap = kova_le_get(a->p + 0x07, 4);
            if (cap == 0x80000000u)
                CHECK(kova_le_get(a->p + 0x0f, 8) == mem);
            else
                CHECK(cap * 1024 == mem);
            CHECK(kova_le_get(a->p + 0x0d, 2) == n17);
        }
        uint64_t sum = 0;
        for (unsigned i = 0; i < n17; i++) {
            const struct st *s = find_type(&ps, 17, i);
            CHECK(a && kova_le_get(s->p + 0x04, 2) == a->handle);
            uint64_t b = t17_bytes(s);
            CHECK(b > 0 && b <= 16 * GIB);
            sum += b;
        }
        CHECK(sum == mem);
        /* Type 19: RAM below 3 GiB from 0, the rest from 4 GiB (mem.h). */
        uint64_t mapped = 0;
        for (unsigned i = 0; i < count_type(&ps, 19); i++) {
            const struct st *s = find_type(&ps, 19, i);
            uint64_t lo = kova_le_get(s->p + 0x04, 4), hi = kova_le_get(s->p + 0x08, 4);
            uint64_t start, end;
            if (lo == 0xffffffffu) {
                start = kova_le_get(s->p + 0x0f, 8);
                end = kova_le_get(s->p + 0x17, 8) + 1;
            } else {
                start = lo << 10;
                end = (hi + 1) << 10;
            }
            CHECK(start == (i == 0 ? 0 : 4 * GIB));
            CHECK(i == 0 ? end <= 3 * GIB : true);
            CHECK(a && kova_le_get(s->p + 0x0c, 2) == a->handle);
            mapped += end - start;
        }
        CHECK(count_type(&ps, 19) == (mem > 3 * GIB ? 2u : 1u));
        CHECK(mapped == mem);
        free(t);
    }
}

static void test_bad_params(void)
{
    uint8_t anchor[SMBIOS_ANCHOR_LEN], before[SMBIOS_ANCHOR_LEN];
    uint8_t *t = (uint8_t *)1;
    size_t len = 1;
    struct smbios_params good = {.uuid = UUID, .ncpus = 1, .mem_bytes = 128 * MIB};
    struct smbios_params p;
    char longstr[SMBIOS_STR_MAX + 2];

    memset(anchor, 0xa5, sizeof(anchor));
    memcpy(before, anchor, sizeof(anchor));
    p = good;
    p.ncpus = 0;
    CHECK(smbios_build(&p, anchor, &t, &len) == -EINVAL);
    CHECK(t == NULL && len == 0);
    CHECK(memcmp(anchor, before, sizeof(anchor)) == 0);
    p.ncpus = SMBIOS_MAX_CPUS + 1;
    CHECK(smbios_build(&p, anchor, &t, &len) == -EINVAL);

    static const char *const bad_uuids[] = {
        "",
        "nope",
        "4b5c8e2a-1f3d-4e6a-9b7c-0d1e2f3a4b5",   /* 35 */
        "4b5c8e2a-1f3d-4e6a-9b7c-0d1e2f3a4b5c0", /* 37 */
        "4b5c8e2a-1f3d-4e6a-9b7c-0d1e2f3a4b5g",  /* not hex */
        "4b5c8e2a1f3d-4e6a-9b7c-0d1e2f3a4b5c0",  /* dash moved */
        "{b5c8e2a-1f3d-4e6a-9b7c-0d1e2f3a4b5}",
        "4b5c8e2a-1f3d-4e6a-9b7c 0d1e2f3a4b5c",
    };
    for (unsigned i = 0; i < sizeof(bad_uuids) / sizeof(bad_uuids[0]); i++) {
        p = good;
        p.uuid = bad_uuids[i];
        if (smbios_build(&p, anchor, &t, &len) != -EINVAL) {
            fprintf(stderr, "uuid \"%s\" was accepted\n", bad_uuids[i]);
            failures++;
        }
        uint8_t w[16];
        CHECK(smbios_uuid_encode(bad_uuids[i], w) == -EINVAL);
    }
    CHECK(smbios_uuid_encode(NULL, anchor) == -EINVAL);

    p = good;
    p.mem_bytes = 0;
    CHECK(smbios_build(&p, anchor, &t, &len) == -EINVAL);
    p.mem_bytes = 128 * MIB + 4096;
    CHECK(smbios_build(&p, anchor, &t, &len) == -EINVAL);
    p = good;
    memset(longstr, 'x', sizeof(longstr) - 1);
    longstr[sizeof(longstr) - 1] = 0;
    p.version = longstr;
    CHECK(smbios_build(&p, anchor, &t, &len) == -EINVAL);
    longstr[SMBIOS_STR_MAX] = 0; /* exactly the limit is fine */
    CHECK(smbios_build(&p, anchor, &t, &len) == 0);
    free(t);
    CHECK(smbios_build(NULL, anchor, &t, &len) == -EINVAL);
    CHECK(smbios_build(&good, NULL, &t, &len) == -EINVAL);
    CHECK(smbios_build(&good, anchor, NULL, &len) == -EINVAL);
    CHECK(smbios_build(&good, anchor, &t, NULL) == -EINVAL);

    /* 64 TiB: 4096 memory devices do not fit SeaBIOS's 64 KiB table. */
    p = good;
    p.mem_bytes = 64ULL << 40;
    memcpy(anchor, before, sizeof(anchor));
    CHECK(smbios_build(&p, anchor, &t, &len) == -E2BIG);
    CHECK(t == NULL && len == 0);
    CHECK(memcmp(anchor, before, sizeof(anchor)) == 0);
}

/* ---- dmidecode, the real peer ---- */

static const char *dmidecode;

/* The --dump-bin layout: the entry point with its table address at 32, the table at 32. */
static int write_dump(const char *path, const uint8_t *anchor, const uint8_t *t, size_t len)
{
    uint8_t head[32] = {0};
    memcpy(head, anchor, SMBIOS_ANCHOR_LEN);
    uint8_t old = head[0x10];
    head[0x10] = 32;
    head[0x05] = (uint8_t)(head[0x05] - (32 - old)); /* keep the checksum right */
    FILE *f = fopen(path, "wb");
    if (!f)
        return -errno;
    int ok = fwrite(head, 1, sizeof(head), f) == sizeof(head) && fwrite(t, 1, len, f) == len;
    return fclose(f) == 0 && ok ? 0 : -EIO;
}

/* Runs dmidecode --from-dump dump ARGS, stdout and stderr together; malloc'd, NULL on failure. */
static char *run_dmidecode(const char *dump, const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "'%s' --from-dump '%s' %s 2>&1", dmidecode, dump, args);
    FILE *f = popen(cmd, "r");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *out = malloc(cap);
    size_t got;
    while (out && (got = fread(out + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n < 2) {
            char *q = realloc(out, cap * 2);
            if (!q) {
                free(out);
                out = NULL;
                break;
            }
            out = q;
            cap *= 2;
        }
    }
    int st = pclose(f);
    if (!out)
        return NULL;
    out[n] = 0;
    if (st != 0) {
        fprintf(stderr, "%s: exit status %d:\n%s\n", cmd, st, out);
        free(out);
        return NULL;
    }
    return out;
}

static unsigned count_str(const char *hay, const char *needle)
{
    unsigned n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static bool has_line(const char *out, const char *line)
{
    const char *p = strcasestr(out, line);
    return p && (p[strlen(line)] == '\n' || p[strlen(line)] == 0);
}

/* No complaints from dmidecode about the entry point, the table or a structure, and "Unknown"
 * only as the value of the fields kova leaves 0 ("unknown" in SMBIOS, as QEMU does): no unknown
 * structure type or enumeration value. */
static void check_no_complaints(const char *out, const char *what)
{
    static const char *const bad[] = {
        "Invalid", "checksum", "Wrong",  "OUT OF SPEC", "TRUNCATED",           "OEM-specific",
        "Bad",     "broken",   "Failed", "sorry",       "not fully supported", "No SMBIOS nor DMI"};
    static const char *const unknown_ok[] = {"\tVoltage: Unknown",
                                             "\tExternal Clock: Unknown",
                                             "\tSpeed: Unknown",
                                             "\tRank: Unknown",
                                             "\tConfigured Memory Speed: Unknown",
                                             "\tMinimum Voltage: Unknown",
                                             "\tMaximum Voltage: Unknown",
                                             "\tConfigured Voltage: Unknown"};
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (strcasestr(out, bad[i])) {
            fprintf(stderr, "dmidecode %s: reports \"%s\":\n%s\n", what, bad[i], out);
            failures++;
        }
    for (const char *line = out; *line;) {
        const char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        char buf[256];
        snprintf(buf, sizeof(buf), "%.*s", (int)n, line);
        if (strcasestr(buf, "unknown")) {
            bool ok = false;
            for (unsigned i = 0; i < sizeof(unknown_ok) / sizeof(unknown_ok[0]); i++)
                ok |= strcmp(buf, unknown_ok[i]) == 0;
            if (!ok) {
                fprintf(stderr, "dmidecode %s: unexpected \"%s\"\n", what, buf);
                failures++;
            }
        }
        line += n + (nl ? 1 : 0);
    }
}

/* Sum of the "Size:" lines of dmidecode -t 17 in bytes; -1 on a line it cannot read. */
static int64_t dmi_mem_sum(const char *out, unsigned *devices)
{
    int64_t sum = 0;
    *devices = 0;
    for (const char *p = out; (p = strstr(p, "\tSize: ")) != NULL; p++) {
        unsigned long long v;
        char unit[8];
        if (sscanf(p, "\tSize: %llu %7s", &v, unit) != 2)
            return -1;
        uint64_t mul = strcmp(unit, "kB") == 0   ? 1ULL << 10
                       : strcmp(unit, "MB") == 0 ? MIB
                       : strcmp(unit, "GB") == 0 ? GIB
                       : strcmp(unit, "TB") == 0 ? 1ULL << 40
                                                 : 0;
        if (!mul)
            return -1;
        sum += (int64_t)(v * mul);
        (*devices)++;
    }
    return sum;
}

static void test_dmidecode(const char *dir)
{
    if (access(dmidecode, X_OK) != 0) {
        fprintf(stderr,
                "dmidecode not found at \"%s\": install Debian's dmidecode "
                "(deploy/install-deps.sh)\n",
                dmidecode);
        failures++;
        return;
    }
    static const struct {
        unsigned ncpus;
        uint64_t mem;
    } cfgs[] = {{1, 128 * MIB}, {2, 3 * GIB}, {4, 40 * GIB}};
    for (unsigned k = 0; k < sizeof(cfgs) / sizeof(cfgs[0]); k++) {
        struct smbios_params p = {
            .uuid = UUID, .ncpus = cfgs[k].ncpus, .mem_bytes = cfgs[k].mem, .version = "27.1.0"};
        uint8_t anchor[SMBIOS_ANCHOR_LEN];
        uint8_t *t;
        size_t len;
        if (smbios_build(&p, anchor, &t, &len) != 0) {
            failures++;
            continue;
        }
        const char *dump = kt_path(dir, "dump.bin");
        CHECK(write_dump(dump, anchor, t, len) == 0);
        static struct parsed ps;
        parse(t, len, &ps);

        char *o1 = run_dmidecode(dump, "-t 1");
        CHECK(o1 != NULL);
        if (o1) {
            char line[128];
            CHECK(has_line(o1, "\tManufacturer: OpenStack Foundation"));
            CHECK(has_line(o1, "\tProduct Name: OpenStack Nova"));
            CHECK(has_line(o1, "\tVersion: 27.1.0"));
            CHECK(has_line(o1, "\tFamily: Virtual Machine"));
            CHECK(has_line(o1, "\tWake-up Type: Power Switch"));
            snprintf(line, sizeof(line), "\tSerial Number: %s", UUID);
            CHECK(has_line(o1, line));
            snprintf(line, sizeof(line), "\tUUID: %s", UUID); /* case-insensitive */
            CHECK(has_line(o1, line));
            CHECK(strstr(o1, "SMBIOS 3.0.0 present.") != NULL);
            check_no_complaints(o1, "-t 1");
            if (k == 0)
                printf("dmidecode --from-dump DUMP -t 1:\n%s", o1);
        }
        free(o1);

        char *o4 = run_dmidecode(dump, "-t 4");
        CHECK(o4 != NULL);
        if (o4) {
            CHECK(count_str(o4, "Processor Information") == cfgs[k].ncpus);
            CHECK(count_str(o4, "\tStatus: Populated, Enabled") == cfgs[k].ncpus);
            CHECK(count_str(o4, "\tType: Central Processor") == cfgs[k].ncpus);
            CHECK(count_str(o4, "\tCore Count: 1\n") == cfgs[k].ncpus);
            CHECK(count_str(o4, "\tThread Count: 1\n") == cfgs[k].ncpus);
            for (unsigned i = 0; i < cfgs[k].ncpus; i++) {
                char line[64];
                snprintf(line, sizeof(line), "\tSocket Designation: CPU %u", i);
                CHECK(has_line(o4, line));
            }
            check_no_complaints(o4, "-t 4");
        }
        free(o4);

        char *o17 = run_dmidecode(dump, "-t 17");
        CHECK(o17 != NULL);
        if (o17) {
            unsigned n;
            int64_t sum = dmi_mem_sum(o17, &n);
            if (sum != (int64_t)cfgs[k].mem || n != count_type(&ps, 17)) {
                fprintf(stderr, "dmidecode -t 17: %u devices, %lld bytes; want %u, %llu:\n%s\n", n,
                        (long long)sum, count_type(&ps, 17), (unsigned long long)cfgs[k].mem, o17);
                failures++;
            }
            check_no_complaints(o17, "-t 17");
        }
        free(o17);

        char *all = run_dmidecode(dump, "");
        CHECK(all != NULL);
        if (all) {
            CHECK(strstr(all, "SMBIOS 3.0.0 present.") != NULL);
            CHECK(count_str(all, "\nHandle 0x") == ps.n);
            CHECK(strstr(all, "End Of Table") != NULL);
            CHECK(strstr(all, "BIOS Information") && strstr(all, "\tVendor: kova\n"));
            CHECK(strstr(all, "\tSystem is a virtual machine\n") != NULL);
            CHECK(strstr(all, "Chassis Information") && strstr(all, "\tType: Other\n"));
            CHECK(strstr(all, "Physical Memory Array") != NULL);
            CHECK(count_str(all, "Memory Array Mapped Address") == count_type(&ps, 19));
            CHECK(strstr(all, "System Boot Information") &&
                  strstr(all, "\tStatus: No errors detected\n"));
            check_no_complaints(all, "(all)");
            if (k == sizeof(cfgs) / sizeof(cfgs[0]) - 1 && getenv("KOVA_SMBIOS_VERBOSE"))
                printf("%s", all);
        }
        free(all);

        free(t);
    }
}

int main(int argc, char **argv)
{
    char dir[64];
    dmidecode = argc > 1 ? argv[1] : "/usr/sbin/dmidecode";
    kt_mkdtemp(dir, sizeof(dir), "kova-smbios");
    test_type01();
    test_cpus();
    test_memory();
    test_bad_params();
    test_dmidecode(dir);
    kt_rm_tree(dir);
    return kt_finish("vmm.smbios");
}
