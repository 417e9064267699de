/* SPDX-License-Identifier: Apache-2.0 */
/* kova network definitions (kova/network.h): [network:NAME] keys, defaults, checks, fixed-IP
 * choice and port naming. Pure: no I/O but getrandom(2) for MACs. */
#include "kova/network.h"
#include "kova/common.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* The namespace of kova's name-derived network uuids (UUIDv5 of "network:" + name). Fixed
 * forever: changing it changes every derived uuid. */
static const uint8_t kova_net_ns[16] = {0xe1, 0x78, 0x35, 0xb4, 0xef, 0xf6, 0x44, 0xb5,
                                        0xa7, 0x94, 0xf9, 0x8f, 0xb1, 0x4f, 0x5a, 0x74};

static uint32_t prefix_mask(unsigned prefix)
{
    return prefix ? ~0u << (32 - prefix) : 0;
}

static uint32_t net_bcast(const struct kova_net_def *d)
{
    return d->net | ~prefix_mask(d->prefix);
}

int kova_net_ip_parse(const char *s, uint32_t *out)
{
    uint32_t ip = 0;
    for (int part = 0; part < 4; part++) {
        if (part && *s++ != '.')
            return -EINVAL;
        if (!isdigit((unsigned char)*s))
            return -EINVAL;
        if (s[0] == '0' && isdigit((unsigned char)s[1]))
            return -EINVAL; /* leading zero: octal to inet_aton, refused here */
        unsigned v = 0;
        int digits = 0;
        while (isdigit((unsigned char)*s) && digits < 4) {
            v = v * 10 + (unsigned)(*s++ - '0');
            digits++;
        }
        if (digits > 3 || v > 255)
            return -EINVAL;
        ip = ip << 8 | v;
    }
    if (*s)
        return -EINVAL;
    *out = ip;
    return 0;
}

void kova_net_ip_format(uint32_t ip, char out[KOVA_NET_IP_STRLEN])
{
    snprintf(out, KOVA_NET_IP_STRLEN, "%u.%u.%u.%u", ip >> 24, ip >> 16 & 255, ip >> 8 & 255,
             ip & 255);
}

static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n >= KOVA_NET_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
            return false;
    return true;
}

/* An interface name the kernel takes: 1..15 bytes, no '/', ':' or whitespace, not "." or "..". */
static bool ifname_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n >= KOVA_NET_IFNAME || !strcmp(s, ".") || !strcmp(s, ".."))
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '/' || s[i] == ':' || isspace((unsigned char)s[i]) ||
            !isprint((unsigned char)s[i]))
            return false;
    return true;
}

int kova_net_def_init(struct kova_net_def *d, const char *name, char *err, size_t errlen)
{
    memset(d, 0, sizeof(*d));
    if (!name || !name_ok(name))
        return kova_err(err, errlen, -EINVAL,
                        "network name \"%s\": 1..63 characters of [A-Za-z0-9._-] expected",
                        name ? name : "");
    memcpy(d->name, name, strlen(name) + 1);
    return 0;
}

static int parse_cidr(const char *v, uint32_t *net, unsigned *prefix)
{
    const char *slash = strchr(v, '/');
    char ip[KOVA_NET_IP_STRLEN];
    if (!slash || (size_t)(slash - v) >= sizeof(ip))
        return -EINVAL;
    memcpy(ip, v, (size_t)(slash - v));
    ip[slash - v] = '\0';
    const char *p = slash + 1;
    if (!isdigit((unsigned char)p[0]) || (p[0] == '0' && p[1]) ||
        (p[1] && (!isdigit((unsigned char)p[1]) || p[2])))
        return -EINVAL;
    unsigned pfx = (unsigned)atoi(p);
    uint32_t a;
    if (kova_net_ip_parse(ip, &a) < 0 || pfx < 8 || pfx > 30 || (a & ~prefix_mask(pfx)))
        return -EINVAL;
    *net = a;
    *prefix = pfx;
    return 0;
}

/* The comma-separated addresses of `dns = A, B` (blanks around each allowed; "" for none). */
static int parse_dns(const char *v, struct kova_net_def *d)
{
    uint32_t dns[KOVA_NET_DNS_MAX];
    unsigned n = 0;
    while (isspace((unsigned char)*v))
        v++;
    while (*v) {
        const char *end = v + strcspn(v, ",");
        const char *e = end;
        while (e > v && isspace((unsigned char)e[-1]))
            e--;
        char ip[KOVA_NET_IP_STRLEN];
        if (n == KOVA_NET_DNS_MAX || e == v || (size_t)(e - v) >= sizeof(ip))
            return -EINVAL;
        memcpy(ip, v, (size_t)(e - v));
        ip[e - v] = '\0';
        if (kova_net_ip_parse(ip, &dns[n++]) < 0)
            return -EINVAL;
        if (!*end)
            break;
        v = end + 1;
        while (isspace((unsigned char)*v))
            v++;
        if (!*v)
            return -EINVAL; /* a trailing comma */
    }
    memcpy(d->dns, dns, sizeof(dns));
    d->ndns = n;
    return 0;
}

int kova_net_def_set(struct kova_net_def *d, const char *key, const char *value, char *err,
                     size_t errlen)
{
    const char *v = value ? value : "";
    if (!strcmp(key, "cidr")) {
        if (parse_cidr(v, &d->net, &d->prefix) < 0)
            return kova_err(err, errlen, -EINVAL,
                            "network %s: cidr \"%s\": a network address A.B.C.D/P with P 8..30 "
                            "and no host bits expected",
                            d->name, v);
    } else if (!strcmp(key, "gateway")) {
        if (kova_net_ip_parse(v, &d->gateway) < 0 || !d->gateway)
            return kova_err(err, errlen, -EINVAL, "network %s: gateway \"%s\": not an address",
                            d->name, v);
    } else if (!strcmp(key, "dns")) {
        if (parse_dns(v, d) < 0)
            return kova_err(err, errlen, -EINVAL,
                            "network %s: dns \"%s\": up to %d comma-separated addresses expected",
                            d->name, v, KOVA_NET_DNS_MAX);
    } else if (!strcmp(key, "bridge") || !strcmp(key, "masquerade")) {
        if (!ifname_ok(v))
            return kova_err(err, errlen, -EINVAL,
                            "network %s: %s \"%s\": an interface name of 1..15 characters "
                            "without '/', ':' or blanks expected",
                            d->name, key, v);
        char *dst = !strcmp(key, "bridge") ? d->bridge : d->masquerade;
        memcpy(dst, v, strlen(v) + 1);
    } else if (!strcmp(key, "mtu")) {
        char *end;
        errno = 0;
        unsigned long m = isdigit((unsigned char)v[0]) ? strtoul(v, &end, 10) : 0;
        if (!m || errno || *end || m < 576 || m > 9000)
            return kova_err(err, errlen, -EINVAL, "network %s: mtu \"%s\": 576..9000 expected",
                            d->name, v);
        d->mtu = (unsigned)m;
    } else if (!strcmp(key, "uuid")) {
        if (!kova_is_uuid(v))
            return kova_err(err, errlen, -EINVAL, "network %s: uuid \"%s\": not a uuid", d->name,
                            v);
        for (int i = 0; i < KOVA_NET_UUID_LEN; i++)
            d->uuid[i] = (char)tolower((unsigned char)v[i]);
        d->uuid[KOVA_NET_UUID_LEN] = '\0';
    } else {
        return kova_err(err, errlen, -EINVAL,
                        "network %s: unknown key \"%s\" (cidr, gateway, dns, bridge, masquerade, "
                        "mtu, uuid)",
                        d->name, key);
    }
    return 0;
}

/* UUIDv5 (RFC 4122 §4.3): SHA-1 of the namespace and "network:" + name. */
static int derive_uuid(const char *name, char out[KOVA_NET_UUID_LEN + 1])
{
    uint8_t data[16 + 8 + KOVA_NET_NAME_MAX], md[EVP_MAX_MD_SIZE];
    size_t n = strlen(name);
    unsigned mdlen = 0;
    memcpy(data, kova_net_ns, 16);
    memcpy(data + 16, "network:", 8);
    memcpy(data + 24, name, n);
    if (!EVP_Digest(data, 24 + n, md, &mdlen, EVP_sha1(), NULL) || mdlen < 16)
        return -EIO;
    md[6] = (uint8_t)((md[6] & 0x0f) | 0x50);
    md[8] = (uint8_t)((md[8] & 0x3f) | 0x80);
    char *p = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        p += sprintf(p, "%02x", md[i]);
    }
    return 0;
}

int kova_net_def_finish(struct kova_net_def *d, char *err, size_t errlen)
{
    if (!d->prefix)
        return kova_err(err, errlen, -EINVAL, "network %s: cidr is required", d->name);
    if (!d->gateway)
        d->gateway = d->net + 1;
    if ((d->gateway & prefix_mask(d->prefix)) != d->net || d->gateway == d->net ||
        d->gateway == net_bcast(d)) {
        char g[KOVA_NET_IP_STRLEN], n[KOVA_NET_IP_STRLEN];
        kova_net_ip_format(d->gateway, g);
        kova_net_ip_format(d->net, n);
        return kova_err(err, errlen, -EINVAL,
                        "network %s: gateway %s is not a host address of %s/%u", d->name, g, n,
                        d->prefix);
    }
    if (!d->uuid[0] && derive_uuid(d->name, d->uuid) < 0)
        return kova_err(err, errlen, -EIO, "network %s: cannot derive its uuid (SHA-1)", d->name);
    if (!d->bridge[0])
        snprintf(d->bridge, sizeof(d->bridge), "kovabr%.8s", d->uuid);
    if (!d->mtu)
        d->mtu = 1500;
    return 0;
}

int kova_net_defs_check(const struct kova_net_def *d, size_t n, char *err, size_t errlen)
{
    if (n > KOVA_NET_MAX)
        return kova_err(err, errlen, -EINVAL, "%zu networks: at most %d", n, KOVA_NET_MAX);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < i; j++) {
            const char *what = NULL;
            if (!strcmp(d[i].name, d[j].name))
                what = "the same name";
            else if (!strcmp(d[i].uuid, d[j].uuid))
                what = "the same uuid";
            else if (!strcmp(d[i].bridge, d[j].bridge))
                what = "the same bridge";
            else if (!strcmp(d[i].bridge, d[j].masquerade) || !strcmp(d[j].bridge, d[i].masquerade))
                what = "a bridge that is the other's masquerade uplink";
            else {
                uint32_t m = prefix_mask(d[i].prefix < d[j].prefix ? d[i].prefix : d[j].prefix);
                if ((d[i].net & m) == (d[j].net & m))
                    what = "overlapping CIDRs";
            }
            if (what)
                return kova_err(err, errlen, -EINVAL, "networks %s and %s have %s", d[j].name,
                                d[i].name, what);
        }
    }
    return 0;
}

bool kova_net_ip_usable(const struct kova_net_def *d, uint32_t ip)
{
    return d->prefix && (ip & prefix_mask(d->prefix)) == d->net && ip != d->net &&
           ip != net_bcast(d) && ip != d->gateway;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int kova_net_pick_ip(const struct kova_net_def *d, const uint32_t *used, size_t nused,
                     uint32_t *out)
{
    if (!d->prefix)
        return -EINVAL;
    uint32_t *s = NULL;
    if (nused) {
        s = malloc(nused * sizeof(*s));
        if (!s)
            return -ENOMEM;
        memcpy(s, used, nused * sizeof(*s));
        qsort(s, nused, sizeof(*s), cmp_u32);
    }
    size_t k = 0;
    int r = -ENOSPC;
    for (uint32_t ip = d->net + 1; ip < net_bcast(d); ip++) {
        while (k < nused && s[k] < ip)
            k++;
        if (ip != d->gateway && (k == nused || s[k] != ip)) {
            *out = ip;
            r = 0;
            break;
        }
    }
    free(s);
    return r;
}

void kova_net_port_tap(const char *port_id, char out[KOVA_NET_IFNAME])
{
    snprintf(out, KOVA_NET_IFNAME, "tap%.11s", port_id);
}

int kova_net_port_mac(char out[KOVA_NET_MAC_LEN + 1])
{
    uint8_t b[3];
    ssize_t n;
    do
        n = getrandom(b, sizeof(b), 0);
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof(b))
        return n < 0 ? -errno : -EIO;
    snprintf(out, KOVA_NET_MAC_LEN + 1, "fa:16:3e:%02x:%02x:%02x", b[0], b[1], b[2]);
    return 0;
}
