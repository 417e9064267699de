/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kova metadata: the documents (kova/metadata.h): Nova's OpenStack and EC2 trees rendered from a
 * struct kova_md_instance, for the metadata service (kova_md_getn) and the config drive
 * (kova_md_config_drive_files). Pure but for getrandom(2) (random_seed).
 */
#include "kova/metadata.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <jansson.h>

#include "kova/common.h"
#include "md_internal.h"

static const char CT_TEXT[] = "text/plain";
static const char CT_JSON[] = "application/json";

/* ---- versions ---- */

static const char *const os_versions[] = {
    "2012-08-10", /* FOLSOM */
    "2013-04-04", /* GRIZZLY: random_seed, password */
    "2013-10-17", /* HAVANA: vendor_data.json */
    "2015-10-15", /* LIBERTY: project_id, network_data.json */
    "2016-06-30", /* NEWTON_ONE: devices */
    "2016-10-06", /* NEWTON_TWO: vendor_data2.json */
    "2017-02-22", /* OCATA */
    "2018-08-27", /* ROCKY */
    "2020-10-14", /* VICTORIA: dedicated_cpus */
};
enum {
    OS_GRIZZLY = 1,
    OS_HAVANA = 2,
    OS_LIBERTY = 3,
    OS_NEWTON_ONE = 4,
    OS_NEWTON_TWO = 5,
    OS_VICTORIA = 8,
    OS_N = 9,
};

static const char *const ec2_versions[] = {
    "1.0",        "2007-01-19", "2007-03-01", "2007-08-29", "2007-10-10",
    "2007-12-15", "2008-02-01", "2008-09-01", "2009-04-04",
};
enum {
    EC2_2007_01_19 = 1,
    EC2_2007_08_29 = 3,
    EC2_2007_12_15 = 5,
    EC2_2008_02_01 = 6,
    EC2_2008_09_01 = 7,
    EC2_N = 9,
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* The index of version tok in v[0..n-1] ("latest": the last), or -1. */
static int version_index(const char *const *v, int n, const char *tok)
{
    if (!strcmp(tok, "latest"))
        return n - 1;
    for (int i = 0; i < n; i++)
        if (!strcmp(tok, v[i]))
            return i;
    return -1;
}

/* ---- a growing output buffer, always NUL-terminated past len ---- */

struct buf {
    char *p;
    size_t len, cap;
    int rc; /* sticky: -ENOMEM */
};

static bool buf_reserve(struct buf *b, size_t more)
{
    if (b->rc)
        return false;
    if (more > SIZE_MAX / 2 - b->len) {
        b->rc = -ENOMEM;
        return false;
    }
    size_t need = b->len + more + 1;
    if (need <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->rc = -ENOMEM;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

static void buf_add(struct buf *b, const void *s, size_t n)
{
    if (!buf_reserve(b, n))
        return;
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_str(struct buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

/* One line of a listing: "\n" between lines, none after the last (Nova's '\n'.join). */
static void buf_line(struct buf *b, const char *s)
{
    if (b->len)
        buf_add(b, "\n", 1);
    buf_str(b, s);
}

/* ---- base64 ---- */

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void b64_encode(const unsigned char *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = b64chars[(v >> 18) & 63];
        out[o++] = b64chars[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64chars[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64chars[v & 63] : '=';
    }
    out[o] = '\0';
}

static int b64_val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int kova_md_b64_decode(const char *s, unsigned char **out, size_t *outlen)
{
    size_t n = strlen(s);
    unsigned char *o = malloc(n / 4 * 3 + 3);
    if (!o)
        return -ENOMEM;
    size_t len = 0, q = 0, pad = 0;
    unsigned acc = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
            continue;
        if (c == '=') {
            /* padding: only in the last two places of a quartet */
            if (q < 2)
                goto bad;
            pad++;
            acc <<= 6;
            if (++q == 4) {
                o[len++] = (unsigned char)(acc >> 16);
                if (pad == 1)
                    o[len++] = (unsigned char)(acc >> 8);
                q = 0;
                acc = 0;
            }
            continue;
        }
        int v = b64_val(c);
        if (v < 0 || pad)
            goto bad;
        acc = acc << 6 | (unsigned)v;
        if (++q == 4) {
            o[len++] = (unsigned char)(acc >> 16);
            o[len++] = (unsigned char)(acc >> 8);
            o[len++] = (unsigned char)acc;
            q = 0;
            acc = 0;
        }
    }
    if (q != 0)
        goto bad;
    *out = o;
    *outlen = len;
    return 0;
bad:
    free(o);
    return -EINVAL;
}

/* ---- the hostname ---- */

void kova_md_hostname(const char *name, const char *uuid, char out[KOVA_MD_HOSTNAME_MAX])
{
    char tmp[KOVA_MD_HOSTNAME_MAX];
    size_t n = 0;
    /* Nova: characters past Latin-1 dropped, then cut to 63; here: bytes past ASCII */
    for (const char *p = name ? name : ""; *p && n < 63; p++)
        if (!((unsigned char)*p & 0x80))
            tmp[n++] = *p;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = tmp[i];
        if (c == ' ' || c == '_' || c == '.')
            c = '-';
        else if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            continue;
        tmp[o++] = c;
    }
    size_t a = 0, e = o;
    while (a < e && tmp[a] == '-')
        a++;
    while (e > a && tmp[e - 1] == '-')
        e--;
    if (a == e) {
        snprintf(out, KOVA_MD_HOSTNAME_MAX, "Server-%s", uuid ? uuid : "");
        return;
    }
    memcpy(out, tmp + a, e - a);
    out[e - a] = '\0';
}

/* ---- one rendering: the instance with its derived values ---- */

struct md {
    const struct kova_md_instance *in;
    unsigned char *ud; /* the decoded user data; NULL: none */
    size_t udlen;
    bool has_ud;
    char hostname[KOVA_MD_HOSTNAME_MAX + 256]; /* with ".dhcp_domain" */
    char instance_id[32], ami_id[16], reservation_id[16];
    json_t *meta; /* the parsed meta_json (an object) */
};

static const char *S(const char *s)
{
    return s ? s : "";
}

static void md_free(struct md *m)
{
    free(m->ud);
    json_decref(m->meta);
}

static int md_init(struct md *m, const struct kova_md_instance *in)
{
    memset(m, 0, sizeof(*m));
    m->in = in;
    if (in->user_data_b64) {
        int rc = kova_md_b64_decode(in->user_data_b64, &m->ud, &m->udlen);
        if (rc)
            return rc;
        m->has_ud = true;
    }
    char h[KOVA_MD_HOSTNAME_MAX];
    kova_md_hostname(in->name, in->uuid, h);
    if (in->dhcp_domain && *in->dhcp_domain)
        snprintf(m->hostname, sizeof(m->hostname), "%s.%.250s", h, in->dhcp_domain);
    else
        snprintf(m->hostname, sizeof(m->hostname), "%s", h);
    snprintf(m->instance_id, sizeof(m->instance_id), "i-%08llx", (unsigned long long)in->seq);
    /* ami-id: Nova's is the image's EC2 id (ami-%08x); here the first 8 hex digits of its id */
    const char *img = S(in->image_id);
    bool hex8 = true;
    for (int i = 0; i < 8 && hex8; i++) /* (stops at the NUL of a short id) */
        hex8 = kova_hexval(img[i]) >= 0;
    snprintf(m->ami_id, sizeof(m->ami_id), "ami-");
    for (int i = 0; i < 8; i++) {
        char c = hex8 ? img[i] : '0';
        m->ami_id[4 + i] = (c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
    }
    m->ami_id[12] = '\0';
    if (in->reservation_id)
        snprintf(m->reservation_id, sizeof(m->reservation_id), "%s", in->reservation_id);
    else
        snprintf(m->reservation_id, sizeof(m->reservation_id), "r-%.8s", S(in->uuid));
    json_error_t jerr;
    m->meta = json_loads(in->meta_json ? in->meta_json : "{}", JSON_REJECT_DUPLICATES, &jerr);
    if (!m->meta || !json_is_object(m->meta))
        return -EINVAL;
    return 0;
}

/* ---- JSON helpers with a sticky error ---- */

static json_t *jstr(const char *s)
{
    return json_string(S(s));
}

static void oset(json_t *o, const char *k, json_t *v, int *rc)
{
    if (!o || !v) {
        if (!*rc)
            *rc = -EINVAL; /* a string that is not UTF-8 (or out of memory) */
        json_decref(v);
        return;
    }
    if (json_object_set_new(o, k, v) && !*rc)
        *rc = -ENOMEM;
}

static void aapp(json_t *a, json_t *v, int *rc)
{
    if (!a || !v) {
        if (!*rc)
            *rc = -EINVAL;
        json_decref(v);
        return;
    }
    if (json_array_append_new(a, v) && !*rc)
        *rc = -ENOMEM;
}

/* Dumps j (taken) into b as Nova's jsonutils does (", " and ": ", ASCII only). */
static int dump_json(json_t *j, int rc, struct buf *b)
{
    if (!j)
        rc = rc ? rc : -ENOMEM;
    if (!rc) {
        size_t need = json_dumpb(j, NULL, 0, JSON_ENSURE_ASCII);
        if (!need)
            rc = -ENOMEM;
        else if (buf_reserve(b, need)) {
            json_dumpb(j, b->p + b->len, need, JSON_ENSURE_ASCII);
            b->len += need;
            b->p[b->len] = '\0';
        }
        rc = rc ? rc : b->rc;
    }
    json_decref(j);
    return rc;
}

static void ip_str(uint32_t ip, char out[16])
{
    snprintf(out, 16, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255);
}

static bool has_key(const struct kova_md_instance *in)
{
    return in->nkeys > 0 && in->keys && in->keys[0].name && in->keys[0].name[0];
}

/* ---- the OpenStack documents ---- */

static int meta_data_json(const struct md *m, int ver, struct buf *b)
{
    const struct kova_md_instance *in = m->in;
    int rc = 0;
    json_t *o = json_object();
    oset(o, "uuid", jstr(in->uuid), &rc);
    if (json_object_size(m->meta))
        oset(o, "meta", json_deep_copy(m->meta), &rc);
    if (has_key(in)) {
        const struct kova_md_key *k = &in->keys[0];
        json_t *pk = json_object();
        oset(pk, k->name, jstr(k->data), &rc);
        oset(o, "public_keys", pk, &rc);
        json_t *keys = json_array(), *one = json_object();
        oset(one, "name", jstr(k->name), &rc);
        oset(one, "type", jstr(k->type ? k->type : "ssh"), &rc);
        oset(one, "data", jstr(k->data), &rc);
        aapp(keys, one, &rc);
        oset(o, "keys", keys, &rc);
    }
    oset(o, "hostname", jstr(m->hostname), &rc);
    oset(o, "name", jstr(in->name), &rc);
    oset(o, "launch_index", json_integer(in->launch_index), &rc);
    oset(o, "availability_zone", in->availability_zone ? jstr(in->availability_zone) : json_null(),
         &rc);
    if (ver >= OS_GRIZZLY) {
        unsigned char seed[512];
        char enc[4 * (sizeof(seed) + 2) / 3 + 1];
        size_t got = 0;
        while (got < sizeof(seed)) {
            ssize_t r = getrandom(seed + got, sizeof(seed) - got, 0);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                rc = rc ? rc : -errno;
                break;
            }
            got += (size_t)r;
        }
        b64_encode(seed, sizeof(seed), enc);
        oset(o, "random_seed", json_string(enc), &rc);
    }
    if (ver >= OS_LIBERTY)
        oset(o, "project_id", jstr(in->project_id), &rc);
    if (ver >= OS_NEWTON_ONE)
        oset(o, "devices", json_array(), &rc);
    if (ver >= OS_VICTORIA)
        oset(o, "dedicated_cpus", json_array(), &rc);
    return dump_json(o, rc, b);
}

static json_t *dns_service(uint32_t ip)
{
    char s[16];
    ip_str(ip, s);
    return json_pack("{s:s, s:s}", "type", "dns", "address", s);
}

/* Nova's netutils.get_network_metadata for static IPv4 ports on bridges; {} without ports. */
static int network_data_json(const struct md *m, struct buf *b)
{
    const struct kova_md_instance *in = m->in;
    int rc = 0;
    json_t *o = json_object();
    if (!in->nnics || !in->nics)
        return dump_json(o, rc, b);
    json_t *links = json_array(), *nets = json_array(), *services = json_array();
    uint32_t seen[3 * 16];
    size_t nseen = 0;
    int net_num = 0;
    for (size_t i = 0; i < in->nnics; i++) {
        const struct kova_md_nic *c = &in->nics[i];
        char tap[16];
        snprintf(tap, sizeof(tap), "tap%.11s", S(c->port_id));
        json_t *l = json_object();
        oset(l, "id", json_string(tap), &rc);
        oset(l, "vif_id", jstr(c->port_id), &rc);
        oset(l, "type", json_string("bridge"), &rc);
        oset(l, "mtu", c->mtu ? json_integer(c->mtu) : json_null(), &rc);
        oset(l, "ethernet_mac_address", jstr(c->mac), &rc);
        aapp(links, l, &rc);
        if (!c->ip)
            continue;
        char id[24], ip[16], mask[16], gw[16];
        snprintf(id, sizeof(id), "network%d", net_num++);
        ip_str(c->ip, ip);
        unsigned p = c->prefix > 32 ? 32 : c->prefix;
        ip_str(p ? ~0u << (32 - p) : 0, mask);
        json_t *n = json_object();
        oset(n, "id", json_string(id), &rc);
        oset(n, "type", json_string("ipv4"), &rc);
        oset(n, "link", json_string(tap), &rc);
        oset(n, "ip_address", json_string(ip), &rc);
        oset(n, "netmask", json_string(mask), &rc);
        json_t *routes = json_array();
        if (c->gateway) {
            ip_str(c->gateway, gw);
            aapp(routes,
                 json_pack("{s:s, s:s, s:s}", "network", "0.0.0.0", "netmask", "0.0.0.0", "gateway",
                           gw),
                 &rc);
        }
        oset(n, "routes", routes, &rc);
        oset(n, "network_id", jstr(c->network_id), &rc);
        json_t *svc = json_array();
        unsigned nd = c->ndns > 3 ? 3 : c->ndns;
        for (unsigned d = 0; d < nd; d++) {
            aapp(svc, dns_service(c->dns[d]), &rc);
            bool dup = false;
            for (size_t s = 0; s < nseen; s++)
                dup = dup || seen[s] == c->dns[d];
            if (!dup && nseen < NELEM(seen)) {
                seen[nseen++] = c->dns[d];
                aapp(services, dns_service(c->dns[d]), &rc);
            }
        }
        oset(n, "services", svc, &rc);
        aapp(nets, n, &rc);
    }
    oset(o, "links", links, &rc);
    oset(o, "networks", nets, &rc);
    oset(o, "services", services, &rc);
    return dump_json(o, rc, b);
}

/* Whether version ver has the OpenStack file name. */
static bool os_has_file(const struct md *m, int ver, const char *name)
{
    if (!strcmp(name, "meta_data.json"))
        return true;
    if (!strcmp(name, "user_data"))
        return m->has_ud;
    if (!strcmp(name, "password"))
        return ver >= OS_GRIZZLY;
    if (!strcmp(name, "vendor_data.json"))
        return ver >= OS_HAVANA;
    if (!strcmp(name, "network_data.json"))
        return ver >= OS_LIBERTY;
    if (!strcmp(name, "vendor_data2.json"))
        return ver >= OS_NEWTON_TWO;
    return false;
}

/* Nova's listing order (_handle_version). */
static const char *const os_files[] = {
    "meta_data.json",   "user_data",         "password",
    "vendor_data.json", "network_data.json", "vendor_data2.json",
};

static int os_file(const struct md *m, int ver, const char *name, struct buf *b, const char **ctype)
{
    if (!os_has_file(m, ver, name))
        return -ENOENT;
    *ctype = CT_JSON;
    if (!strcmp(name, "meta_data.json"))
        return meta_data_json(m, ver, b);
    if (!strcmp(name, "network_data.json"))
        return network_data_json(m, b);
    if (!strcmp(name, "vendor_data.json"))
        return dump_json(json_object(), 0, b);
    if (!strcmp(name, "vendor_data2.json"))
        return dump_json(json_pack("{s:{}}", "static"), 0, b);
    *ctype = CT_TEXT;
    if (!strcmp(name, "user_data"))
        buf_add(b, m->ud, m->udlen);
    else /* password: none was posted */
        buf_add(b, "", 0);
    return b->rc;
}

/* ---- the EC2 tree ---- */

/* Nova's get_ec2_metadata(version)['meta-data']; names: with public-keys/0's "_name" (the
 * service's listing), else without (the config drive's meta-data.json). */
static json_t *ec2_meta(const struct md *m, int ver, bool names, int *rc)
{
    const struct kova_md_instance *in = m->in;
    json_t *o = json_object();
    oset(o, "ami-id", json_string(m->ami_id), rc);
    oset(o, "ami-launch-index", json_integer(in->launch_index), rc);
    oset(o, "ami-manifest-path", json_string("FIXME"), rc);
    oset(o, "instance-id", json_string(m->instance_id), rc);
    oset(o, "hostname", jstr(m->hostname), rc);
    json_t *ip = json_null();
    for (size_t i = 0; i < in->nnics && in->nics; i++)
        if (in->nics[i].ip) {
            char s[16];
            ip_str(in->nics[i].ip, s);
            json_decref(ip);
            ip = json_string(s);
            break;
        }
    oset(o, "local-ipv4", ip, rc);
    oset(o, "reservation-id", jstr(m->reservation_id), rc);
    json_t *sg = json_array();
    aapp(sg, json_string("default"), rc);
    oset(o, "security-groups", sg, rc);
    if (has_key(in)) {
        json_t *k0 = json_object();
        if (names) {
            size_t n = strlen(in->keys[0].name) + 3;
            char *nm = malloc(n);
            if (nm) {
                snprintf(nm, n, "0=%s", in->keys[0].name);
                oset(k0, "_name", json_string(nm), rc);
                free(nm);
            } else {
                *rc = *rc ? *rc : -ENOMEM;
            }
        }
        oset(k0, "openssh-key", jstr(in->keys[0].data), rc);
        json_t *pk = json_object();
        oset(pk, "0", k0, rc);
        oset(o, "public-keys", pk, rc);
    }
    if (ver >= EC2_2007_01_19) {
        oset(o, "local-hostname", jstr(m->hostname), rc);
        oset(o, "public-hostname", jstr(m->hostname), rc);
        oset(o, "public-ipv4", json_string(""), rc);
    }
    if (ver >= EC2_2007_08_29)
        oset(o, "instance-type", jstr(in->flavor_name), rc);
    if (ver >= EC2_2007_12_15)
        oset(o, "block-device-mapping", json_pack("{s:s, s:s}", "ami", "vda", "root", "/dev/vda"),
             rc);
    if (ver >= EC2_2008_02_01) {
        json_t *pl = json_object();
        oset(pl, "availability-zone",
             in->availability_zone ? jstr(in->availability_zone) : json_null(), rc);
        oset(o, "placement", pl, rc);
    }
    if (ver >= EC2_2008_09_01)
        oset(o, "instance-action", json_string("none"), rc);
    return o;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Nova's ec2_md_print of one value. */
static int ec2_print(const json_t *v, struct buf *b)
{
    if (json_is_object(v)) {
        size_t n = json_object_size(v), k = 0;
        const char **keys = calloc(n ? n : 1, sizeof(*keys));
        if (!keys)
            return -ENOMEM;
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)v, key, val)
        {
            keys[k++] = key;
        }
        qsort(keys, k, sizeof(*keys), cmp_str);
        for (size_t i = 0; i < k; i++) {
            if (!strcmp(keys[i], "_name"))
                continue;
            const json_t *c = json_object_get(v, keys[i]);
            const json_t *nm = json_is_object(c) ? json_object_get(c, "_name") : NULL;
            if (b->len)
                buf_add(b, "\n", 1);
            if (nm) {
                buf_str(b, json_string_value(nm));
            } else {
                buf_str(b, keys[i]);
                if (json_is_object(c))
                    buf_add(b, "/", 1);
            }
        }
        free(keys);
    } else if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            buf_line(b, json_is_string(e) ? json_string_value(e) : "");
        }
    } else if (json_is_string(v)) {
        buf_str(b, json_string_value(v));
    } else if (json_is_integer(v)) {
        char s[32];
        snprintf(s, sizeof(s), "%lld", (long long)json_integer_value(v));
        buf_str(b, s);
    } /* null: "" */
    return b->rc;
}

/* tok[0..n-1] after the EC2 version. */
static int ec2_lookup(const struct md *m, int ver, char **tok, int n, struct buf *b)
{
    if (n == 0) {
        buf_line(b, "meta-data/");
        if (m->has_ud)
            buf_line(b, "user-data");
        return b->rc;
    }
    if (!strcmp(tok[0], "user-data")) {
        if (n != 1 || !m->has_ud)
            return -ENOENT;
        buf_add(b, m->ud, m->udlen);
        return b->rc;
    }
    if (strcmp(tok[0], "meta-data"))
        return -ENOENT;
    int rc = 0;
    json_t *root = ec2_meta(m, ver, true, &rc);
    const json_t *v = root;
    for (int i = 1; !rc && i < n; i++) {
        if (!json_is_object(v) || !strcmp(tok[i], "_name") || !(v = json_object_get(v, tok[i])))
            rc = -ENOENT;
    }
    if (!rc)
        rc = ec2_print(v, b);
    json_decref(root);
    return rc;
}

/* ---- the request path: checked here, in one place ---- */

#define MAX_TOKENS 8

/* Splits a request path into tokens in buf (KOVA_MD_PATH_MAX + 1 bytes); the count or -ENOENT. */
static int split_path(const char *path, size_t len, char *buf, char **tok)
{
    if (!path || len == 0 || len > KOVA_MD_PATH_MAX || path[0] != '/')
        return -ENOENT;
    for (size_t i = 0; i < len; i++) {
        char c = path[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == '/'))
            return -ENOENT; /* NUL, '%', '?', '\\', spaces, bytes past ASCII ... */
        if (c == '/' && i > 0 && path[i - 1] == '/')
            return -ENOENT; /* an empty component */
    }
    size_t n = len - 1;
    memcpy(buf, path + 1, n);
    if (n && buf[n - 1] == '/')
        n--; /* one trailing slash */
    buf[n] = '\0';
    if (n == 0)
        return 0;
    int nt = 0;
    char *p = buf;
    for (;;) {
        char *slash = strchr(p, '/');
        if (slash)
            *slash = '\0';
        if (*p == '\0' || *p == '.' || nt == MAX_TOKENS)
            return -ENOENT; /* "//", ".", "..", ".hidden", too deep */
        tok[nt++] = p;
        if (!slash)
            return nt;
        p = slash + 1;
    }
}

static int route(const struct md *m, char **tok, int nt, struct buf *b, const char **ctype)
{
    *ctype = CT_TEXT;
    if (nt >= 1 && !strcmp(tok[0], "openstack")) {
        if (nt == 1) {
            for (size_t i = 0; i < NELEM(os_versions); i++)
                buf_line(b, os_versions[i]);
            buf_line(b, "latest");
            return b->rc;
        }
        int ver = version_index(os_versions, OS_N, tok[1]);
        if (ver < 0 || nt > 3)
            return -ENOENT;
        if (nt == 2) {
            for (size_t i = 0; i < NELEM(os_files); i++)
                if (os_has_file(m, ver, os_files[i]))
                    buf_line(b, os_files[i]);
            return b->rc;
        }
        return os_file(m, ver, tok[2], b, ctype);
    }
    if (nt >= 1 && !strcmp(tok[0], "ec2")) {
        tok++;
        nt--;
    }
    if (nt == 0) {
        for (size_t i = 0; i < NELEM(ec2_versions); i++)
            buf_line(b, ec2_versions[i]);
        buf_line(b, "latest");
        return b->rc;
    }
    int ver = version_index(ec2_versions, EC2_N, tok[0]);
    if (ver < 0)
        return -ENOENT;
    return ec2_lookup(m, ver, tok + 1, nt - 1, b);
}

int kova_md_getn(const struct kova_md_instance *in, const char *path, size_t pathlen, char **out,
                 size_t *len, const char **ctype)
{
    *out = NULL;
    *len = 0;
    *ctype = CT_TEXT;
    char buf[KOVA_MD_PATH_MAX + 1];
    char *tok[MAX_TOKENS];
    int nt = split_path(path, pathlen, buf, tok);
    if (nt < 0)
        return nt;
    struct md m;
    struct buf b = {0};
    const char *ct = CT_TEXT;
    int rc = md_init(&m, in);
    if (rc)
        goto out;
    rc = route(&m, tok, nt, &b, &ct);
    if (!rc)
        rc = b.rc;
    if (!rc && !buf_reserve(&b, 0))
        rc = b.rc; /* an empty document still gets its buffer */
out:
    md_free(&m);
    if (rc) {
        free(b.p);
        return rc;
    }
    if (!b.len)
        b.p[0] = '\0';
    *out = b.p;
    *len = b.len;
    *ctype = ct;
    return 0;
}

int kova_md_get(const struct kova_md_instance *in, const char *path, char **out, size_t *len,
                const char **ctype)
{
    return kova_md_getn(in, path, path ? strnlen(path, KOVA_MD_PATH_MAX + 1) : 0, out, len, ctype);
}

/* ---- the config drive's files ---- */

struct files {
    struct kova_md_file *f;
    size_t n, cap;
};

/* Takes b's bytes as a new file named path. */
static int add_file(struct files *fs, const char *path, struct buf *b)
{
    if (fs->n == fs->cap) {
        size_t cap = fs->cap ? fs->cap * 2 : 64;
        struct kova_md_file *f = realloc(fs->f, cap * sizeof(*f));
        if (!f)
            return -ENOMEM;
        fs->f = f;
        fs->cap = cap;
    }
    struct kova_md_file *f = &fs->f[fs->n];
    memset(f, 0, sizeof(*f));
    snprintf(f->path, sizeof(f->path), "%s", path);
    if (!b->p && !buf_reserve(b, 0))
        return b->rc;
    f->data = b->p;
    f->len = b->len;
    fs->n++;
    memset(b, 0, sizeof(*b));
    return 0;
}

int kova_md_config_drive_files(const struct kova_md_instance *in, struct kova_md_file **files,
                               size_t *n)
{
    *files = NULL;
    *n = 0;
    struct md m;
    struct files fs = {0};
    struct buf b = {0};
    char path[KOVA_MD_FILE_PATH];
    int rc = md_init(&m, in);
    if (rc)
        goto fail;
    /* EC2: the versions not in Nova's default config_drive_skip_versions, and latest */
    static const char *const ec2_drive[] = {"2009-04-04", "latest"};
    for (size_t i = 0; i < NELEM(ec2_drive); i++) {
        int ver = version_index(ec2_versions, EC2_N, ec2_drive[i]);
        if (m.has_ud) {
            buf_add(&b, m.ud, m.udlen);
            snprintf(path, sizeof(path), "ec2/%s/user-data", ec2_drive[i]);
            if ((rc = b.rc) || (rc = add_file(&fs, path, &b)))
                goto fail;
        }
        rc = 0;
        json_t *meta = ec2_meta(&m, ver, false, &rc);
        if ((rc = dump_json(meta, rc, &b)))
            goto fail;
        snprintf(path, sizeof(path), "ec2/%s/meta-data.json", ec2_drive[i]);
        if ((rc = add_file(&fs, path, &b)))
            goto fail;
    }
    /* OpenStack: every version and latest; Nova's order; no password on a drive */
    static const char *const drive_files[] = {"meta_data.json", "user_data", "vendor_data.json",
                                              "network_data.json", "vendor_data2.json"};
    for (int v = 0; v <= OS_N; v++) {
        const char *vname = v < OS_N ? os_versions[v] : "latest";
        int ver = v < OS_N ? v : OS_N - 1;
        for (size_t i = 0; i < NELEM(drive_files); i++) {
            if (!os_has_file(&m, ver, drive_files[i]))
                continue;
            const char *ct;
            if ((rc = os_file(&m, ver, drive_files[i], &b, &ct)))
                goto fail;
            snprintf(path, sizeof(path), "openstack/%s/%s", vname, drive_files[i]);
            if ((rc = add_file(&fs, path, &b)))
                goto fail;
        }
    }
    md_free(&m);
    *files = fs.f;
    *n = fs.n;
    return 0;
fail:
    md_free(&m);
    free(b.p);
    kova_md_files_free(fs.f, fs.n);
    return rc;
}

void kova_md_files_free(struct kova_md_file *files, size_t n)
{
    for (size_t i = 0; files && i < n; i++)
        free(files[i].data);
    free(files);
}
