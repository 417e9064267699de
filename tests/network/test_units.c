/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of kova network's pure part (kova/network.h): [network:NAME] keys, defaults and
 * checks, fixed-IP choice, address parsing, port naming. No I/O but getrandom. */
#include "kova/network.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/kova_test.h"

static uint32_t ip(const char *s)
{
    uint32_t v = 0;
    if (kova_net_ip_parse(s, &v) < 0) {
        fprintf(stderr, "bad test address %s\n", s);
        exit(2);
    }
    return v;
}

/* A finished definition from "key=value" pairs (NULL-terminated); the result of finish. */
static int def(struct kova_net_def *d, const char *name, const char *const *kv)
{
    char err[256];
    int r = kova_net_def_init(d, name, err, sizeof(err));
    for (; r == 0 && kv && kv[0]; kv += 2)
        r = kova_net_def_set(d, kv[0], kv[1], err, sizeof(err));
    return r ? r : kova_net_def_finish(d, err, sizeof(err));
}

static void test_ip_parse(void)
{
    uint32_t v;
    CHECK(kova_net_ip_parse("10.0.0.1", &v) == 0 && v == 0x0a000001);
    CHECK(kova_net_ip_parse("255.255.255.255", &v) == 0 && v == 0xffffffff);
    CHECK(kova_net_ip_parse("0.0.0.0", &v) == 0 && v == 0);
    CHECK(kova_net_ip_parse("192.168.100.200", &v) == 0 && v == 0xc0a864c8);
    static const char *const bad[] = {
        "",           "1",         "1.2.3",      "1.2.3.4.5", "010.0.0.1", "10.0.0.01", "00.1.2.3",
        "256.0.0.1",  "1.2.3.4 ",  " 1.2.3.4",   "1.2.3.-4",  "1..2.3",    "1.2.3.",    ".1.2.3",
        "1.2.3.4/24", "0x1.2.3.4", "1.2.3.1000", "a.b.c.d",   "1.2.3.4\n", "+1.2.3.4"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = 7;
        CHECK(kova_net_ip_parse(bad[i], &v) == -EINVAL && v == 7);
    }
    char s[KOVA_NET_IP_STRLEN];
    kova_net_ip_format(0xc0a864c8, s);
    CHECK(!strcmp(s, "192.168.100.200"));
    kova_net_ip_format(0xffffffff, s);
    CHECK(!strcmp(s, "255.255.255.255"));
}

static void test_defs(void)
{
    struct kova_net_def d;
    char err[256];

    /* defaults */
    CHECK(def(&d, "public", (const char *const[]){"cidr", "10.1.0.0/24", NULL}) == 0);
    CHECK(!strcmp(d.name, "public"));
    CHECK(d.net == ip("10.1.0.0") && d.prefix == 24 && d.gateway == ip("10.1.0.1"));
    CHECK(!strcmp(d.uuid, "b401cc3e-3078-5671-86f9-e469f2eee336")); /* UUIDv5: stable */
    CHECK(!strcmp(d.bridge, "kovabrb401cc3e") && strlen(d.bridge) == 14);
    CHECK(d.mtu == 1500 && d.ndns == 0 && d.masquerade[0] == '\0');
    CHECK(def(&d, "private-1", (const char *const[]){"cidr", "10.2.0.0/16", NULL}) == 0);
    CHECK(!strcmp(d.uuid, "79c93d6f-d68c-5f31-acd8-55af0a394f06"));

    /* every key */
    CHECK(def(&d, "n.1_x-y",
              (const char *const[]){"cidr", "192.168.8.0/22", "gateway", "192.168.11.254", "dns",
                                    "192.0.2.53, 198.51.100.1,203.0.113.9", "bridge", "br-kova0",
                                    "masquerade", "eth0", "mtu", "9000", "uuid",
                                    "0E0B6A4C-1F5D-4A8E-9C3B-2D7E6F1A0B9C", NULL}) == 0);
    CHECK(d.net == ip("192.168.8.0") && d.prefix == 22 && d.gateway == ip("192.168.11.254"));
    CHECK(d.ndns == 3 && d.dns[0] == ip("192.0.2.53") && d.dns[1] == ip("198.51.100.1") &&
          d.dns[2] == ip("203.0.113.9"));
    CHECK(!strcmp(d.bridge, "br-kova0") && !strcmp(d.masquerade, "eth0") && d.mtu == 9000);
    CHECK(!strcmp(d.uuid, "0e0b6a4c-1f5d-4a8e-9c3b-2d7e6f1a0b9c"));
    CHECK(def(&d, "m",
              (const char *const[]){"cidr", "10.0.0.0/8", "mtu", "576", "dns", "", NULL}) == 0);
    CHECK(d.mtu == 576 && d.ndns == 0 && d.gateway == ip("10.0.0.1"));
    CHECK(def(&d, "p30", (const char *const[]){"cidr", "10.9.9.4/30", NULL}) == 0);
    CHECK(d.gateway == ip("10.9.9.5"));

    /* bad names */
    static const char *const badnames[] = {"",
                                           "a b",
                                           "a/b",
                                           "ä",
                                           "a:b",
                                           "0123456789012345678901234567890123456789012345678901234"
                                           "567890123"};
    for (size_t i = 0; i < sizeof(badnames) / sizeof(badnames[0]); i++)
        CHECK(kova_net_def_init(&d, badnames[i], err, sizeof(err)) == -EINVAL && err[0]);
    CHECK(kova_net_def_init(&d, "012345678901234567890123456789012345678901234567890123456789012",
                            err, sizeof(err)) == 0); /* 63 bytes */

    /* bad values */
    static const char *const bad[][2] = {{"cidr", "10.0.0.0"},
                                         {"cidr", "10.0.0.1/24"},
                                         {"cidr", "10.0.0.0/7"},
                                         {"cidr", "10.0.0.0/31"},
                                         {"cidr", "10.0.0.0/024"},
                                         {"cidr", "10.0.0.0/"},
                                         {"cidr", "10.0.0.0/24x"},
                                         {"cidr", "010.0.0.0/24"},
                                         {"cidr", ""},
                                         {"gateway", "10.0.0"},
                                         {"gateway", "0.0.0.0"},
                                         {"dns", "1.2.3.4,"},
                                         {"dns", "1.2.3.4,,5.6.7.8"},
                                         {"dns", "1.1.1.1,2.2.2.2,3.3.3.3,4.4.4.4"},
                                         {"dns", "dns.example"},
                                         {"bridge", ""},
                                         {"bridge", "0123456789abcdef"},
                                         {"bridge", "a/b"},
                                         {"bridge", "a:b"},
                                         {"bridge", "a b"},
                                         {"bridge", "."},
                                         {"bridge", ".."},
                                         {"masquerade", "eth 0"},
                                         {"mtu", "575"},
                                         {"mtu", "9001"},
                                         {"mtu", "1500x"},
                                         {"mtu", "-1500"},
                                         {"mtu", ""},
                                         {"uuid", "not-a-uuid"},
                                         {"uuid", "0e0b6a4c1f5d4a8e9c3b2d7e6f1a0b9c"},
                                         {"colour", "blue"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(kova_net_def_init(&d, "x", err, sizeof(err)) == 0);
        err[0] = '\0';
        int r = kova_net_def_set(&d, bad[i][0], bad[i][1], err, sizeof(err));
        if (r != -EINVAL || !err[0])
            fprintf(stderr, "accepted %s = \"%s\"\n", bad[i][0], bad[i][1]);
        CHECK(r == -EINVAL && err[0]);
    }
    CHECK(kova_net_def_init(&d, "x", NULL, 0) == 0);
    CHECK(kova_net_def_set(&d, "colour", "blue", NULL, 0) == -EINVAL); /* err may be NULL */

    /* finish: cidr required; the gateway a host address of the network */
    CHECK(kova_net_def_init(&d, "x", err, sizeof(err)) == 0);
    CHECK(kova_net_def_finish(&d, err, sizeof(err)) == -EINVAL && strstr(err, "cidr"));
    CHECK(def(&d, "x", (const char *const[]){"cidr", "10.0.0.0/24", "gateway", "10.0.1.1", NULL}) ==
          -EINVAL);
    CHECK(def(&d, "x", (const char *const[]){"cidr", "10.0.0.0/24", "gateway", "10.0.0.0", NULL}) ==
          -EINVAL);
    CHECK(
        def(&d, "x", (const char *const[]){"cidr", "10.0.0.0/24", "gateway", "10.0.0.255", NULL}) ==
        -EINVAL);
    /* the gateway may be given before the cidr */
    CHECK(def(&d, "x",
              (const char *const[]){"gateway", "10.0.0.254", "cidr", "10.0.0.0/24", NULL}) == 0);
}

static void test_defs_check(void)
{
    struct kova_net_def d[4];
    char err[256];
    CHECK(def(&d[0], "a", (const char *const[]){"cidr", "10.0.0.0/24", NULL}) == 0);
    CHECK(def(&d[1], "b", (const char *const[]){"cidr", "10.0.1.0/24", NULL}) == 0);
    CHECK(def(&d[2], "c", (const char *const[]){"cidr", "192.168.0.0/16", NULL}) == 0);
    CHECK(kova_net_defs_check(d, 3, err, sizeof(err)) == 0);
    CHECK(kova_net_defs_check(d, 0, err, sizeof(err)) == 0);

    CHECK(def(&d[3], "d", (const char *const[]){"cidr", "10.0.0.0/16", NULL}) == 0); /* ⊃ a */
    CHECK(kova_net_defs_check(d, 4, err, sizeof(err)) == -EINVAL && strstr(err, "overlapping"));
    CHECK(def(&d[3], "d", (const char *const[]){"cidr", "192.168.3.0/24", NULL}) == 0); /* ⊂ c */
    CHECK(kova_net_defs_check(d, 4, err, sizeof(err)) == -EINVAL && strstr(err, "overlapping"));
    CHECK(def(&d[3], "a", (const char *const[]){"cidr", "172.16.0.0/24", NULL}) == 0);
    CHECK(kova_net_defs_check(d, 4, err, sizeof(err)) == -EINVAL && strstr(err, "name"));
    CHECK(def(&d[3], "d",
              (const char *const[]){"cidr", "172.16.0.0/24", "uuid", d[1].uuid, NULL}) == 0);
    CHECK(kova_net_defs_check(d, 4, err, sizeof(err)) == -EINVAL && strstr(err, "uuid"));
    CHECK(def(&d[3], "d",
              (const char *const[]){"cidr", "172.16.0.0/24", "bridge", d[2].bridge, NULL}) == 0);
    CHECK(kova_net_defs_check(d, 4, err, sizeof(err)) == -EINVAL && strstr(err, "bridge"));
    CHECK(def(&d[3], "d",
              (const char *const[]){"cidr", "172.16.0.0/24", "masquerade", d[0].bridge, NULL}) ==
          0);
    CHECK(kova_net_defs_check(d, 4, err, sizeof(err)) == -EINVAL && strstr(err, "masquerade"));
    CHECK(def(&d[3], "d", (const char *const[]){"cidr", "10.0.2.0/23", NULL}) == 0);
    CHECK(kova_net_defs_check(d, 4, err, sizeof(err)) == 0); /* 10.0.2.0-10.0.3.255 */
}

static void test_pick_ip(void)
{
    struct kova_net_def d;
    uint32_t out = 0;
    /* a /30: one host address besides the gateway */
    CHECK(def(&d, "p", (const char *const[]){"cidr", "10.9.9.4/30", NULL}) == 0);
    CHECK(kova_net_pick_ip(&d, NULL, 0, &out) == 0 && out == ip("10.9.9.6"));
    uint32_t u30[] = {ip("10.9.9.6")};
    out = 0;
    CHECK(kova_net_pick_ip(&d, u30, 1, &out) == -ENOSPC && out == 0);
    CHECK(kova_net_ip_usable(&d, ip("10.9.9.6")));
    CHECK(!kova_net_ip_usable(&d, ip("10.9.9.4")) && !kova_net_ip_usable(&d, ip("10.9.9.5")) &&
          !kova_net_ip_usable(&d, ip("10.9.9.7")) && !kova_net_ip_usable(&d, ip("10.9.9.8")));

    /* a /29 with the gateway in the middle: .1-.6 less .3; used unsorted with duplicates */
    CHECK(def(&d, "p", (const char *const[]){"cidr", "10.9.9.0/29", "gateway", "10.9.9.3", NULL}) ==
          0);
    uint32_t used[16];
    size_t n = 0;
    const uint32_t expect[] = {ip("10.9.9.1"), ip("10.9.9.2"), ip("10.9.9.4"), ip("10.9.9.5"),
                               ip("10.9.9.6")};
    for (size_t i = 0; i < 5; i++) {
        CHECK(kova_net_pick_ip(&d, used, n, &out) == 0 && out == expect[i]);
        CHECK(kova_net_ip_usable(&d, out));
        /* prepend (unsorted), and a duplicate each time */
        memmove(used + 1, used, n * sizeof(*used));
        used[0] = out;
        n++;
        used[n++] = out;
    }
    CHECK(kova_net_pick_ip(&d, used, n, &out) == -ENOSPC);
    uint32_t odd[] = {ip("10.9.9.2"), ip("10.9.9.9"), ip("10.9.9.1"), ip("1.2.3.4"),
                      ip("10.9.9.2")};
    CHECK(kova_net_pick_ip(&d, odd, 5, &out) == 0 && out == ip("10.9.9.4"));
    CHECK(!kova_net_ip_usable(&d, ip("10.9.9.3")));

    /* a /16 with 60000 used addresses, shuffled: quick */
    CHECK(def(&d, "big", (const char *const[]){"cidr", "10.20.0.0/16", NULL}) == 0);
    size_t nbig = 60000;
    uint32_t *big = malloc(nbig * sizeof(*big));
    CHECK(big != NULL);
    if (big) {
        for (size_t i = 0; i < nbig; i++)
            big[i] = d.net + 2 + (uint32_t)i; /* .0.2 .. */
        for (size_t i = nbig - 1; i > 0; i--) {
            size_t j = (size_t)rand() % (i + 1);
            uint32_t t = big[i];
            big[i] = big[j];
            big[j] = t;
        }
        for (int rep = 0; rep < 20; rep++)
            CHECK(kova_net_pick_ip(&d, big, nbig, &out) == 0 && out == d.net + 2 + nbig);
        free(big);
    }
}

static void test_ports(void)
{
    char tap[KOVA_NET_IFNAME];
    kova_net_port_tap("3f2a9c1e-7b6d-4e2f-9a1b-0c8d7e6f5a4b", tap);
    CHECK(!strcmp(tap, "tap3f2a9c1e-7b") && strlen(tap) == 14);
    kova_net_port_tap("abc", tap);
    CHECK(!strcmp(tap, "tapabc"));

    char mac[KOVA_NET_MAC_LEN + 1], prev[KOVA_NET_MAC_LEN + 1] = "";
    int same = 0;
    for (int i = 0; i < 20; i++) {
        CHECK(kova_net_port_mac(mac) == 0);
        CHECK(strlen(mac) == KOVA_NET_MAC_LEN && !strncmp(mac, "fa:16:3e:", 9));
        for (int k = 9; k < KOVA_NET_MAC_LEN; k++)
            CHECK(k % 3 == 2 ? mac[k] == ':' : strchr("0123456789abcdef", mac[k]) != NULL);
        same += !strcmp(mac, prev);
        memcpy(prev, mac, sizeof(mac));
    }
    CHECK(same < 3); /* random */
}

int main(void)
{
    test_ip_parse();
    test_defs();
    test_defs_check();
    test_pick_ip();
    test_ports();
    return kt_finish("network.units");
}
