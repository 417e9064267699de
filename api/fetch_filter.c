/* SPDX-License-Identifier: Apache-2.0 */
/* The agent's outgoing-fetch filter (fetch_filter.h). */
#include "fetch_filter.h"

#include "kova/common.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* IPv4 blocks that are not public (RFC 6890 and its updates), as (network, prefix). */
static const struct {
    uint32_t net;
    int prefix;
} v4_special[] = {
    {0x00000000, 8},  /* "this network" */
    {0x0a000000, 8},  /* private */
    {0x64400000, 10}, /* shared address space (CGNAT) */
    {0x7f000000, 8},  /* loopback */
    {0xa9fe0000, 16}, /* link-local: 169.254.169.254, the metadata service */
    {0xac100000, 12}, /* private */
    {0xc0000000, 24}, /* IETF protocol assignments */
    {0xc0000200, 24}, /* documentation */
    {0xc0a80000, 16}, /* private */
    {0xc6120000, 15}, /* benchmarking */
    {0xc6336400, 24}, /* documentation */
    {0xcb007100, 24}, /* documentation */
    {0xe0000000, 4},  /* multicast */
    {0xf0000000, 4},  /* reserved, and the broadcast address */
};

static bool v4_in(uint32_t a, uint32_t net, int prefix)
{
    uint32_t mask = prefix ? 0xffffffffu << (32 - prefix) : 0;
    return (a & mask) == (net & mask);
}

static bool v4_public(uint32_t a)
{
    for (size_t i = 0; i < sizeof(v4_special) / sizeof(v4_special[0]); i++)
        if (v4_in(a, v4_special[i].net, v4_special[i].prefix))
            return false;
    return true;
}

static uint32_t v4_of(const uint8_t *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static bool v6_public(const uint8_t *a)
{
    static const uint8_t zero[16];
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b};
    if (!memcmp(a, zero, 15) && (a[15] == 0 || a[15] == 1))
        return false; /* :: and ::1 */
    if (!memcmp(a, mapped, 12) || !memcmp(a, nat64, 12) || !memcmp(a, zero, 12))
        return v4_public(v4_of(a + 12)); /* an IPv4 address inside (mapped, NAT64, compatible) */
    if (a[0] == 0x20 && a[1] == 0x02)    /* 6to4: 2002:V4ADDR::/48 */
        return v4_public(v4_of(a + 2));
    if ((a[0] & 0xfe) == 0xfc) /* fc00::/7 unique local */
        return false;
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) /* fe80::/10 link-local */
        return false;
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0) /* fec0::/10 site-local (deprecated) */
        return false;
    if (a[0] == 0xff) /* multicast */
        return false;
    if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0d && a[3] == 0xb8) /* documentation */
        return false;
    if (a[0] == 0x01 && !memcmp(a + 1, zero, 7)) /* 100::/64 discard */
        return false;
    return true;
}

static bool net_has(const struct fetch_net *n, int family, const uint8_t *a)
{
    if (n->family != family)
        return false;
    int full = n->prefix / 8, rest = n->prefix % 8;
    if (memcmp(n->addr, a, (size_t)full))
        return false;
    if (!rest)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (n->addr[full] & mask) == (a[full] & mask);
}

/* Whether an address (4 or 16 bytes) may be connected to. */
static bool addr_ok(const struct fetch_filter *f, int family, const uint8_t *a)
{
    if (family == AF_INET ? v4_public(v4_of(a)) : v6_public(a))
        return true;
    for (int i = 0; i < f->nnets; i++)
        if (net_has(&f->nets[i], family, a))
            return true;
    return false;
}

static bool port_ok(const struct fetch_filter *f, unsigned port)
{
    if (!f->nports)
        return true;
    for (int i = 0; i < f->nports; i++)
        if (f->ports[i] == port)
            return true;
    return false;
}

/* The next comma-separated item of *s into item (trimmed); false at the end. */
static bool next_item(const char **s, char *item, size_t n)
{
    while (**s == ' ' || **s == ',')
        (*s)++;
    if (!**s)
        return false;
    const char *e = strchr(*s, ',');
    size_t len = e ? (size_t)(e - *s) : strlen(*s);
    while (len && (*s)[len - 1] == ' ')
        len--;
    snprintf(item, n, "%.*s", (int)(len < n ? len : n - 1), *s);
    *s = e ? e : *s + strlen(*s);
    return true;
}

static int parse_net(struct fetch_net *n, const char *item)
{
    char a[64];
    const char *slash = strchr(item, '/');
    size_t alen = slash ? (size_t)(slash - item) : strlen(item);
    if (alen >= sizeof(a))
        return -EINVAL;
    memcpy(a, item, alen);
    a[alen] = 0;
    memset(n, 0, sizeof(*n));
    if (inet_pton(AF_INET, a, n->addr) == 1)
        n->family = AF_INET;
    else if (inet_pton(AF_INET6, a, n->addr) == 1)
        n->family = AF_INET6;
    else
        return -EINVAL;
    int max = n->family == AF_INET ? 32 : 128;
    n->prefix = max;
    if (slash) {
        char *end;
        long p = strtol(slash + 1, &end, 10);
        if (!slash[1] || *end || p < 0 || p > max)
            return -EINVAL;
        n->prefix = (int)p;
    }
    return 0;
}

int fetch_filter_parse(struct fetch_filter *f, const char *networks, const char *ports, char *err,
                       size_t errlen)
{
    char item[128];
    memset(f, 0, sizeof(*f));
    for (const char *s = networks ? networks : ""; next_item(&s, item, sizeof(item));) {
        if (f->nnets == FETCH_FILTER_MAX)
            return kova_err(err, errlen, -E2BIG, "more than %d allowed networks", FETCH_FILTER_MAX);
        if (parse_net(&f->nets[f->nnets++], item) < 0)
            return kova_err(err, errlen, -EINVAL, "bad network '%s' (a CIDR is expected)", item);
    }
    for (const char *s = ports ? ports : "80,443"; next_item(&s, item, sizeof(item));) {
        char *end;
        long p = strtol(item, &end, 10);
        if (*end || p < 1 || p > 65535)
            return kova_err(err, errlen, -EINVAL, "bad port '%s'", item);
        if (f->nports == FETCH_FILTER_MAX)
            return kova_err(err, errlen, -E2BIG, "more than %d allowed ports", FETCH_FILTER_MAX);
        f->ports[f->nports++] = (uint16_t)p;
    }
    return 0;
}

bool fetch_filter_connect_ok(const struct fetch_filter *f, const struct sockaddr *sa, socklen_t len)
{
    if (!sa)
        return false;
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        return port_ok(f, ntohs(s4->sin_port)) &&
               addr_ok(f, AF_INET, (const uint8_t *)&s4->sin_addr);
    }
    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        return port_ok(f, ntohs(s6->sin6_port)) &&
               addr_ok(f, AF_INET6, (const uint8_t *)&s6->sin6_addr);
    }
    return false;
}

bool fetch_filter_url_ok(const struct fetch_filter *f, const char *url, char *err, size_t errlen)
{
    bool ok = false;
    char *scheme = NULL, *host = NULL, *port = NULL;
    CURLU *u = curl_url();
    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        kova_err(err, errlen, -EINVAL, "not a URL");
        goto out;
    }
    if (strcmp(scheme, "http") && strcmp(scheme, "https")) {
        kova_err(err, errlen, -EINVAL, "scheme %s is not allowed", scheme);
        goto out;
    }
    char *end;
    long p = strtol(port, &end, 10);
    if (*end || p < 1 || p > 65535 || !port_ok(f, (unsigned)p)) {
        kova_err(err, errlen, -EACCES, "port %s is not allowed", port);
        goto out;
    }
    uint8_t a[16];
    size_t hl = strlen(host);
    char h[64];
    if (host[0] == '[' && hl > 2 && hl - 2 < sizeof(h)) {
        memcpy(h, host + 1, hl - 2);
        h[hl - 2] = 0;
        if (inet_pton(AF_INET6, h, a) == 1 && !addr_ok(f, AF_INET6, a)) {
            kova_err(err, errlen, -EACCES, "address %s is not allowed", h);
            goto out;
        }
    } else if (inet_pton(AF_INET, host, a) == 1 && !addr_ok(f, AF_INET, a)) {
        kova_err(err, errlen, -EACCES, "address %s is not allowed", host);
        goto out;
    }
    ok = true; /* a name: its addresses are checked at each connection */
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return ok;
}
