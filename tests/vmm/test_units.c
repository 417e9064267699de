/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of kova-vmm's pure parts: bus, guest memory, boot parameters and e820, ACPI tables,
 * UART, i8042, CMOS, PCI config space, virtio-pci + virtqueue validation, control lines. */
#include "acpi.h"
#include "boot.h"
#include "bus.h"
#include "firmware.h"
#include "fw_cfg.h"
#include "kova/vmm_control.h"
#include "legacy.h"
#include "mem.h"
#include "pci.h"
#include "platform.h"
#include "serial.h"
#include "virtio_pci.h"
#include "virtq.h"
#include "vm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/kova_test.h"

static uint64_t rd(const uint8_t *p, unsigned n)
{
    return kova_le_get(p, n);
}

/* ---- bus ---- */

struct fake_dev {
    uint64_t last_off;
    uint32_t last_size;
    uint8_t last_data[8];
    int reads, writes;
};

static void fake_read(void *o, uint64_t off, uint8_t *d, uint32_t size)
{
    struct fake_dev *f = o;
    f->reads++;
    f->last_off = off;
    f->last_size = size;
    for (uint32_t i = 0; i < size; i++)
        d[i] = (uint8_t)(0x10 + off + i);
}
static void fake_write(void *o, uint64_t off, const uint8_t *d, uint32_t size)
{
    struct fake_dev *f = o;
    f->writes++;
    f->last_off = off;
    f->last_size = size;
    memcpy(f->last_data, d, size);
}
static const struct bus_ops fake_ops = {fake_read, fake_write};

static void test_bus(void)
{
    struct bus b;
    struct fake_dev a = {0}, c = {0};
    bus_init(&b, "test");
    CHECK(bus_register(&b, 0x100, 8, &fake_ops, &a, "a") == 0);
    CHECK(bus_register(&b, 0x200, 0x100, &fake_ops, &c, "c") == 0);
    CHECK(bus_register(&b, 0x104, 8, &fake_ops, &c, "overlap") == -EEXIST);
    CHECK(bus_register(&b, 0xf0, 0x11, &fake_ops, &c, "overlap2") == -EEXIST);
    CHECK(bus_register(&b, 0x1ff, 2, &fake_ops, &c, "overlap3") == -EEXIST);
    CHECK(bus_register(&b, 0x50, 0, &fake_ops, &c, "empty") == -EINVAL);
    CHECK(bus_register(&b, UINT64_MAX - 2, 8, &fake_ops, &c, "wraps") == -EINVAL);
    CHECK(bus_register(&b, 0x108, 8, &fake_ops, &c, "adjacent") == 0);

    uint8_t d[8];
    CHECK(bus_read(&b, 0x102, d, 2) == 0 && a.last_off == 2 && a.last_size == 2 && d[0] == 0x12);
    CHECK(bus_read(&b, 0x250, d, 4) == 0 && c.last_off == 0x50);
    /* An access that straddles the end of a range is not given to the device. */
    a.reads = 0;
    CHECK(bus_read(&b, 0x106, d, 4) == -ENOENT && a.reads == 0);
    CHECK(d[0] == 0xff && d[3] == 0xff);
    CHECK(bus_read(&b, 0x2ff, d, 2) == -ENOENT);
    CHECK(bus_read(&b, 0x5000, d, 1) == -ENOENT);
    CHECK(bus_read(&b, 0x100, d, 0) == -EINVAL);
    CHECK(bus_read(&b, 0x100, d, 9) == -EINVAL);
    uint8_t w[4] = {1, 2, 3, 4};
    CHECK(bus_write(&b, 0x2fc, w, 4) == 0 && c.last_off == 0xfc && c.last_data[3] == 4);
    CHECK(bus_write(&b, 0x2fd, w, 4) == -ENOENT);
    CHECK(bus_write(&b, UINT64_MAX, w, 4) == -ENOENT);
    CHECK(atomic_load(&b.unknown_reads) == 3 && atomic_load(&b.unknown_writes) == 2);
    CHECK(atomic_load(&b.bad_size) == 2);
    bus_destroy(&b);
}

/* ---- guest memory ---- */

static void test_mem(void)
{
    struct guest_mem gm;
    gm_layout(&gm, 256ULL << 20);
    CHECK(gm.low_size == 256ULL << 20 && gm.high_size == 0);
    gm_layout(&gm, 4ULL << 30);
    CHECK(gm.low_size == GM_GAP_START && gm.high_size == (1ULL << 30));

    CHECK(gm_alloc(&gm, 3ULL << 30 | 64ULL << 20) == 0);
    CHECK(gm_ptr(&gm, 0, 16) == gm.host);
    CHECK(gm_ptr(&gm, GM_GAP_START - 8, 8) != NULL);
    CHECK(gm_ptr(&gm, GM_GAP_START - 8, 9) == NULL); /* runs into the gap */
    CHECK(gm_ptr(&gm, GM_GAP_START, 1) == NULL);
    CHECK(gm_ptr(&gm, 0xfee00000, 4) == NULL);
    CHECK(gm_ptr(&gm, GM_HIGH_START, 4) == gm.host + gm.low_size);
    CHECK(gm_ptr(&gm, GM_HIGH_START + (64ULL << 20) - 4, 4) != NULL);
    CHECK(gm_ptr(&gm, GM_HIGH_START + (64ULL << 20) - 4, 5) == NULL);
    CHECK(gm_ptr(&gm, UINT64_MAX - 3, 8) == NULL);
    CHECK(gm_ptr(&gm, 16, UINT64_MAX) == NULL);
    uint32_t v = 0x12345678, back = 0;
    CHECK(gm_write(&gm, 0x1000, &v, 4) == 0 && gm_read(&gm, 0x1000, &back, 4) == 0 && back == v);
    CHECK(gm_write(&gm, GM_GAP_START - 2, &v, 4) == -EFAULT);
    gm_free(&gm);
    CHECK(gm_alloc(&gm, 0) == -EINVAL);
}

/* ---- boot ---- */

static uint8_t *fake_bzimage(size_t size)
{
    uint8_t *k = calloc(1, size);
    k[0x1f1] = 1; /* setup_sects: setup = 2 * 512 bytes */
    k[0x1fe] = 0x55;
    k[0x1ff] = 0xaa;
    k[0x200] = 0xeb;
    k[0x201] = 0x6a; /* header ends at 0x26c */
    memcpy(k + 0x202, "HdrS", 4);
    kova_le_put(k + 0x206, 2, 0x020f);
    k[0x211] = 0x01;
    kova_le_put(k + 0x22c, 4, 0x7fffffff);
    k[0x234] = 1;
    kova_le_put(k + 0x236, 2, 0x7f);
    kova_le_put(k + 0x238, 4, 2047);
    kova_le_put(k + 0x258, 8, 0x1000000);
    kova_le_put(k + 0x260, 4, 0x800000);
    for (size_t i = 0x400; i < size; i++)
        k[i] = (uint8_t)i;
    return k;
}

static void test_boot(void)
{
    const char *why = NULL;
    struct bzimage k;
    uint8_t junk[8192] = {0};
    CHECK(bzimage_parse(junk, sizeof(junk), &k, &why) == -ENOEXEC && why);
    CHECK(bzimage_parse(junk, 100, &k, &why) == -ENOEXEC);

    size_t ksz = 64 * 1024;
    uint8_t *img = fake_bzimage(ksz);
    CHECK(bzimage_parse(img, ksz, &k, &why) == 0);
    CHECK(k.version == 0x020f && k.setup_size == 1024 && k.pref_address == 0x1000000);
    CHECK(k.init_size == 0x800000 && k.cmdline_size == 2047);
    kova_le_put(img + 0x236, 2, 0);
    CHECK(bzimage_parse(img, ksz, &k, &why) == -ENOEXEC); /* no 64-bit entry */
    kova_le_put(img + 0x236, 2, 0x7f);
    kova_le_put(img + 0x206, 2, 0x0209);
    CHECK(bzimage_parse(img, ksz, &k, &why) == -ENOEXEC); /* too old */
    kova_le_put(img + 0x206, 2, 0x020f);
    img[0x1f1] = 200; /* setup larger than the file */
    CHECK(bzimage_parse(img, ksz, &k, &why) == -ENOEXEC);
    img[0x1f1] = 1;
    CHECK(bzimage_parse(img, ksz, &k, &why) == 0);

    struct guest_mem gm;
    CHECK(gm_alloc(&gm, 64ULL << 20) == 0);
    size_t rdsz = 3 << 20;
    uint8_t *initrd = malloc(rdsz);
    memset(initrd, 0xab, rdsz);
    struct boot_result res;
    CHECK(boot_load(&gm, &k, initrd, rdsz, "console=ttyS0 quiet", 0xe0000, &res, &why) == 0);
    uint8_t *zp = gm_ptr(&gm, BOOT_ZERO_PAGE, 4096);
    CHECK(res.entry == 0x1000200 && res.zero_page == BOOT_ZERO_PAGE);
    CHECK(memcmp(gm_ptr(&gm, 0x1000000, 16), img + 1024, 16) == 0);
    CHECK(memcmp(zp + 0x202, "HdrS", 4) == 0);
    CHECK(zp[0x210] == 0xff);                 /* type_of_loader */
    CHECK(zp[0x211] & 0x01);                  /* LOADED_HIGH */
    CHECK(rd(zp + 0x228, 4) == BOOT_CMDLINE); /* cmd_line_ptr */
    CHECK(strcmp((char *)gm_ptr(&gm, BOOT_CMDLINE, 20), "console=ttyS0 quiet") == 0);
    CHECK(rd(zp + 0x070, 8) == 0xe0000); /* acpi_rsdp_addr */
    uint64_t rdaddr = rd(zp + 0x218, 4), rdlen = rd(zp + 0x21c, 4);
    CHECK(rdlen == rdsz && rdaddr % 4096 == 0 && rdaddr + rdlen <= gm.low_size);
    CHECK(rdaddr >= res.kernel_end);
    CHECK(*(uint8_t *)gm_ptr(&gm, rdaddr, 1) == 0xab);
    /* e820: RAM below the EBDA, reserved to 1 MiB, RAM to the end. */
    CHECK(zp[0x1e8] == 3);
    struct e820_entry e[3];
    memcpy(e, zp + 0x2d0, sizeof(e));
    CHECK(e[0].addr == 0 && e[0].size == BOOT_EBDA_START && e[0].type == E820_RAM);
    CHECK(e[1].addr == BOOT_EBDA_START && e[1].addr + e[1].size == HIMEM_START &&
          e[1].type == E820_RESERVED);
    CHECK(e[2].addr == HIMEM_START && e[2].addr + e[2].size == (64ULL << 20) &&
          e[2].type == E820_RAM);
    /* Identity page tables and the GDT. */
    CHECK(rd(gm_ptr(&gm, BOOT_PML4_ADDR, 8), 8) == (BOOT_PDPT_ADDR | 3));
    CHECK(rd(gm_ptr(&gm, BOOT_PD_ADDR + 8 * 8, 8), 8) == ((8ULL << 21) | 0x83));
    CHECK(rd(gm_ptr(&gm, BOOT_GDT_ADDR + BOOT_CS, 8), 8) == boot_gdt[BOOT_CS / 8]);
    /* The reset vector stub writes 0xfe to the i8042 command port. */
    CHECK(memcmp(gm_ptr(&gm, BOOT_RESET_VECTOR, 4), "\xb0\xfe\xe6\x64", 4) == 0);

    /* Things that do not fit. */
    char *longline = malloc(4096);
    memset(longline, 'x', 4095);
    longline[4095] = 0;
    CHECK(boot_load(&gm, &k, NULL, 0, longline, 0, &res, &why) == -E2BIG);
    free(longline);
    size_t big = 60ULL << 20;
    uint8_t *bigrd = calloc(1, big);
    CHECK(boot_load(&gm, &k, bigrd, big, "", 0, &res, &why) == -ENOMEM && why);
    free(bigrd);
    gm_free(&gm);
    CHECK(gm_alloc(&gm, 20ULL << 20) == 0); /* smaller than load address + init_size */
    CHECK(boot_load(&gm, &k, NULL, 0, "", 0, &res, &why) == -ENOMEM);
    gm_free(&gm);

    /* Memory above 4 GiB: e820 gets the high part. */
    gm_layout(&gm, 5ULL << 30);
    struct e820_entry map[8];
    int n = boot_e820(&gm, map, 8);
    CHECK(n == 4);
    CHECK(map[2].addr + map[2].size == GM_GAP_START);
    CHECK(map[3].addr == GM_HIGH_START && map[3].size == (2ULL << 30));
    CHECK(boot_e820(&gm, map, 2) == -ENOSPC);
    free(initrd);
    free(img);
}

/* ---- ACPI ---- */

static void test_acpi(void)
{
    static uint8_t buf[0x10000];
    struct acpi_tables t;
    for (unsigned n = 1; n <= 16; n *= 2) {
        CHECK(acpi_build(buf, sizeof(buf), ACPI_TABLES, n, &t) == 0);
        uint8_t *rsdp = buf + t.rsdp_off;
        CHECK(memcmp(rsdp, "RSD PTR ", 8) == 0);
        CHECK(acpi_checksum(rsdp, 20) == 0 && acpi_checksum(rsdp, 36) == 0);
        uint64_t xsdt = rd(rsdp + 24, 8);
        CHECK(xsdt == ACPI_TABLES + t.xsdt_off);
        const uint8_t *x = buf + t.xsdt_off;
        CHECK(memcmp(x, "XSDT", 4) == 0 && acpi_checksum(x, rd(x + 4, 4)) == 0);
        const uint8_t *f = buf + (rd(x + 36, 8) - ACPI_TABLES);
        const uint8_t *m = buf + (rd(x + 44, 8) - ACPI_TABLES);
        CHECK(memcmp(f, "FACP", 4) == 0 && rd(f + 4, 4) == 276 && acpi_checksum(f, 276) == 0);
        CHECK(rd(f + 112, 4) & (1u << 20)); /* HW_REDUCED_ACPI */
        CHECK(rd(f + 244 + 4, 8) == PIO_ACPI_SLEEP_CTL && f[244] == 1);
        CHECK(rd(f + 116 + 4, 8) == PIO_ACPI_RESET && f[128] == ACPI_RESET_VALUE);
        const uint8_t *d = buf + (rd(f + 140, 8) - ACPI_TABLES);
        CHECK(memcmp(d, "DSDT", 4) == 0 && acpi_checksum(d, rd(d + 4, 4)) == 0);
        CHECK(memcmp(m, "APIC", 4) == 0 && acpi_checksum(m, rd(m + 4, 4)) == 0);
        /* MADT: n enabled local APICs with IDs 0..n-1, then an IOAPIC. */
        unsigned lapics = 0, ioapics = 0;
        for (size_t off = 44; off < rd(m + 4, 4); off += m[off + 1]) {
            if (m[off + 1] == 0)
                break;
            if (m[off] == 0) {
                CHECK(m[off + 3] == lapics && (rd(m + off + 4, 4) & 1));
                lapics++;
            } else if (m[off] == 1) {
                CHECK(rd(m + off + 4, 4) == IOAPIC_ADDR);
                ioapics++;
            }
        }
        CHECK(lapics == n && ioapics == 1);
        CHECK(t.total <= ACPI_TABLES_MAX);
    }
    CHECK(acpi_build(buf, sizeof(buf), ACPI_TABLES, 0, &t) == -EINVAL);
    CHECK(acpi_build(buf, 100, ACPI_TABLES, 1, &t) == -ENOSPC);
}

/* ---- devices ---- */

struct irq_rec {
    int level[32];
    int edges[32];
    int msis;
    uint64_t msi_addr;
    uint32_t msi_data;
};
static int rec_level(void *o, uint32_t gsi, int level)
{
    struct irq_rec *r = o;
    if (level && !r->level[gsi])
        r->edges[gsi]++;
    r->level[gsi] = level;
    return 0;
}
static int rec_msi(void *o, uint64_t addr, uint32_t data)
{
    struct irq_rec *r = o;
    r->msis++;
    r->msi_addr = addr;
    r->msi_data = data;
    return 0;
}

static uint8_t in8(const struct bus_ops *ops, void *dev, uint64_t off)
{
    uint8_t v;
    ops->read(dev, off, &v, 1);
    return v;
}
static void out8(const struct bus_ops *ops, void *dev, uint64_t off, uint8_t v)
{
    ops->write(dev, off, &v, 1);
}

static void test_serial(void)
{
    int p[2];
    CHECK(pipe(p) == 0);
    struct irq_rec rec = {0};
    struct irq_sink sink = {.opaque = &rec, .set_level = rec_level, .msi = rec_msi};
    struct serial s;
    serial_init(&s, &sink, 4, p[1], -1);
    const struct bus_ops *o = &serial_ops;
    /* Scratch register and the loopback test of the 8250 probe. */
    out8(o, &s, 7, 0x5a);
    CHECK(in8(o, &s, 7) == 0x5a);
    out8(o, &s, 4, 0x1a);
    CHECK((in8(o, &s, 6) & 0xf0) == 0x90);
    out8(o, &s, 4, 0x0b);
    CHECK(in8(o, &s, 5) & 0x20);           /* THR empty */
    CHECK((in8(o, &s, 2) & 0x0f) == 0x01); /* no interrupt */
    /* Enabling the THRE interrupt raises it; reading IIR acknowledges it. */
    out8(o, &s, 1, 0x02);
    CHECK(rec.level[4] == 1 && rec.edges[4] == 1);
    CHECK((in8(o, &s, 2) & 0x0f) == 0x02);
    CHECK(rec.level[4] == 0);
    CHECK((in8(o, &s, 2) & 0x0f) == 0x01);
    /* Each transmitted byte raises it again. */
    const char *msg = "hi\n";
    for (const char *c = msg; *c; c++) {
        out8(o, &s, 0, (uint8_t)*c);
        CHECK(rec.level[4] == 1);
        in8(o, &s, 2);
    }
    CHECK(rec.edges[4] == 4);
    char got[8] = {0};
    CHECK(read(p[0], got, sizeof(got)) == 3 && strcmp(got, "hi\n") == 0);
    /* A line with no newline waits for one, or for the guest's next IER write (a prompt). */
    CHECK(fcntl(p[0], F_SETFL, O_NONBLOCK) == 0);
    for (const char *c = "login: "; *c; c++)
        out8(o, &s, 0, (uint8_t)*c);
    CHECK(read(p[0], got, sizeof(got)) < 0 && errno == EAGAIN);
    out8(o, &s, 1, 0x00);
    memset(got, 0, sizeof(got));
    CHECK(read(p[0], got, sizeof(got)) == 7 && strcmp(got, "login: ") == 0);
    CHECK(fcntl(p[0], F_SETFL, 0) == 0);
    /* Divisor latch access does not transmit. */
    out8(o, &s, 3, 0x80);
    out8(o, &s, 0, 0x01);
    CHECK(in8(o, &s, 0) == 0x01);
    out8(o, &s, 3, 0x03);
    /* FIFO enabled shows in IIR. */
    out8(o, &s, 2, 0x07);
    CHECK((in8(o, &s, 2) & 0xc0) == 0xc0);
    out8(o, &s, 0, 'x');
    serial_destroy(&s);
    CHECK(read(p[0], got, sizeof(got)) == 1 && got[0] == 'x');
    close(p[0]);
    close(p[1]);
}

struct power_rec {
    int off, reset, timer;
};
static void prec_event(void *o, enum power_event ev)
{
    struct power_rec *p = o;
    if (ev == POWER_OFF)
        p->off++;
    else if (ev == POWER_RESET)
        p->reset++;
}
static void prec_timer(void *o)
{
    ((struct power_rec *)o)->timer++;
}

static void test_legacy(void)
{
    struct power_rec pr = {0};
    struct power_sink ps = {&pr, prec_event, prec_timer};
    struct i8042 k;
    i8042_init(&k, &ps);
    const struct bus_ops *o = &i8042_ops;
    out8(o, &k, 4, 0xaa); /* self test */
    CHECK(in8(o, &k, 4) & 1);
    CHECK(in8(o, &k, 0) == 0x55);
    CHECK(!(in8(o, &k, 4) & 1));
    out8(o, &k, 4, 0x60);
    out8(o, &k, 0, 0x47);
    out8(o, &k, 4, 0x20);
    CHECK(in8(o, &k, 0) == 0x47);
    CHECK(pr.reset == 0);
    out8(o, &k, 4, 0xfe); /* pulse reset */
    CHECK(pr.reset == 1);

    struct cmos c;
    cmos_init(&c);
    cmos_fill_time(&c, 1700000000); /* 2023-11-14 22:13:20 UTC */
    CHECK(c.ram[0] == 0x20 && c.ram[2] == 0x13 && c.ram[4] == 0x22);
    CHECK(c.ram[7] == 0x14 && c.ram[8] == 0x11 && c.ram[9] == 0x23 && c.ram[0x32] == 0x20);
    out8(&cmos_ops, &c, 0, 0x0b);
    CHECK(in8(&cmos_ops, &c, 1) == 0x02);
    out8(&cmos_ops, &c, 0, 0x0d);
    CHECK(in8(&cmos_ops, &c, 1) == 0x80);
    out8(&cmos_ops, &c, 0, 0x40);
    out8(&cmos_ops, &c, 1, 0x99);
    CHECK(in8(&cmos_ops, &c, 1) == 0x99);

    struct acpi_pm pm = {&ps};
    out8(&acpi_pm_ops, &pm, 0, (ACPI_S5_TYP << 2)); /* no SLP_EN */
    CHECK(pr.off == 0);
    out8(&acpi_pm_ops, &pm, 0, (ACPI_S5_TYP << 2) | 0x20);
    CHECK(pr.off == 1);
    out8(&acpi_pm_ops, &pm, 2, 0x55);
    CHECK(pr.reset == 1);
    out8(&acpi_pm_ops, &pm, 2, ACPI_RESET_VALUE);
    CHECK(pr.reset == 2);
    out8(&boot_timer_ops, &ps, 0, 1);
    CHECK(pr.timer == 0);
    out8(&boot_timer_ops, &ps, 0, BOOT_TIMER_MAGIC);
    CHECK(pr.timer == 1);
}

/* ---- PCI + virtio ---- */

static uint32_t conf(struct pci_host *h, unsigned slot, unsigned off, unsigned size)
{
    uint8_t a[4], d[4];
    kova_le_put(a, 4, 0x80000000U | (slot << 11) | (off & 0xfc));
    pci_conf1_ops.write(h, 0, a, 4);
    pci_conf1_ops.read(h, 4 + (off & 3), d, size);
    return (uint32_t)kova_le_get(d, size);
}
static void conf_w(struct pci_host *h, unsigned slot, unsigned off, unsigned size, uint32_t v)
{
    uint8_t a[4], d[4];
    kova_le_put(a, 4, 0x80000000U | (slot << 11) | (off & 0xfc));
    pci_conf1_ops.write(h, 0, a, 4);
    kova_le_put(d, 4, v);
    pci_conf1_ops.write(h, 4 + (off & 3), d, size);
}

static void mmio_w(struct bus *mmio, uint64_t addr, unsigned size, uint64_t v)
{
    uint8_t d[8];
    kova_le_put(d, size, v);
    bus_write(mmio, addr, d, size);
}
static uint64_t mmio_r(struct bus *mmio, uint64_t addr, unsigned size)
{
    uint8_t d[8];
    bus_read(mmio, addr, d, size);
    return kova_le_get(d, size);
}

static void count_reset(void *opaque)
{
    (*(unsigned *)opaque)++;
}

static void test_pci_virtio(void)
{
    struct bus pio, mmio;
    bus_init(&pio, "pio");
    bus_init(&mmio, "mmio");
    struct pci_host h;
    unsigned resets = 0;
    CHECK(pci_host_init(&h, &pio, &mmio, count_reset, &resets) == 0);

    /* The reset control register at 0xCF9: byte writes only; RST_CPU (bit 2) resets. */
    uint8_t b[4] = {0x02};
    bus_write(&pio, 0xcf9, b, 1); /* SYS_RST alone: prepares, no reset */
    CHECK(resets == 0);
    b[0] = 0x06;
    bus_write(&pio, 0xcf9, b, 1);
    CHECK(resets == 1);
    kova_le_put(b, 4, 0x80000800U); /* a dword at 0xCF8 is the conf1 address, never a reset */
    bus_write(&pio, 0xcf8, b, 4);
    CHECK(resets == 1);
    bus_read(&pio, 0xcf8, b, 4);
    CHECK(kova_le_get(b, 4) == 0x80000800U);
    b[0] = 0;
    bus_read(&pio, 0xcf9, b, 1); /* reads of the register: the conf1 port's all-ones */
    CHECK(b[0] == 0xff);
    struct guest_mem gm;
    CHECK(gm_alloc(&gm, 64ULL << 20) == 0);
    struct irq_rec rec = {0};
    struct irq_sink sink = {.opaque = &rec, .set_level = rec_level, .msi = rec_msi};
    struct virtio_pci_dev *rng;
    CHECK(virtio_rng_create(&rng, &gm, &sink) == 0);
    CHECK(pci_host_add(&h, &rng->pci) == 0);

    CHECK(conf(&h, 0, 0x0a, 2) == 0x0600); /* host bridge class */
    CHECK(conf(&h, 1, 0, 4) == 0x10441af4);
    CHECK(conf(&h, 2, 0, 4) == 0xffffffff); /* empty slot */
    CHECK(conf(&h, 1, 0x06, 2) & 0x10);     /* capability list */
    /* BAR sizing. */
    uint32_t bar = conf(&h, 1, 0x10, 4);
    CHECK(bar == MMIO_PCI_START);
    conf_w(&h, 1, 0x10, 4, 0xffffffff);
    CHECK(conf(&h, 1, 0x10, 4) == (uint32_t) ~(VPCI_BAR_SIZE - 1));
    conf_w(&h, 1, 0x10, 4, bar);
    /* The capability chain: MSI-X, then the virtio structures. */
    unsigned cap = conf(&h, 1, 0x34, 1), seen = 0, types = 0;
    while (cap && seen < 10) {
        unsigned id = conf(&h, 1, cap, 1);
        if (id == 0x09)
            types |= 1u << conf(&h, 1, cap + 3, 1);
        seen++;
        cap = conf(&h, 1, cap + 1, 1);
    }
    CHECK(types == ((1u << 1) | (1u << 2) | (1u << 3)));
    /* Memory decoding off: BAR accesses go nowhere. */
    CHECK(mmio_r(&mmio, bar + VPCI_COMMON_OFF + 0x12, 2) == 0xffff);
    conf_w(&h, 1, 0x04, 2, 0x06);
    CHECK(mmio_r(&mmio, bar + VPCI_COMMON_OFF + 0x12, 2) == 1); /* num_queues */

    /* Driver initialisation. */
    uint64_t cc = bar + VPCI_COMMON_OFF;
    mmio_w(&mmio, cc + 0x14, 1, 0);
    mmio_w(&mmio, cc + 0x14, 1, 1 | 2);
    mmio_w(&mmio, cc + 0x00, 4, 1);
    CHECK(mmio_r(&mmio, cc + 0x04, 4) == 1); /* VERSION_1 */
    mmio_w(&mmio, cc + 0x08, 4, 1);
    mmio_w(&mmio, cc + 0x0c, 4, 1);
    mmio_w(&mmio, cc + 0x14, 1, 1 | 2 | 8);
    CHECK(mmio_r(&mmio, cc + 0x14, 1) & 8); /* FEATURES_OK kept */
    /* MSI-X on, vector 1 for the queue. */
    conf_w(&h, 1, 0x42, 2, 0x8000);
    uint64_t tbl = bar + VPCI_MSIX_OFF + 16;
    mmio_w(&mmio, tbl + 0, 4, 0xfee00000);
    mmio_w(&mmio, tbl + 4, 4, 0);
    mmio_w(&mmio, tbl + 8, 4, 0x41);
    mmio_w(&mmio, tbl + 12, 4, 0);
    mmio_w(&mmio, cc + 0x16, 2, 0);
    CHECK(mmio_r(&mmio, cc + 0x18, 2) == 256);
    mmio_w(&mmio, cc + 0x18, 2, 8);
    mmio_w(&mmio, cc + 0x1a, 2, 1);
    CHECK(mmio_r(&mmio, cc + 0x1a, 2) == 1);
    uint64_t desc = 0x100000, avail = 0x101000, used = 0x102000, data = 0x200000;
    mmio_w(&mmio, cc + 0x20, 4, desc);
    mmio_w(&mmio, cc + 0x24, 4, 0);
    mmio_w(&mmio, cc + 0x28, 8, avail);
    mmio_w(&mmio, cc + 0x30, 4, used);
    mmio_w(&mmio, cc + 0x34, 4, 0);
    mmio_w(&mmio, cc + 0x1c, 2, 1);
    CHECK(mmio_r(&mmio, cc + 0x1c, 2) == 1);
    mmio_w(&mmio, cc + 0x14, 1, 1 | 2 | 4 | 8);

    /* One good request of 32 bytes split over two descriptors. */
    uint8_t *d = gm_ptr(&gm, desc, 16 * 8);
    memset(gm_ptr(&gm, data, 64), 0, 64);
    kova_le_put(d + 0, 8, data);
    kova_le_put(d + 8, 4, 16);
    kova_le_put(d + 12, 2, 1 | 2); /* NEXT | WRITE */
    kova_le_put(d + 14, 2, 1);
    kova_le_put(d + 16, 8, data + 16);
    kova_le_put(d + 24, 4, 16);
    kova_le_put(d + 28, 2, 2);
    uint8_t *av = gm_ptr(&gm, avail, 64), *us = gm_ptr(&gm, used, 128);
    kova_le_put(av + 4, 2, 0);
    kova_le_put(av + 2, 2, 1);
    mmio_w(&mmio, bar + VPCI_NOTIFY_OFF, 2, 0);
    CHECK(kova_le_get(us + 2, 2) == 1);
    CHECK(kova_le_get(us + 4, 4) == 0 && kova_le_get(us + 8, 4) == 32);
    uint8_t zero[32] = {0};
    CHECK(memcmp(gm_ptr(&gm, data, 32), zero, 32) != 0);
    CHECK(rec.msis == 1 && rec.msi_addr == 0xfee00000 && rec.msi_data == 0x41);

    /* Masked vector: pending, delivered on unmask. */
    mmio_w(&mmio, tbl + 12, 4, 1);
    kova_le_put(av + 6, 2, 0);
    kova_le_put(av + 2, 2, 2);
    mmio_w(&mmio, bar + VPCI_NOTIFY_OFF, 2, 0);
    CHECK(kova_le_get(us + 2, 2) == 2 && rec.msis == 1);
    CHECK(mmio_r(&mmio, bar + VPCI_PBA_OFF, 8) == 2);
    mmio_w(&mmio, tbl + 12, 4, 0);
    CHECK(rec.msis == 2 && mmio_r(&mmio, bar + VPCI_PBA_OFF, 8) == 0);

    /* Hostile chains: each breaks the queue (device needs reset), nothing crashes. */
    struct {
        uint64_t addr;
        uint32_t len;
        uint16_t flags, next;
    } bad[] = {
        {gm.size - 8, 16, 2, 0}, /* buffer runs past the end of RAM */
        {0xfee00000, 4, 2, 0},   /* buffer in MMIO */
        {data, 16, 2 | 1, 9},    /* next out of range */
        {data, 16, 2 | 1, 0},    /* loop */
        {data, 16, 4, 0},        /* indirect, not negotiated */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        mmio_w(&mmio, cc + 0x14, 1, 0); /* reset */
        CHECK(mmio_r(&mmio, cc + 0x14, 1) == 0);
        mmio_w(&mmio, cc + 0x14, 1, 1 | 2);
        mmio_w(&mmio, cc + 0x08, 4, 1);
        mmio_w(&mmio, cc + 0x0c, 4, 1);
        mmio_w(&mmio, cc + 0x14, 1, 1 | 2 | 8);
        mmio_w(&mmio, cc + 0x18, 2, 8);
        mmio_w(&mmio, cc + 0x20, 8, desc);
        mmio_w(&mmio, cc + 0x28, 8, avail);
        mmio_w(&mmio, cc + 0x30, 8, used);
        mmio_w(&mmio, cc + 0x1c, 2, 1);
        mmio_w(&mmio, cc + 0x14, 1, 1 | 2 | 4 | 8);
        kova_le_put(d, 8, bad[i].addr);
        kova_le_put(d + 8, 4, bad[i].len);
        kova_le_put(d + 12, 2, bad[i].flags);
        kova_le_put(d + 14, 2, bad[i].next);
        memset(us, 0, 128);
        kova_le_put(av + 4, 2, 0);
        kova_le_put(av + 2, 2, 1);
        mmio_w(&mmio, bar + VPCI_NOTIFY_OFF, 2, 0);
        CHECK(kova_le_get(us + 2, 2) == 0);
        CHECK(mmio_r(&mmio, cc + 0x14, 1) & 0x40); /* DEVICE_NEEDS_RESET */
    }
    /* Bad ring placement and queue sizes are refused at enable time. */
    mmio_w(&mmio, cc + 0x14, 1, 0);
    mmio_w(&mmio, cc + 0x18, 2, 3); /* not a power of two */
    mmio_w(&mmio, cc + 0x1c, 2, 1);
    CHECK(mmio_r(&mmio, cc + 0x1c, 2) == 0);
    mmio_w(&mmio, cc + 0x14, 1, 0);
    mmio_w(&mmio, cc + 0x20, 8, 0xfffff000);
    mmio_w(&mmio, cc + 0x1c, 2, 1);
    CHECK(mmio_r(&mmio, cc + 0x1c, 2) == 0);
    /* Avail index running ahead. */
    mmio_w(&mmio, cc + 0x14, 1, 0);
    mmio_w(&mmio, cc + 0x18, 2, 8);
    mmio_w(&mmio, cc + 0x20, 8, desc);
    mmio_w(&mmio, cc + 0x28, 8, avail);
    mmio_w(&mmio, cc + 0x30, 8, used);
    mmio_w(&mmio, cc + 0x1c, 2, 1);
    mmio_w(&mmio, cc + 0x14, 1, 15);
    kova_le_put(av + 2, 2, 100);
    mmio_w(&mmio, bar + VPCI_NOTIFY_OFF, 2, 0);
    CHECK(mmio_r(&mmio, cc + 0x14, 1) & 0x40);
    /* Unaligned / odd accesses to the BAR are ignored. */
    mmio_r(&mmio, bar + VPCI_MSIX_OFF + 1, 2);
    mmio_w(&mmio, bar + 0x7fff, 1, 0xff);

    virtio_rng_free(rng);
    pci_host_destroy(&h);
    gm_free(&gm);
    bus_destroy(&pio);
    bus_destroy(&mmio);
}

/* ---- split virtqueue: indirect tables and EVENT_IDX ---- */

static void test_virtq_features(void)
{
    struct guest_mem gm;
    CHECK(gm_alloc(&gm, 16ULL << 20) == 0);
    const uint64_t desc = 0x10000, avail = 0x11000, used = 0x12000, tbl = 0x13000, data = 0x20000;
    uint8_t *d = gm_ptr(&gm, desc, 16 * 8), *av = gm_ptr(&gm, avail, 64);
    uint8_t *us = gm_ptr(&gm, used, 128), *t = gm_ptr(&gm, tbl, 16 * 300);
    struct virtq vq;
    static struct vq_chain c;
    virtq_reset(&vq, 8);
    vq.desc_gpa = desc;
    vq.avail_gpa = avail;
    vq.used_gpa = used;
    vq.indirect = vq.event_idx = true;
    CHECK(virtq_enable(&vq, &gm) == 0);

    /* Empty ring: avail_event (after the used ring) asks for a notification at index 0. */
    kova_le_put(us + 4 + 8 * 8, 2, 0xbeef);
    CHECK(virtq_pop(&vq, &gm, &c) == 0);
    CHECK(kova_le_get(us + 4 + 8 * 8, 2) == 0);

    /* One indirect table of three descriptors: header, data (writable), status. */
    kova_le_put(t + 0, 8, data);
    kova_le_put(t + 8, 4, 16);
    kova_le_put(t + 12, 2, 1);
    kova_le_put(t + 14, 2, 1);
    kova_le_put(t + 32, 8, data + 512);
    kova_le_put(t + 40, 4, 1);
    kova_le_put(t + 44, 2, 2);
    kova_le_put(t + 16, 8, data + 16);
    kova_le_put(t + 24, 4, 4096);
    kova_le_put(t + 28, 2, 1 | 2);
    kova_le_put(t + 30, 2, 2);
    kova_le_put(d + 0, 8, tbl);
    kova_le_put(d + 8, 4, 48);
    kova_le_put(d + 12, 2, 4);
    kova_le_put(av + 4, 2, 0);
    kova_le_put(av + 2, 2, 1);
    CHECK(virtq_pop(&vq, &gm, &c) == 1);
    CHECK(c.head == 0 && c.n == 3 && c.readable == 16 && c.writable == 4097);
    CHECK(c.buf[1].ptr == gm_ptr(&gm, data + 16, 1) && c.buf[1].writable);
    /* Busy: popping an empty ring again re-arms avail_event at the next index. */
    CHECK(virtq_pop(&vq, &gm, &c) == 0 && kova_le_get(us + 4 + 8 * 8, 2) == 1);

    /* used_event: an interrupt only when the used index passes it. */
    kova_le_put(av + 4 + 2 * 8, 2, 0); /* used_event = 0: interrupt for used entry 0 */
    virtq_push(&vq, 0, 17);
    CHECK(virtq_should_notify(&vq));   /* first decision: always */
    CHECK(!virtq_should_notify(&vq));  /* nothing new used */
    kova_le_put(av + 4 + 2 * 8, 2, 5); /* driver wants one once entry 5 is used */
    virtq_push(&vq, 0, 1);             /* used idx 2 */
    CHECK(!virtq_should_notify(&vq));
    virtq_push(&vq, 0, 1);
    virtq_push(&vq, 0, 1);
    virtq_push(&vq, 0, 1);
    CHECK(!virtq_should_notify(&vq)); /* used idx 5: entry 5 not used yet */
    virtq_push(&vq, 0, 1);
    virtq_push(&vq, 0, 1);
    CHECK(virtq_should_notify(&vq)); /* used idx 7 crossed 5 */

    /* Hostile indirect tables: each breaks the queue, nothing crashes. */
    struct {
        uint64_t addr;
        uint32_t len;
        uint16_t flags, t0flags, t0next;
        bool negotiated;
    } bad[] = {
        {tbl, 48, 4, 2, 0, false},         /* indirect, not negotiated */
        {tbl, 47, 4, 2, 0, true},          /* length not a multiple of 16 */
        {tbl, 0, 4, 2, 0, true},           /* empty table */
        {tbl, 16 * 261, 4, 2, 0, true},    /* too many entries */
        {gm.size - 32, 48, 4, 2, 0, true}, /* table past the end of RAM */
        {0xfee00000, 48, 4, 2, 0, true},   /* table in MMIO */
        {tbl, 48, 4 | 1, 2, 0, true},      /* INDIRECT with NEXT */
        {tbl, 48, 4, 4, 0, true},          /* nested indirect */
        {tbl, 48, 4, 1 | 2, 3, true},      /* next outside the table */
        {tbl, 48, 4, 1 | 2, 0, true},      /* loop inside the table */
        {tbl, 16, 4, 2, 0, true},          /* (fine: one descriptor) */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        virtq_reset(&vq, 8);
        vq.desc_gpa = desc;
        vq.avail_gpa = avail;
        vq.used_gpa = used;
        vq.indirect = bad[i].negotiated;
        CHECK(virtq_enable(&vq, &gm) == 0);
        kova_le_put(d + 0, 8, bad[i].addr);
        kova_le_put(d + 8, 4, bad[i].len);
        kova_le_put(d + 12, 2, bad[i].flags);
        kova_le_put(t + 0, 8, data);
        kova_le_put(t + 8, 4, 16);
        kova_le_put(t + 12, 2, bad[i].t0flags);
        kova_le_put(t + 14, 2, bad[i].t0next);
        kova_le_put(av + 2, 2, 1);
        int r = virtq_pop(&vq, &gm, &c);
        if (i == sizeof(bad) / sizeof(bad[0]) - 1)
            CHECK(r == 1 && c.n == 1 && c.writable == 16);
        else
            CHECK(r == -EINVAL && vq.broken);
    }
    gm_free(&gm);
}

/* ---- ioeventfd and irqfd wiring (fake KVM) ---- */

struct fake_kvm {
    struct irq_rec rec;
    int ioev_fd[4];
    uint64_t ioev_addr[4];
    int ioev_calls, ioev_fail;
    int route_fd, route_gsi, route_adds, route_sets, route_dels, route_fail;
    uint64_t route_addr;
    uint32_t route_data;
};

static int fk_ioeventfd(void *o, uint64_t addr, uint32_t len, int fd, bool assign)
{
    struct fake_kvm *k = o;
    k->ioev_calls++;
    if (assign && k->ioev_fail)
        return -ENOSYS;
    unsigned q = (unsigned)((addr & 0xfff) / VPCI_NOTIFY_MUL);
    CHECK(len == 2 && q < 4 && ((addr - VPCI_NOTIFY_OFF) & 0x7fff) / VPCI_NOTIFY_MUL == q);
    if (q < 4) {
        k->ioev_fd[q] = assign ? fd : -1;
        k->ioev_addr[q] = assign ? addr : 0;
    }
    return 0;
}
static int fk_route_add(void *o, int fd, uint64_t addr, uint32_t data)
{
    struct fake_kvm *k = o;
    if (k->route_fail)
        return -ENOSPC;
    k->route_adds++;
    k->route_fd = fd;
    k->route_addr = addr;
    k->route_data = data;
    return k->route_gsi = 24 + k->route_adds - 1;
}
static int fk_route_set(void *o, int gsi, uint64_t addr, uint32_t data)
{
    struct fake_kvm *k = o;
    CHECK(gsi == k->route_gsi);
    k->route_sets++;
    k->route_addr = addr;
    k->route_data = data;
    return 0;
}
static void fk_route_del(void *o, int gsi, int fd)
{
    struct fake_kvm *k = o;
    CHECK(gsi == k->route_gsi && fd == k->route_fd);
    k->route_dels++;
}
static int fk_level(void *o, uint32_t gsi, int level)
{
    return rec_level(&((struct fake_kvm *)o)->rec, gsi, level);
}
static int fk_msi(void *o, uint64_t addr, uint32_t data)
{
    return rec_msi(&((struct fake_kvm *)o)->rec, addr, data);
}

static uint64_t fd_count(int fd)
{
    uint64_t v = 0;
    if (read(fd, &v, sizeof(v)) != sizeof(v))
        return 0;
    return v;
}

static void test_eventfds(void)
{
    struct bus pio, mmio;
    bus_init(&pio, "pio");
    bus_init(&mmio, "mmio");
    struct pci_host h;
    CHECK(pci_host_init(&h, &pio, &mmio, NULL, NULL) == 0);
    struct guest_mem gm;
    CHECK(gm_alloc(&gm, 16ULL << 20) == 0);
    struct fake_kvm k = {.ioev_fd = {-1, -1, -1, -1}, .route_fd = -1, .route_gsi = -1};
    struct irq_sink sink = {
        .opaque = &k,
        .set_level = fk_level,
        .msi = fk_msi,
        .msi_route_add = fk_route_add,
        .msi_route_set = fk_route_set,
        .msi_route_del = fk_route_del,
        .ioeventfd = fk_ioeventfd,
    };
    static const struct virtio_dev_ops ops = {
        .name = "test", .device_id = 2, .num_queues = 2, .queue_size = 8, .kick_fds = true};
    struct virtio_pci_dev *dev = calloc(1, sizeof(*dev));
    CHECK(dev && virtio_pci_init(dev, &ops, NULL, &gm, &sink) == 0);
    CHECK(pci_host_add(&h, &dev->pci) == 0);
    CHECK(dev->kick_fd[0] >= 0 && dev->kick_fd[1] >= 0 && dev->kick_fd[2] == -1);
    uint64_t bar = conf(&h, 1, 0x10, 4), cc = bar + VPCI_COMMON_OFF;
    conf_w(&h, 1, 0x04, 2, 0x06);
    mmio_w(&mmio, cc + 0x14, 1, 1 | 2);
    mmio_w(&mmio, cc + 0x08, 4, 1);
    mmio_w(&mmio, cc + 0x0c, 4, 1);
    mmio_w(&mmio, cc + 0x14, 1, 1 | 2 | 8);
    mmio_w(&mmio, cc + 0x18, 2, 8);
    mmio_w(&mmio, cc + 0x20, 8, 0x10000);
    mmio_w(&mmio, cc + 0x28, 8, 0x11000);
    mmio_w(&mmio, cc + 0x30, 8, 0x12000);
    mmio_w(&mmio, cc + 0x1c, 2, 1);
    CHECK(k.ioev_calls == 0); /* nothing before DRIVER_OK */
    /* Without ioeventfd (not yet registered), a notify exit writes the kick eventfd. */
    mmio_w(&mmio, bar + VPCI_NOTIFY_OFF, 2, 0);
    CHECK(fd_count(dev->kick_fd[0]) == 0); /* DRIVER_OK not set: ignored */
    mmio_w(&mmio, cc + 0x14, 1, 1 | 2 | 4 | 8);
    CHECK(k.ioev_fd[0] == dev->kick_fd[0] && k.ioev_fd[1] == dev->kick_fd[1]);
    CHECK(k.ioev_addr[0] == bar + VPCI_NOTIFY_OFF &&
          k.ioev_addr[1] == bar + VPCI_NOTIFY_OFF + VPCI_NOTIFY_MUL);
    mmio_w(&mmio, bar + VPCI_NOTIFY_OFF, 2, 0); /* e.g. a 2-byte write KVM did not take */
    CHECK(fd_count(dev->kick_fd[0]) == 1 && fd_count(dev->kick_fd[1]) == 0);
    /* The BAR moves: the ioeventfds follow; decoding off: removed; back on: registered. */
    conf_w(&h, 1, 0x10, 4, (uint32_t)bar + 0x100000);
    CHECK(k.ioev_addr[0] == bar + 0x100000 + VPCI_NOTIFY_OFF);
    conf_w(&h, 1, 0x04, 2, 0x04);
    CHECK(k.ioev_fd[0] == -1 && k.ioev_fd[1] == -1);
    conf_w(&h, 1, 0x10, 4, (uint32_t)bar);
    conf_w(&h, 1, 0x04, 2, 0x06);
    CHECK(k.ioev_addr[0] == bar + VPCI_NOTIFY_OFF && k.ioev_fd[0] == dev->kick_fd[0]);

    /* MSI-X through an irqfd: routed on first use, re-routed when the table entry changes. */
    conf_w(&h, 1, 0x42, 2, 0x8000);
    uint64_t tbl = bar + VPCI_MSIX_OFF + 16;
    mmio_w(&mmio, tbl + 0, 4, 0xfee00000);
    mmio_w(&mmio, tbl + 8, 4, 0x41);
    mmio_w(&mmio, tbl + 12, 4, 0);
    mmio_w(&mmio, cc + 0x16, 2, 0);
    mmio_w(&mmio, cc + 0x1a, 2, 1);
    pthread_mutex_lock(&dev->lock);
    virtio_pci_notify_queue(dev, 0);
    pthread_mutex_unlock(&dev->lock);
    CHECK(k.route_adds == 1 && k.route_addr == 0xfee00000 && k.route_data == 0x41);
    CHECK(k.route_fd >= 0 && fd_count(k.route_fd) == 1 && k.rec.msis == 0);
    mmio_w(&mmio, tbl + 8, 4, 0x42);
    pthread_mutex_lock(&dev->lock);
    virtio_pci_notify_queue(dev, 0);
    pthread_mutex_unlock(&dev->lock);
    CHECK(k.route_adds == 1 && k.route_sets == 1 && k.route_data == 0x42);
    CHECK(fd_count(k.route_fd) == 1);
    /* Masked: the PBA bit, no interrupt; unmask delivers it through the irqfd. */
    mmio_w(&mmio, tbl + 12, 4, 1);
    pthread_mutex_lock(&dev->lock);
    virtio_pci_notify_queue(dev, 0);
    pthread_mutex_unlock(&dev->lock);
    CHECK(fd_count(k.route_fd) == 0 && mmio_r(&mmio, bar + VPCI_PBA_OFF, 8) == 2);
    mmio_w(&mmio, tbl + 12, 4, 0);
    CHECK(fd_count(k.route_fd) == 1 && mmio_r(&mmio, bar + VPCI_PBA_OFF, 8) == 0);
    /* Function mask: the same through the control word. */
    conf_w(&h, 1, 0x42, 2, 0xc000);
    pthread_mutex_lock(&dev->lock);
    virtio_pci_notify_queue(dev, 0);
    pthread_mutex_unlock(&dev->lock);
    CHECK(fd_count(k.route_fd) == 0 && mmio_r(&mmio, bar + VPCI_PBA_OFF, 8) == 2);
    conf_w(&h, 1, 0x42, 2, 0x8000);
    CHECK(fd_count(k.route_fd) == 1 && k.rec.msis == 0);
    CHECK(dev->interrupts == 4 && dev->irqfd_interrupts == 4);

    /* Reset: the ioeventfds go; the route stays for the next driver. */
    mmio_w(&mmio, cc + 0x14, 1, 0);
    CHECK(k.ioev_fd[0] == -1 && k.ioev_fd[1] == -1 && dev->ioev_base == 0);
    int route_fd = k.route_fd;
    virtio_pci_destroy(dev);
    CHECK(k.route_dels == 1 && fcntl(route_fd, F_GETFD) < 0);
    free(dev);

    /* KVM refusing both: KVM_SIGNAL_MSI and MMIO exits, as before. */
    k.ioev_fail = k.route_fail = 1;
    dev = calloc(1, sizeof(*dev));
    CHECK(dev && virtio_pci_init(dev, &ops, NULL, &gm, &sink) == 0);
    h.slots[1] = NULL;
    h.next_bar = MMIO_PCI_START;
    CHECK(pci_host_add(&h, &dev->pci) == 0);
    conf_w(&h, 1, 0x04, 2, 0x06);
    mmio_w(&mmio, cc + 0x14, 1, 1 | 2);
    mmio_w(&mmio, cc + 0x08, 4, 1);
    mmio_w(&mmio, cc + 0x0c, 4, 1);
    mmio_w(&mmio, cc + 0x14, 1, 1 | 2 | 8);
    mmio_w(&mmio, cc + 0x20, 8, 0x10000);
    mmio_w(&mmio, cc + 0x28, 8, 0x11000);
    mmio_w(&mmio, cc + 0x30, 8, 0x12000);
    mmio_w(&mmio, cc + 0x1c, 2, 1);
    mmio_w(&mmio, cc + 0x14, 1, 1 | 2 | 4 | 8);
    CHECK(dev->ioev_failed && dev->ioev_base == 0);
    mmio_w(&mmio, bar + VPCI_NOTIFY_OFF, 2, 0);
    CHECK(fd_count(dev->kick_fd[0]) == 1);
    conf_w(&h, 1, 0x42, 2, 0x8000);
    mmio_w(&mmio, tbl + 0, 4, 0xfee00000);
    mmio_w(&mmio, tbl + 8, 4, 0x43);
    mmio_w(&mmio, tbl + 12, 4, 0);
    mmio_w(&mmio, cc + 0x1a, 2, 1);
    pthread_mutex_lock(&dev->lock);
    virtio_pci_notify_queue(dev, 0);
    pthread_mutex_unlock(&dev->lock);
    CHECK(dev->irqfd_failed && k.rec.msis == 1 && k.rec.msi_data == 0x43);
    virtio_pci_destroy(dev);
    free(dev);

    /* The GSI routing table: KVM's IRQ chip defaults, then the MSI routes. */
    struct kvm_irq_routing *rt =
        calloc(1, sizeof(*rt) + (40 + VM_MSI_ROUTES) * sizeof(rt->entries[0]));
    struct vm_msi_route msi[VM_MSI_ROUTES] = {0};
    msi[3] = (struct vm_msi_route){true, 0xfee01000, 0x4021};
    if (rt) {
        vm_gsi_routing_fill(rt, msi, VM_MSI_ROUTES);
        CHECK(rt->nr == 41);
        unsigned ioapic = 0, pic = 0;
        for (unsigned i = 0; i < 40; i++) {
            struct kvm_irq_routing_entry *e = &rt->entries[i];
            CHECK(e->type == KVM_IRQ_ROUTING_IRQCHIP);
            if (e->u.irqchip.irqchip == KVM_IRQCHIP_IOAPIC) {
                CHECK(e->u.irqchip.pin == e->gsi);
                ioapic++;
            } else {
                CHECK(e->gsi < 16 && e->u.irqchip.pin == e->gsi % 8 &&
                      e->u.irqchip.irqchip ==
                          (e->gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE));
                pic++;
            }
        }
        CHECK(ioapic == 24 && pic == 16);
        struct kvm_irq_routing_entry *m = &rt->entries[40];
        CHECK(m->type == KVM_IRQ_ROUTING_MSI && m->gsi == VM_MSI_GSI_BASE + 3 &&
              m->u.msi.address_lo == 0xfee01000 && m->u.msi.address_hi == 0 &&
              m->u.msi.data == 0x4021);
    }
    free(rt);
    pci_host_destroy(&h);
    gm_free(&gm);
    bus_destroy(&pio);
    bus_destroy(&mmio);
}

/* ---- control lines ---- */

static json_t *echo_handler(void *opaque, const char *cmd, json_t *req)
{
    int *calls = opaque;
    (*calls)++;
    if (strcmp(cmd, "status") == 0)
        return json_pack("{s:b, s:s}", "ok", 1, "state", "running");
    return json_pack("{s:b, s:s}", "ok", 0, "error", "unknown command");
}

static int reply_ok(json_t *r)
{
    int ok = json_is_true(json_object_get(r, "ok"));
    json_decref(r);
    return ok;
}

static void test_control(void)
{
    int calls = 0;
    const char *bad[] = {"{",
                         "[1,2]",
                         "\"status\"",
                         "{\"cmd\": 5}",
                         "{\"nocmd\": 1}",
                         "{\"cmd\":\"status\",\"cmd\":\"x\"}",
                         "\x01\x02\xff",
                         "null"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK(!reply_ok(kova_ctl_handle_line(bad[i], strlen(bad[i]), echo_handler, &calls)));
    CHECK(calls == 0);
    CHECK(reply_ok(kova_ctl_handle_line("{\"cmd\":\"status\"}", 16, echo_handler, &calls)));
    CHECK(!reply_ok(kova_ctl_handle_line("{\"cmd\":\"frobnicate\"}", 20, echo_handler, &calls)));
    CHECK(calls == 2);
    const char *with_id = "{\"cmd\":\"status\",\"id\":7}";
    json_t *r = kova_ctl_handle_line(with_id, strlen(with_id), echo_handler, &calls);
    CHECK(json_integer_value(json_object_get(r, "id")) == 7);
    json_decref(r);

    /* Through a socket: a malformed line, an overlong line, then a good one. */
    struct kova_ctl_server s;
    kova_ctl_init(&s);
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    CHECK(kova_ctl_add_client(&s, sv[0]) == 0);
    char *big = malloc(KOVA_CTL_LINE_MAX + 100);
    memset(big, 'a', KOVA_CTL_LINE_MAX + 99);
    big[KOVA_CTL_LINE_MAX + 99] = '\n';
    CHECK(write(sv[1], "garbage\n", 8) == 8);
    CHECK(write(sv[1], big, KOVA_CTL_LINE_MAX + 100) == KOVA_CTL_LINE_MAX + 100);
    CHECK(write(sv[1], "{\"cmd\":\"status\"}\n", 17) == 17);
    free(big);
    for (int i = 0; i < 20; i++) {
        struct pollfd pfd[KOVA_CTL_MAX_CLIENTS + 1];
        size_t n = kova_ctl_pollfds(&s, pfd, KOVA_CTL_MAX_CLIENTS + 1);
        if (poll(pfd, n, 0) <= 0)
            break;
        kova_ctl_process(&s, pfd, n, echo_handler, &calls);
    }
    char out[1024] = {0};
    ssize_t got = read(sv[1], out, sizeof(out) - 1);
    CHECK(got > 0);
    /* Three replies: error, error, ok. */
    char *l1 = strtok(out, "\n"), *l2 = strtok(NULL, "\n"), *l3 = strtok(NULL, "\n");
    CHECK(l1 && strstr(l1, "malformed"));
    CHECK(l2 && strstr(l2, "too long"));
    CHECK(l3 && strstr(l3, "\"ok\":true"));
    kova_ctl_close(&s);
    close(sv[1]);
}

/* Reads n bytes of the selected item through the data port. */
static void fw_read(struct bus *pio, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        bus_read(pio, FW_CFG_PORT_DATA, &out[i], 1);
}

static void fw_select(struct bus *pio, uint16_t key)
{
    uint8_t k[2];
    kova_le_put(k, 2, key);
    bus_write(pio, FW_CFG_PORT_SEL, k, 2);
}

static uint32_t be_get(const uint8_t *p, unsigned n)
{
    uint32_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static void test_fw_cfg(void)
{
    struct fw_cfg *f;
    CHECK(fw_cfg_new(&f, 0) == -EINVAL && f == NULL);
    CHECK(fw_cfg_new(&f, 256) == -EINVAL);
    CHECK(fw_cfg_new(&f, 3) == 0);
    struct bus pio;
    bus_init(&pio, "pio");
    CHECK(bus_register(&pio, FW_CFG_PORT_SEL, 2, &fw_cfg_ops, f, "fw_cfg") == 0);

    /* the fixed items */
    uint8_t b[64];
    fw_select(&pio, FW_CFG_SIGNATURE);
    fw_read(&pio, b, 4);
    CHECK(!memcmp(b, "QEMU", 4));
    fw_select(&pio, FW_CFG_ID);
    fw_read(&pio, b, 4);
    CHECK(kova_le_get(b, 4) == 0); /* no DMA */
    fw_select(&pio, FW_CFG_NB_CPUS);
    fw_read(&pio, b, 2);
    CHECK(kova_le_get(b, 2) == 3);
    fw_select(&pio, FW_CFG_MAX_CPUS);
    fw_read(&pio, b, 2);
    CHECK(kova_le_get(b, 2) == 3);

    /* files: the directory sorted by name, each file's bytes at its selector */
    const char e820[20] = {1, 2, 3};
    CHECK(fw_cfg_add_file(f, "etc/e820", e820, sizeof(e820)) == 0);
    CHECK(fw_cfg_add_file(f, "bootorder", "/pci@i0cf8/*@2\n", 15) == 0);
    CHECK(fw_cfg_add_file(f, "etc/e820", e820, 1) == -EEXIST);
    CHECK(fw_cfg_add_file(f, "", e820, 1) == -EINVAL);
    char longname[FW_CFG_NAME_MAX + 2];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    CHECK(fw_cfg_add_file(f, longname, e820, 1) == -EINVAL);
    longname[FW_CFG_NAME_MAX] = 0; /* exactly the longest name */
    CHECK(fw_cfg_add_file(f, longname, "", 0) == 0);
    CHECK(fw_cfg_add_file(f, "big", e820, FW_CFG_MAX_FILE_LEN + 1) == -EINVAL);
    fw_select(&pio, FW_CFG_FILE_DIR);
    uint8_t dir[4 + 3 * 64];
    fw_read(&pio, dir, sizeof(dir));
    CHECK(be_get(dir, 4) == 3);
    const char *want[] = {longname, "bootorder", "etc/e820"};
    const uint32_t sizes[] = {0, 15, 20};
    for (unsigned i = 0; i < 3; i++) {
        const uint8_t *e = dir + 4 + 64 * i;
        CHECK(be_get(e, 4) == sizes[i]);
        CHECK(be_get(e + 4, 2) == FW_CFG_FILE_FIRST + i);
        CHECK(be_get(e + 6, 2) == 0);
        CHECK(!strncmp((const char *)e + 8, want[i], 56) && e[8 + 55] == 0);
    }
    fw_select(&pio, FW_CFG_FILE_FIRST + 2);
    fw_read(&pio, b, 20);
    CHECK(!memcmp(b, e820, 20));
    fw_select(&pio, FW_CFG_FILE_FIRST + 1);
    fw_read(&pio, b, 15);
    CHECK(!memcmp(b, "/pci@i0cf8/*@2\n", 15));
    /* selecting again rewinds */
    fw_select(&pio, FW_CFG_FILE_FIRST + 1);
    fw_read(&pio, b, 1);
    CHECK(b[0] == '/');

    /* hostile: past the end, unknown selectors, other sizes, writes to data; reads give 0 */
    struct fw_cfg_stats st0 = fw_cfg_get_stats(f);
    fw_select(&pio, FW_CFG_SIGNATURE);
    fw_read(&pio, b, 8);
    CHECK(!memcmp(b, "QEMU\0\0\0\0", 8));
    const uint16_t bad[] = {0x0002, 0x0018, FW_CFG_FILE_FIRST + 3, 0x3fff, 0x4000, 0x8000, 0xffff};
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        fw_select(&pio, bad[i]);
        memset(b, 0xaa, 4);
        fw_read(&pio, b, 4);
        CHECK(kova_le_get(b, 4) == 0);
    }
    uint8_t one = 0x19, four[4] = {0x19, 0, 0, 0};
    bus_write(&pio, FW_CFG_PORT_SEL, &one, 1);  /* byte write of the selector: ignored */
    bus_write(&pio, FW_CFG_PORT_DATA, &one, 1); /* data writes: ignored */
    bus_write(&pio, FW_CFG_PORT_SEL, four, 4);  /* beyond the ports: not fw_cfg's */
    bus_read(&pio, FW_CFG_PORT_SEL, b, 2);      /* the selector is write-only */
    CHECK(kova_le_get(b, 2) == 0);
    struct fw_cfg_stats st = fw_cfg_get_stats(f);
    CHECK(st.bad_selects == st0.bad_selects + 7);
    CHECK(st.past_end == st0.past_end + 4 + 7 * 4);
    CHECK(st.bad_access >= st0.bad_access + 3);
    bus_destroy(&pio);
    fw_cfg_free(f);

    /* the directory's limit */
    CHECK(fw_cfg_new(&f, 1) == 0);
    char name[16];
    for (unsigned i = 0; i < FW_CFG_MAX_FILES; i++) {
        snprintf(name, sizeof(name), "f%02u", i);
        CHECK(fw_cfg_add_file(f, name, name, 3) == 0);
    }
    CHECK(fw_cfg_add_file(f, "one-more", "x", 1) == -ENOSPC);
    fw_cfg_free(f);
}

/* Runs etc/table-loader as SeaBIOS does, with the tables at tables_addr. */
/* The BIOS image's placement: the ROM ends at 4 GiB above every device window, its last
 * 128 KiB (or all of a smaller image) ends at 1 MiB in RAM; unusable sizes are refused. */
static void test_firmware_layout(void)
{
    struct firmware_layout fl;
    CHECK(firmware_layout(256u << 10, &fl) == 0); /* Debian's bios.bin */
    CHECK(fl.rom_gpa == 0xfffc0000ULL);
    CHECK(fl.shadow_gpa == 0xe0000ULL && fl.shadow_len == (128u << 10));
    CHECK(fl.shadow_offset == (128u << 10));      /* the image's last 128 KiB */
    CHECK(firmware_layout(128u << 10, &fl) == 0); /* bios-microvm.bin */
    CHECK(fl.rom_gpa == 0xfffe0000ULL && fl.shadow_gpa == 0xe0000ULL && fl.shadow_offset == 0);
    CHECK(firmware_layout(64u << 10, &fl) == 0); /* smaller than the shadow: all of it */
    CHECK(fl.rom_gpa == 0xffff0000ULL && fl.shadow_gpa == 0xf0000ULL &&
          fl.shadow_len == (64u << 10) && fl.shadow_offset == 0);
    CHECK(firmware_layout(FIRMWARE_MAX, &fl) == 0);
    CHECK(fl.rom_gpa == 0xff000000ULL);
    /* every usable size: the reset vector (4 GiB - 16) is in the ROM, which stays clear of the
     * PCI MMIO window, the IOAPIC and the local APIC; the shadow ends at 1 MiB */
    for (size_t n = 64u << 10; n <= FIRMWARE_MAX; n += 64u << 10) {
        CHECK(firmware_layout(n, &fl) == 0);
        CHECK(fl.rom_gpa + n == (1ULL << 32) && fl.rom_gpa >= LAPIC_ADDR + 0x1000 &&
              fl.rom_gpa >= MMIO_PCI_END && fl.rom_gpa >= IOAPIC_ADDR + 0x1000);
        CHECK(fl.shadow_gpa + fl.shadow_len == BIOS_SHADOW_END);
        CHECK(fl.shadow_offset + fl.shadow_len == n);
    }
    const size_t bad[] = {
        0, 1, 4096, (64u << 10) - 1, (64u << 10) + 4096, FIRMWARE_MAX + (64u << 10), SIZE_MAX};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(!firmware_size_ok(bad[i]));
        CHECK(firmware_layout(bad[i], &fl) == -EINVAL);
    }
}

static void test_acpi_fw(void)
{
    struct acpi_fw fw;
    CHECK(acpi_build_fw(0, &fw) == -EINVAL);
    CHECK(acpi_build_fw(2, &fw) == 0);
    CHECK(fw.loader_len % ACPI_LOADER_ENTRY == 0 && fw.loader_len <= sizeof(fw.loader));
    const uint64_t tables_addr = 0x0fffe000;
    uint8_t rsdp[36], *tables = malloc(fw.tables_len);
    memcpy(rsdp, fw.rsdp, sizeof(rsdp));
    memcpy(tables, fw.tables, fw.tables_len);
    unsigned allocs = 0, pointers = 0, sums = 0, bad = 0;
    for (size_t off = 0; off < fw.loader_len; off += ACPI_LOADER_ENTRY) {
        const uint8_t *e = fw.loader + off;
        uint32_t cmd = (uint32_t)kova_le_get(e, 4);
        const char *f1 = (const char *)e + 4;
        bool is_rsdp = !strcmp(f1, "etc/acpi/rsdp");
        uint8_t *data = is_rsdp ? rsdp : tables;
        size_t len = is_rsdp ? sizeof(rsdp) : fw.tables_len;
        if (!is_rsdp && strcmp(f1, "etc/acpi/tables")) {
            bad++;
            continue;
        }
        if (cmd == 1) {
            allocs++;
            CHECK(e[4 + 56 + 4] == (is_rsdp ? 2 : 1)); /* FSEG for the RSDP, else HIGH */
        } else if (cmd == 2) {
            const char *src = (const char *)e + 4 + 56;
            uint32_t at = (uint32_t)kova_le_get(e + 4 + 112, 4);
            uint8_t size = e[4 + 116];
            CHECK(!strcmp(src, "etc/acpi/tables"));
            CHECK((size == 4 || size == 8) && at + size <= len);
            kova_le_put(data + at, size, kova_le_get(data + at, size) + tables_addr);
            pointers++;
        } else if (cmd == 3) {
            uint32_t at = (uint32_t)kova_le_get(e + 4 + 56, 4);
            uint32_t start = (uint32_t)kova_le_get(e + 4 + 60, 4);
            uint32_t n = (uint32_t)kova_le_get(e + 4 + 64, 4);
            CHECK(at < len && start + n <= len);
            data[at] = (uint8_t)(data[at] - acpi_checksum(data + start, n));
            sums++;
        } else {
            bad++;
        }
    }
    CHECK(allocs == 2 && pointers == 5 && sums == 4 && bad == 0);
    CHECK(!memcmp(rsdp, "RSD PTR ", 8) && acpi_checksum(rsdp, 20) == 0 &&
          acpi_checksum(rsdp, 36) == 0);
    uint64_t xsdt = kova_le_get(rsdp + 24, 8) - tables_addr;
    CHECK(xsdt < fw.tables_len && !memcmp(tables + xsdt, "XSDT", 4));
    CHECK(acpi_checksum(tables + xsdt, (uint32_t)kova_le_get(tables + xsdt + 4, 4)) == 0);
    const char *want[] = {"FACP", "APIC"};
    for (unsigned i = 0; i < 2; i++) {
        uint64_t t = kova_le_get(tables + xsdt + 36 + 8 * i, 8) - tables_addr;
        CHECK(t < fw.tables_len && !memcmp(tables + t, want[i], 4));
        CHECK(acpi_checksum(tables + t, (uint32_t)kova_le_get(tables + t + 4, 4)) == 0);
        if (i == 0) {
            uint64_t d32 = kova_le_get(tables + t + 40, 4) - tables_addr;
            uint64_t d64 = kova_le_get(tables + t + 140, 8) - tables_addr;
            CHECK(d32 == d64 && d64 < fw.tables_len && !memcmp(tables + d64, "DSDT", 4));
            CHECK(acpi_checksum(tables + d64, (uint32_t)kova_le_get(tables + d64 + 4, 4)) == 0);
        }
    }
    free(tables);
    acpi_fw_free(&fw);
}

int main(void)
{
    test_bus();
    test_mem();
    test_boot();
    test_acpi();
    test_serial();
    test_legacy();
    test_pci_virtio();
    test_virtq_features();
    test_eventfds();
    test_control();
    test_fw_cfg();
    test_acpi_fw();
    test_firmware_layout();
    return kt_finish("vmm unit tests");
}
