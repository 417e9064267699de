/* SPDX-License-Identifier: Apache-2.0 */
/* kova-vmm's command line: the options into struct kova_vmm_config, --disk into struct blk_spec. */
#include "cli.h"
#include "kova/common.h"
#include "kova/qcow2.h"
#include "kova/vmm.h"
#include "log.h"

#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- --disk ---- */

static int spec_err(char *err, size_t errlen, const char *fmt, const char *what)
{
    if (err && errlen)
        snprintf(err, errlen, fmt, what);
    return -EINVAL;
}

int blk_spec_parse(const char *spec, struct blk_spec *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    size_t n = strlen(spec);
    if (n >= KOVA_VMM_MAX_DISK_SPEC)
        return spec_err(err, errlen, "%s", "--disk: option too long");
    char buf[KOVA_VMM_MAX_DISK_SPEC];
    memcpy(buf, spec, n + 1);
    bool have_path = false, have_format = false;
    char *save = NULL;
    for (char *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq)
            return spec_err(err, errlen, "--disk: \"%s\" is not key=value", kv);
        *eq = '\0';
        const char *v = eq + 1;
        if (strcmp(kv, "path") == 0) {
            if (!*v || strlen(v) >= sizeof(out->path))
                return spec_err(err, errlen, "%s", "--disk: path= needs a file name");
            strcpy(out->path, v);
            have_path = true;
        } else if (strcmp(kv, "format") == 0) {
            out->format = (int)kova_disk_format_parse(v);
            if (!out->format)
                return spec_err(err, errlen, "--disk: unknown format \"%s\" (raw or qcow2)", v);
            have_format = true;
        } else if (strcmp(kv, "readonly") == 0) {
            if (strcmp(v, "on") == 0)
                out->readonly = true;
            else if (strcmp(v, "off") == 0)
                out->readonly = false;
            else
                return spec_err(err, errlen, "--disk: readonly= takes on or off, not \"%s\"", v);
        } else if (strcmp(kv, "serial") == 0) {
            size_t sl = strlen(v);
            if (sl > BLK_SPEC_SERIAL_MAX)
                return spec_err(err, errlen, "--disk: serial \"%s\" is longer than 20 bytes", v);
            for (size_t i = 0; i < sl; i++)
                if (v[i] < 0x21 || v[i] > 0x7e)
                    return spec_err(err, errlen,
                                    "--disk: serial \"%s\" must be printable ASCII without spaces",
                                    v);
            memcpy(out->serial, v, sl + 1);
        } else {
            return spec_err(err, errlen,
                            "--disk: unknown key \"%s\" (path, format, readonly, serial)", kv);
        }
    }
    if (!have_path)
        return spec_err(err, errlen, "%s", "--disk: path= is required");
    if (!have_format)
        return spec_err(err, errlen, "%s", "--disk: format=raw or format=qcow2 is required");
    return 0;
}

/* ---- --net ---- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* "xx:xx:xx:xx:xx:xx" (hex digits, either case) into mac. 0 or -EINVAL. */
static int parse_mac(const char *s, unsigned char *mac)
{
    if (strlen(s) != 17)
        return -EINVAL;
    for (int i = 0; i < 6; i++) {
        int hi = hexval(s[3 * i]), lo = hexval(s[3 * i + 1]);
        if (hi < 0 || lo < 0 || (i < 5 && s[3 * i + 2] != ':'))
            return -EINVAL;
        mac[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

int net_spec_parse(const char *spec, struct net_spec *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    out->fd = -1;
    out->vhost = NET_VHOST_AUTO;
    size_t n = strlen(spec);
    if (n >= 256)
        return spec_err(err, errlen, "%s", "--net: option too long");
    char buf[256];
    memcpy(buf, spec, n + 1);
    bool have_mac = false;
    char *save = NULL;
    for (char *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq)
            return spec_err(err, errlen, "--net: \"%s\" is not key=value", kv);
        *eq = '\0';
        const char *v = eq + 1;
        if (strcmp(kv, "tap") == 0) {
            size_t l = strlen(v);
            if (l == 0 || l > NET_SPEC_IFNAME_MAX || strchr(v, '/') || strcmp(v, ".") == 0 ||
                strcmp(v, "..") == 0)
                return spec_err(err, errlen,
                                "--net: tap= needs an interface name of 1 to 15 "
                                "bytes, not \"%s\"",
                                v);
            for (size_t i = 0; i < l; i++)
                if (v[i] <= 0x20 || v[i] > 0x7e || v[i] == ':')
                    return spec_err(err, errlen, "--net: bad interface name \"%s\"", v);
            memcpy(out->tap, v, l + 1);
        } else if (strcmp(kv, "fd") == 0) {
            char *end;
            errno = 0;
            long fd = (*v >= '0' && *v <= '9') ? strtol(v, &end, 10) : -1;
            if (fd < 0 || errno || *end || fd > INT32_MAX)
                return spec_err(err, errlen,
                                "--net: fd= takes a file descriptor number, not "
                                "\"%s\"",
                                v);
            out->fd = (int)fd;
        } else if (strcmp(kv, "mac") == 0) {
            if (parse_mac(v, out->mac) < 0)
                return spec_err(err, errlen, "--net: mac \"%s\" is not xx:xx:xx:xx:xx:xx", v);
            if (out->mac[0] & 1)
                return spec_err(err, errlen, "--net: mac %s is a multicast address", v);
            have_mac = true;
        } else if (strcmp(kv, "vhost") == 0) {
            if (strcmp(v, "on") == 0)
                out->vhost = NET_VHOST_ON;
            else if (strcmp(v, "off") == 0)
                out->vhost = NET_VHOST_OFF;
            else if (strcmp(v, "auto") == 0)
                out->vhost = NET_VHOST_AUTO;
            else
                return spec_err(err, errlen, "--net: vhost= takes on, off or auto, not \"%s\"", v);
        } else {
            return spec_err(err, errlen, "--net: unknown key \"%s\" (tap, fd, mac, vhost)", kv);
        }
    }
    if ((out->tap[0] != '\0') == (out->fd >= 0))
        return spec_err(err, errlen, "%s", "--net: exactly one of tap=NAME and fd=N is required");
    if (!have_mac)
        return spec_err(err, errlen, "%s", "--net: mac= is required");
    return 0;
}

/* ---- the options ---- */

void kova_vmm_usage(FILE *out)
{
    fprintf(out,
            "Usage: kova-vmm --kernel BZIMAGE [options]\n"
            "       kova-vmm --disk ... [--firmware BIOS] [options]\n"
            "Boots a Linux bzImage, or the disks through firmware, in a KVM virtual machine.\n\n"
            "  --kernel PATH          Linux bzImage (64-bit boot protocol), booted directly\n"
            "  --initrd PATH          initramfs / initrd image (with --kernel)\n"
            "  --cmdline TEXT         kernel command line (with --kernel; default\n"
            "                         \"console=ttyS0\")\n"
            "  --firmware PATH        without --kernel: the BIOS that boots the first disk\n"
            "                         (default %s)\n"
            "  --uuid UUID            the machine's UUID, as SMBIOS shows it\n"
            "  --cpus N               vCPUs, 1..%d (default 1)\n"
            "  --memory MIB           guest memory in MiB, at least %d (default 256)\n"
            "  --console-log PATH     append the serial console (COM1) to this file\n"
            "  --console-stdout       also copy the serial console to stdout\n"
            "  --control-socket PATH  unix socket for JSON-lines control (status, pause,\n"
            "                         resume, powerdown, reset, quit, boot-time)\n"
            "  --disk path=FILE,format=raw|qcow2[,readonly=on][,serial=S]\n"
            "                         a virtio-blk disk (repeatable, up to %d: vda, vdb, ...);\n"
            "                         serial: up to 20 printable bytes (GET_ID)\n"
            "  --net tap=NAME|fd=N,mac=MAC[,vhost=on|off|auto]\n"
            "                         a virtio-net NIC on a tap (repeatable, up to %d: eth0,\n"
            "                         eth1, ...); fd=N: an inherited tap fd (IFF_TAP,\n"
            "                         IFF_NO_PI, IFF_VNET_HDR); vhost: the kernel's\n"
            "                         vhost-net moves the frames (on: required; auto, the\n"
            "                         default: where /dev/vhost-net works; off: userspace)\n"
            "  --log-level LEVEL      error, warn, info (default) or debug; logs go to stderr\n"
            "  --sandbox-user USER    run the guest as USER (a name or UID[:GID]); as root the\n"
            "                         default is \"nobody\"; otherwise the caller's own uid\n"
            "  --no-sandbox           debugging only: no user change, no_new_privs, Landlock\n"
            "                         or seccomp (see README, \"kova-vmm's sandbox\")\n"
            "  --help                 this text\n\n"
            "Exit status: 0 guest powered off or quit, 1 bad arguments or input files,\n"
            "2 KVM or internal error, 3 guest triple fault. A guest reboot restarts the guest\n"
            "in the same process.\n",
            KOVA_VMM_FIRMWARE, KOVA_VMM_MAX_CPUS, KOVA_VMM_MIN_MEMORY_MIB, KOVA_VMM_MAX_DISKS,
            KOVA_VMM_MAX_NETS);
}

static int parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    if (!s || !*s || *s == '-')
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

int kova_vmm_parse_args(int argc, char **argv, struct kova_vmm_config *cfg)
{
    enum {
        O_KERNEL = 256,
        O_INITRD,
        O_CMDLINE,
        O_CPUS,
        O_MEMORY,
        O_LOG,
        O_STDOUT,
        O_CTL,
        O_LEVEL,
        O_DISK,
        O_NET,
        O_FIRMWARE,
        O_UUID,
        O_SANDBOX_USER,
        O_NO_SANDBOX,
        O_HELP
    };
    static const struct option opts[] = {
        {"kernel", required_argument, NULL, O_KERNEL},
        {"firmware", required_argument, NULL, O_FIRMWARE},
        {"uuid", required_argument, NULL, O_UUID},
        {"initrd", required_argument, NULL, O_INITRD},
        {"cmdline", required_argument, NULL, O_CMDLINE},
        {"cpus", required_argument, NULL, O_CPUS},
        {"memory", required_argument, NULL, O_MEMORY},
        {"console-log", required_argument, NULL, O_LOG},
        {"console-stdout", no_argument, NULL, O_STDOUT},
        {"control-socket", required_argument, NULL, O_CTL},
        {"log-level", required_argument, NULL, O_LEVEL},
        {"disk", required_argument, NULL, O_DISK},
        {"net", required_argument, NULL, O_NET},
        {"sandbox-user", required_argument, NULL, O_SANDBOX_USER},
        {"no-sandbox", no_argument, NULL, O_NO_SANDBOX},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    memset(cfg, 0, sizeof(*cfg));
    cfg->cpus = 1;
    cfg->memory_mib = 256;
    cfg->log_level = "info";
    optind = 1;
    opterr = 0;
    int o;
    uint64_t v;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case O_KERNEL:
            cfg->kernel = optarg;
            break;
        case O_FIRMWARE:
            cfg->firmware = optarg;
            break;
        case O_UUID:
            if (!kova_is_uuid(optarg)) {
                fprintf(stderr, "kova-vmm: --uuid: not a UUID: %s\n", optarg);
                return -EINVAL;
            }
            cfg->uuid = optarg;
            break;
        case O_INITRD:
            cfg->initrd = optarg;
            break;
        case O_CMDLINE:
            cfg->cmdline = optarg;
            break;
        case O_CPUS:
            if (parse_uint(optarg, KOVA_VMM_MAX_CPUS, &v) < 0 || v == 0) {
                fprintf(stderr, "kova-vmm: --cpus takes a number from 1 to %d\n",
                        KOVA_VMM_MAX_CPUS);
                return -EINVAL;
            }
            cfg->cpus = (unsigned)v;
            break;
        case O_MEMORY:
            if (parse_uint(optarg, UINT64_C(1) << 40, &v) < 0 || v < KOVA_VMM_MIN_MEMORY_MIB) {
                fprintf(stderr, "kova-vmm: --memory takes MiB, at least %d\n",
                        KOVA_VMM_MIN_MEMORY_MIB);
                return -EINVAL;
            }
            cfg->memory_mib = v;
            break;
        case O_LOG:
            cfg->console_log = optarg;
            break;
        case O_STDOUT:
            cfg->console_stdout = true;
            break;
        case O_CTL:
            cfg->control_socket = optarg;
            break;
        case O_LEVEL: {
            int l;
            if (kova_log_level_parse(optarg, &l) < 0) {
                fprintf(stderr, "kova-vmm: --log-level is error, warn, info or debug\n");
                return -EINVAL;
            }
            cfg->log_level = optarg;
            break;
        }
        case O_DISK: {
            struct blk_spec *spec = malloc(sizeof(*spec));
            char err[256];
            int pr = spec ? blk_spec_parse(optarg, spec, err, sizeof(err)) : -ENOMEM;
            free(spec);
            if (pr < 0) {
                fprintf(stderr, "kova-vmm: %s\n", spec ? err : "out of memory");
                return -EINVAL;
            }
            if (cfg->ndisks == KOVA_VMM_MAX_DISKS) {
                fprintf(stderr, "kova-vmm: at most %d --disk options\n", KOVA_VMM_MAX_DISKS);
                return -EINVAL;
            }
            cfg->disks[cfg->ndisks++] = optarg;
            break;
        }
        case O_NET: {
            struct net_spec spec;
            char err[256];
            if (net_spec_parse(optarg, &spec, err, sizeof(err)) < 0) {
                fprintf(stderr, "kova-vmm: %s\n", err);
                return -EINVAL;
            }
            if (cfg->nnets == KOVA_VMM_MAX_NETS) {
                fprintf(stderr, "kova-vmm: at most %d --net options\n", KOVA_VMM_MAX_NETS);
                return -EINVAL;
            }
            cfg->nets[cfg->nnets++] = optarg;
            break;
        }
        case O_SANDBOX_USER:
            cfg->sandbox_user = optarg;
            break;
        case O_NO_SANDBOX:
            cfg->no_sandbox = true;
            break;
        case O_HELP:
            kova_vmm_usage(stdout);
            return 1;
        default:
            fprintf(stderr, "kova-vmm: unknown or incomplete option %s (see --help)\n",
                    argv[optind - 1]);
            return -EINVAL;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "kova-vmm: unexpected argument %s (see --help)\n", argv[optind]);
        return -EINVAL;
    }
    if (cfg->kernel && cfg->firmware) {
        fprintf(stderr, "kova-vmm: --kernel and --firmware exclude each other (see --help)\n");
        return -EINVAL;
    }
    if (!cfg->kernel && (cfg->initrd || cfg->cmdline)) {
        fprintf(stderr, "kova-vmm: --initrd and --cmdline need --kernel (see --help)\n");
        return -EINVAL;
    }
    if (!cfg->kernel && cfg->ndisks == 0) {
        fprintf(stderr, "kova-vmm: nothing to boot: --kernel, or a --disk for the firmware "
                        "(see --help)\n");
        return -EINVAL;
    }
    if (cfg->kernel && !cfg->cmdline)
        cfg->cmdline = "console=ttyS0";
    if (!cfg->kernel && !cfg->firmware)
        cfg->firmware = KOVA_VMM_FIRMWARE;
    return 0;
}
