/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Where the agent's own HTTP fetches (Glance web-download import) may connect: the one place
 * that decides, as Glance's [import_filtering_opts] do. A URL the client gives is checked when
 * the import is asked for (scheme, port, a literal address), and every connection libcurl opens
 * for it, to the address it resolved, the first and after each redirect, is checked again
 * (fetch_filter_connect_ok, from CURLOPT_OPENSOCKETFUNCTION): a name that resolves to
 * loopback, or a redirect to a metadata address, is refused there.
 *
 * Refused unless allowed: addresses that are not public — loopback, unspecified, private
 * (10/8, 172.16/12, 192.168/16, fc00::/7), shared (100.64/10), link-local (169.254/16, where
 * cloud metadata services answer, and fe80::/10), benchmarking, IETF-reserved, multicast and
 * broadcast, and IPv6 forms that embed one of them (::ffff:a.b.c.d) — and any port but 80 and
 * 443. An operator widens it with networks (a list of CIDRs that are allowed all the same) and
 * ports (the allowed ports; an empty list allows every port).
 */
#ifndef KOVA_API_FETCH_FILTER_H
#define KOVA_API_FETCH_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define FETCH_FILTER_MAX 32 /* networks, and ports, in one filter */

struct fetch_net {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    int prefix;
};

struct fetch_filter {
    struct fetch_net nets[FETCH_FILTER_MAX];
    int nnets;
    uint16_t ports[FETCH_FILTER_MAX];
    int nports; /* 0: every port */
};

/* Fills *f from the two comma-separated lists ("10.0.0.0/8,fd00::/8"; "80,443"). networks NULL
 * or "": none; ports NULL: 80,443; "": every port. -EINVAL (a reason in err) for a bad entry,
 * -E2BIG for more than FETCH_FILTER_MAX. */
int fetch_filter_parse(struct fetch_filter *f, const char *networks, const char *ports, char *err,
                       size_t errlen);

/* Whether a connection to sa (AF_INET or AF_INET6; its port included) is allowed; false for any
 * other family or a short len. */
bool fetch_filter_connect_ok(const struct fetch_filter *f, const struct sockaddr *sa,
                             socklen_t len);

/* Whether the URL (as libcurl parses it) may be fetched, before any connection: an http or
 * https scheme, an allowed port (the scheme's default when none is given), and, when its host
 * is a literal address, an allowed address. false with a reason in err. */
bool fetch_filter_url_ok(const struct fetch_filter *f, const char *url, char *err, size_t errlen);

#endif
