/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of kova metadata's documents (kova/metadata.h): every JSON document parsed back with
 * jansson and its members checked against the instance; hostnames; listings; the EC2 tree; user
 * data; hostile paths; network_data.json for 0, 1 and 2 ports; random_seed; the config drive's
 * file list. No I/O but getrandom. */
#include "kova/metadata.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../common/kova_test.h"
#include "md_internal.h"

#define UUID  "6f1c3b2a-9d4e-4f7a-8b1c-2d3e4f5a6b7c"
#define IMAGE "a1b2c3d4-0000-4000-8000-000000000001"
#define PROJ  "0123456789abcdef0123456789abcdef"
#define KEY   "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTestsOnly0123456789abcdefghij k@host"
#define PORT1 "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9"
#define PORT2 "aaaabbbb-cccc-4ddd-8eee-ffff00001111"
#define NET1  "11111111-2222-4333-8444-555555555555"
#define NET2  "99999999-8888-4777-8666-555555555555"

/* "#!/bin/sh\necho hello\n" */
#define UD_PLAIN "#!/bin/sh\necho hello\n"
#define UD_B64   "IyEvYmluL3NoCmVjaG8gaGVsbG8K"

static const struct kova_md_key key = {"k", "ssh", KEY};
static struct kova_md_nic nics[2];
static struct kova_md_instance inst;

static void setup(void)
{
    memset(nics, 0, sizeof(nics));
    nics[0] = (struct kova_md_nic){.port_id = PORT1,
                                   .mac = "fa:16:3e:12:34:56",
                                   .network_id = NET1,
                                   .ip = 0x0a000005, /* 10.0.0.5 */
                                   .gateway = 0x0a000001,
                                   .prefix = 24,
                                   .dns = {0x08080808, 0x01010101},
                                   .ndns = 2,
                                   .mtu = 1500};
    nics[1] = (struct kova_md_nic){.port_id = PORT2,
                                   .mac = "fa:16:3e:ab:cd:ef",
                                   .network_id = NET2,
                                   .ip = 0xc0a80a0b, /* 192.168.10.11 */
                                   .gateway = 0,
                                   .prefix = 20,
                                   .dns = {0x08080808, 0x09090909},
                                   .ndns = 2,
                                   .mtu = 9000};
    inst = (struct kova_md_instance){.uuid = UUID,
                                     .name = "vm1",
                                     .project_id = PROJ,
                                     .availability_zone = "nova",
                                     .image_id = IMAGE,
                                     .flavor_name = "m1.small",
                                     .seq = 42,
                                     .launch_index = 0,
                                     .reservation_id = "r-abcd1234",
                                     .keys = &key,
                                     .nkeys = 1,
                                     .meta_json = "{\"role\": \"web\"}",
                                     .user_data_b64 = UD_B64,
                                     .nics = nics,
                                     .nnics = 1};
}

/* GET path: the document (malloc'd, caller frees) or NULL with *rc. */
static char *get(const char *path, size_t *len, const char **ct, int *rc)
{
    char *out = (char *)1;
    size_t l = 99;
    const char *c = NULL;
    int r = kova_md_get(&inst, path, &out, &l, &c);
    if (rc)
        *rc = r;
    if (r) {
        CHECK(out == NULL && l == 0);
        return NULL;
    }
    CHECK(out != NULL && out[l] == '\0');
    CHECK(c && (!strcmp(c, "text/plain") || !strcmp(c, "application/json")));
    if (len)
        *len = l;
    if (ct)
        *ct = c;
    return out;
}

/* GET path expecting text exactly equal to want (and content type ct). */
static void expect_text(const char *path, const char *want, const char *ctype)
{
    size_t len;
    const char *ct;
    int rc;
    char *s = get(path, &len, &ct, &rc);
    if (!s) {
        fprintf(stderr, "GET %s: %d, wanted \"%s\"\n", path, rc, want);
        failures++;
        return;
    }
    if (len != strlen(want) || memcmp(s, want, len) || strcmp(ct, ctype)) {
        fprintf(stderr, "GET %s: got \"%s\" (%s), wanted \"%s\" (%s)\n", path, s, ct, want, ctype);
        failures++;
    }
    free(s);
}

static void expect_enoent(const char *path)
{
    int rc;
    char *s = get(path, NULL, NULL, &rc);
    if (s || rc != -ENOENT) {
        fprintf(stderr, "GET %s: wanted -ENOENT, got %d\n", path, rc);
        failures++;
    }
    free(s);
}

/* GET path as JSON (application/json), parsed. */
static json_t *get_json(const char *path)
{
    size_t len;
    const char *ct;
    int rc;
    char *s = get(path, &len, &ct, &rc);
    if (!s) {
        fprintf(stderr, "GET %s: %d\n", path, rc);
        failures++;
        return NULL;
    }
    CHECK(!strcmp(ct, "application/json"));
    json_error_t e;
    json_t *j = json_loadb(s, len, JSON_REJECT_DUPLICATES, &e);
    if (!j) {
        fprintf(stderr, "GET %s: not JSON (%s): %s\n", path, e.text, s);
        failures++;
    }
    free(s);
    return j;
}

static const char *jsget(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static void test_hostname(void)
{
    static const char *const cases[][2] = {
        {"vm1", "vm1"},
        {"My Server_01", "my-server-01"},
        {"web.example.com", "web-example-com"},
        {"--a--", "a"},
        {"..x..", "x"},
        {"UPPER", "upper"},
        {"a!b@c#d$", "abcd"},
        {"caf\xc3\xa9", "caf"},
        {" lead and trail ", "lead-and-trail"},
        {"0123456789012345678901234567890123456789012345678901234567890123456789",
         "012345678901234567890123456789012345678901234567890123456789012"},
        /* cut to 63 first, then '-' stripped: 62 x 'a' + "-b" -> 62 'a' */
        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-b",
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
        {"!!!", "Server-" UUID},
        {"", "Server-" UUID},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[KOVA_MD_HOSTNAME_MAX];
        kova_md_hostname(cases[i][0], UUID, out);
        if (strcmp(out, cases[i][1])) {
            fprintf(stderr, "hostname(\"%s\") = \"%s\", wanted \"%s\"\n", cases[i][0], out,
                    cases[i][1]);
            failures++;
        }
    }
    char out[KOVA_MD_HOSTNAME_MAX];
    kova_md_hostname(NULL, NULL, out);
    CHECK(!strcmp(out, "Server-"));

    /* the domain */
    inst.dhcp_domain = "novalocal";
    json_t *j = get_json("/openstack/latest/meta_data.json");
    CHECK(j && !strcmp(jsget(j, "hostname"), "vm1.novalocal"));
    json_decref(j);
    expect_text("/latest/meta-data/local-hostname", "vm1.novalocal", "text/plain");
    inst.dhcp_domain = NULL;
}

static void test_meta_data(void)
{
    static const char *const vers[] = {"2012-08-10", "2013-04-04", "2013-10-17", "2015-10-15",
                                       "2016-06-30", "2016-10-06", "2017-02-22", "2018-08-27",
                                       "2020-10-14", "latest"};
    for (size_t v = 0; v < sizeof(vers) / sizeof(vers[0]); v++) {
        char path[128];
        snprintf(path, sizeof(path), "/openstack/%s/meta_data.json", vers[v]);
        json_t *j = get_json(path);
        if (!j)
            continue;
        CHECK(!strcmp(jsget(j, "uuid"), UUID));
        CHECK(!strcmp(jsget(j, "name"), "vm1"));
        CHECK(!strcmp(jsget(j, "hostname"), "vm1"));
        CHECK(json_integer_value(json_object_get(j, "launch_index")) == 0 &&
              json_is_integer(json_object_get(j, "launch_index")));
        CHECK(!strcmp(jsget(j, "availability_zone"), "nova"));
        json_t *meta = json_object_get(j, "meta");
        CHECK(json_is_object(meta) && !strcmp(jsget(meta, "role"), "web"));
        json_t *pk = json_object_get(j, "public_keys");
        CHECK(json_is_object(pk) && json_object_size(pk) == 1 && !strcmp(jsget(pk, "k"), KEY));
        json_t *keys = json_object_get(j, "keys");
        CHECK(json_is_array(keys) && json_array_size(keys) == 1);
        json_t *k0 = json_array_get(keys, 0);
        CHECK(k0 && !strcmp(jsget(k0, "name"), "k") && !strcmp(jsget(k0, "type"), "ssh") &&
              !strcmp(jsget(k0, "data"), KEY));
        /* members by version */
        CHECK((json_object_get(j, "random_seed") != NULL) == (v >= 1));
        CHECK((json_object_get(j, "project_id") != NULL) == (v >= 3));
        if (v >= 3)
            CHECK(!strcmp(jsget(j, "project_id"), PROJ));
        json_t *dev = json_object_get(j, "devices");
        CHECK((dev != NULL) == (v >= 4));
        CHECK(!dev || (json_is_array(dev) && json_array_size(dev) == 0));
        json_t *dc = json_object_get(j, "dedicated_cpus");
        CHECK((dc != NULL) == (v >= 8));
        CHECK(!dc || (json_is_array(dc) && json_array_size(dc) == 0));
        json_decref(j);
    }

    /* random_seed: 512 bytes, fresh each time */
    json_t *a = get_json("/openstack/latest/meta_data.json");
    json_t *b = get_json("/openstack/latest/meta_data.json");
    if (a && b) {
        const char *sa = jsget(a, "random_seed"), *sb = jsget(b, "random_seed");
        unsigned char *da = NULL, *db = NULL;
        size_t la = 0, lb = 0;
        CHECK(sa && kova_md_b64_decode(sa, &da, &la) == 0 && la == 512);
        CHECK(sb && kova_md_b64_decode(sb, &db, &lb) == 0 && lb == 512);
        CHECK(da && db && la == lb && memcmp(da, db, la) != 0);
        free(da);
        free(db);
    }
    json_decref(a);
    json_decref(b);

    /* no key, empty meta, no zone: those members as Nova has them */
    inst.nkeys = 0;
    inst.meta_json = "{}";
    inst.availability_zone = NULL;
    json_t *j = get_json("/openstack/latest/meta_data.json");
    CHECK(j && !json_object_get(j, "public_keys") && !json_object_get(j, "keys") &&
          !json_object_get(j, "meta") && json_is_null(json_object_get(j, "availability_zone")));
    json_decref(j);
    expect_enoent("/latest/meta-data/public-keys");
    expect_enoent("/latest/meta-data/public-keys/0/openssh-key");
    setup();

    /* the instance's own data bad: -EINVAL */
    int rc;
    inst.meta_json = "[1]";
    CHECK(get("/openstack/latest/meta_data.json", NULL, NULL, &rc) == NULL && rc == -EINVAL);
    inst.meta_json = "{\"a\": ";
    CHECK(get("/openstack/latest/meta_data.json", NULL, NULL, &rc) == NULL && rc == -EINVAL);
    setup();
    inst.user_data_b64 = "not base64!";
    CHECK(get("/openstack/latest/user_data", NULL, NULL, &rc) == NULL && rc == -EINVAL);
    setup();
    inst.name = "bad \xff utf8";
    CHECK(get("/openstack/latest/meta_data.json", NULL, NULL, &rc) == NULL && rc == -EINVAL);
    setup();

    /* a non-ASCII name is escaped, as Python's json.dumps does */
    inst.name = "caf\xc3\xa9";
    size_t len;
    char *s = get("/openstack/latest/meta_data.json", &len, NULL, &rc);
    CHECK(s && strcasestr(s, "\"name\": \"caf\\u00e9\"") && strstr(s, "\"hostname\": \"caf\""));
    free(s);
    setup();
}

static void test_other_os_files(void)
{
    json_t *j = get_json("/openstack/latest/vendor_data.json");
    CHECK(json_is_object(j) && json_object_size(j) == 0);
    json_decref(j);
    j = get_json("/openstack/2016-10-06/vendor_data2.json");
    CHECK(json_is_object(j) && json_object_size(j) == 1 &&
          json_is_object(json_object_get(j, "static")));
    json_decref(j);
    expect_text("/openstack/latest/password", "", "text/plain");
    /* files a version does not have */
    expect_enoent("/openstack/2012-08-10/password");
    expect_enoent("/openstack/2013-04-04/vendor_data.json");
    expect_enoent("/openstack/2013-10-17/network_data.json");
    expect_enoent("/openstack/2016-06-30/vendor_data2.json");

    /* user data, decoded, in both trees */
    expect_text("/openstack/latest/user_data", UD_PLAIN, "text/plain");
    expect_text("/openstack/2012-08-10/user_data", UD_PLAIN, "text/plain");
    expect_text("/latest/user-data", UD_PLAIN, "text/plain");
    expect_text("/2009-04-04/user-data", UD_PLAIN, "text/plain");
    expect_text("/1.0/user-data", UD_PLAIN, "text/plain");
    expect_text("/ec2/latest/user-data", UD_PLAIN, "text/plain");
    /* binary user data with NULs */
    inst.user_data_b64 = "AAEC/w==\n"; /* 00 01 02 ff */
    size_t len;
    char *s = get("/openstack/latest/user_data", &len, NULL, NULL);
    CHECK(s && len == 4 && !memcmp(s, "\x00\x01\x02\xff", 4));
    free(s);
    inst.user_data_b64 = "";
    s = get("/latest/user-data", &len, NULL, NULL);
    CHECK(s && len == 0);
    free(s);
    /* absent: not found, not listed */
    inst.user_data_b64 = NULL;
    expect_enoent("/openstack/latest/user_data");
    expect_enoent("/latest/user-data");
    expect_text("/openstack/latest",
                "meta_data.json\npassword\nvendor_data.json\nnetwork_data.json\nvendor_data2.json",
                "text/plain");
    expect_text("/latest", "meta-data/", "text/plain");
    setup();
}

static void test_listings(void)
{
    const char *os = "2012-08-10\n2013-04-04\n2013-10-17\n2015-10-15\n2016-06-30\n2016-10-06\n"
                     "2017-02-22\n2018-08-27\n2020-10-14\nlatest";
    expect_text("/openstack", os, "text/plain");
    expect_text("/openstack/", os, "text/plain");
    const char *ec2 = "1.0\n2007-01-19\n2007-03-01\n2007-08-29\n2007-10-10\n2007-12-15\n"
                      "2008-02-01\n2008-09-01\n2009-04-04\nlatest";
    expect_text("/", ec2, "text/plain");
    expect_text("/ec2", ec2, "text/plain");
    expect_text("/ec2/", ec2, "text/plain");
    const char *latest = "meta_data.json\nuser_data\npassword\nvendor_data.json\n"
                         "network_data.json\nvendor_data2.json";
    expect_text("/openstack/latest", latest, "text/plain");
    expect_text("/openstack/latest/", latest, "text/plain");
    expect_text("/openstack/2020-10-14", latest, "text/plain");
    expect_text("/openstack/2012-08-10", "meta_data.json\nuser_data", "text/plain");
    expect_text("/openstack/2013-04-04", "meta_data.json\nuser_data\npassword", "text/plain");
    expect_text("/openstack/2015-10-15",
                "meta_data.json\nuser_data\npassword\nvendor_data.json\nnetwork_data.json",
                "text/plain");
    expect_text("/latest", "meta-data/\nuser-data", "text/plain");
    expect_text("/latest/", "meta-data/\nuser-data", "text/plain");
    /* a document takes one trailing slash too (Nova normalises it away) */
    json_t *j = get_json("/openstack/latest/meta_data.json/");
    CHECK(j != NULL);
    json_decref(j);
}

static void test_ec2(void)
{
    expect_text("/latest/meta-data/",
                "ami-id\nami-launch-index\nami-manifest-path\nblock-device-mapping/\nhostname\n"
                "instance-action\ninstance-id\ninstance-type\nlocal-hostname\nlocal-ipv4\n"
                "placement/\npublic-hostname\npublic-ipv4\npublic-keys/\nreservation-id\n"
                "security-groups",
                "text/plain");
    expect_text("/1.0/meta-data",
                "ami-id\nami-launch-index\nami-manifest-path\nhostname\ninstance-id\n"
                "local-ipv4\npublic-keys/\nreservation-id\nsecurity-groups",
                "text/plain");
    expect_text("/latest/meta-data/ami-id", "ami-a1b2c3d4", "text/plain");
    expect_text("/latest/meta-data/ami-launch-index", "0", "text/plain");
    expect_text("/latest/meta-data/ami-manifest-path", "FIXME", "text/plain");
    expect_text("/latest/meta-data/hostname", "vm1", "text/plain");
    expect_text("/latest/meta-data/local-hostname", "vm1", "text/plain");
    expect_text("/latest/meta-data/public-hostname", "vm1", "text/plain");
    expect_text("/latest/meta-data/instance-id", "i-0000002a", "text/plain");
    expect_text("/latest/meta-data/instance-type", "m1.small", "text/plain");
    expect_text("/latest/meta-data/local-ipv4", "10.0.0.5", "text/plain");
    expect_text("/latest/meta-data/public-ipv4", "", "text/plain");
    expect_text("/latest/meta-data/placement", "availability-zone", "text/plain");
    expect_text("/latest/meta-data/placement/availability-zone", "nova", "text/plain");
    expect_text("/latest/meta-data/public-keys", "0=k", "text/plain");
    expect_text("/latest/meta-data/public-keys/", "0=k", "text/plain");
    expect_text("/latest/meta-data/public-keys/0/", "openssh-key", "text/plain");
    expect_text("/latest/meta-data/public-keys/0/openssh-key", KEY, "text/plain");
    expect_text("/2009-04-04/meta-data/public-keys/0/openssh-key", KEY, "text/plain");
    expect_text("/ec2/2009-04-04/meta-data/public-keys/0/openssh-key", KEY, "text/plain");
    expect_text("/latest/meta-data/reservation-id", "r-abcd1234", "text/plain");
    expect_text("/latest/meta-data/security-groups", "default", "text/plain");
    expect_text("/latest/meta-data/instance-action", "none", "text/plain");
    expect_text("/latest/meta-data/block-device-mapping", "ami\nroot", "text/plain");
    expect_text("/latest/meta-data/block-device-mapping/root", "/dev/vda", "text/plain");
    /* by version */
    expect_enoent("/1.0/meta-data/local-hostname");
    expect_enoent("/2007-03-01/meta-data/instance-type");
    expect_text("/2007-08-29/meta-data/instance-type", "m1.small", "text/plain");
    expect_enoent("/2008-01-01/meta-data/instance-id");
    expect_enoent("/2007-12-15/meta-data/placement/availability-zone");
    /* derived ids */
    inst.reservation_id = NULL;
    inst.seq = 0x1234abcd5LL;
    inst.image_id = NULL;
    expect_text("/latest/meta-data/reservation-id", "r-6f1c3b2a", "text/plain");
    expect_text("/latest/meta-data/instance-id", "i-1234abcd5", "text/plain");
    expect_text("/latest/meta-data/ami-id", "ami-00000000", "text/plain");
    inst.nnics = 0;
    expect_text("/latest/meta-data/local-ipv4", "", "text/plain");
    setup();
    /* not in the tree */
    expect_enoent("/latest/meta-data/nothing");
    expect_enoent("/latest/meta-data/hostname/x");
    expect_enoent("/latest/meta-data/public-keys/1");
    expect_enoent("/latest/meta-data/public-keys/0/_name");
    expect_enoent("/latest/meta-data/public-keys/0/openssh-key/x");
    expect_enoent("/latest/meta-data/security-groups/default");
    expect_enoent("/latest/user-data/x");
    expect_enoent("/latest/other");
}

static void test_network_data(void)
{
    /* no port: {} as Nova's */
    inst.nnics = 0;
    json_t *j = get_json("/openstack/latest/network_data.json");
    CHECK(json_is_object(j) && json_object_size(j) == 0);
    json_decref(j);

    for (size_t np = 1; np <= 2; np++) {
        inst.nnics = np;
        j = get_json("/openstack/2015-10-15/network_data.json");
        if (!j)
            continue;
        json_t *links = json_object_get(j, "links"), *nets = json_object_get(j, "networks");
        json_t *svc = json_object_get(j, "services");
        CHECK(json_array_size(links) == np && json_array_size(nets) == np);
        json_t *l0 = json_array_get(links, 0), *n0 = json_array_get(nets, 0);
        CHECK(l0 && !strcmp(jsget(l0, "id"), "tap1f2e3d4c-5b") &&
              !strcmp(jsget(l0, "vif_id"), PORT1) && !strcmp(jsget(l0, "type"), "bridge") &&
              !strcmp(jsget(l0, "ethernet_mac_address"), "fa:16:3e:12:34:56") &&
              json_integer_value(json_object_get(l0, "mtu")) == 1500);
        CHECK(n0 && !strcmp(jsget(n0, "id"), "network0") && !strcmp(jsget(n0, "type"), "ipv4") &&
              !strcmp(jsget(n0, "link"), "tap1f2e3d4c-5b") &&
              !strcmp(jsget(n0, "ip_address"), "10.0.0.5") &&
              !strcmp(jsget(n0, "netmask"), "255.255.255.0") &&
              !strcmp(jsget(n0, "network_id"), NET1));
        json_t *r = json_object_get(n0, "routes");
        CHECK(json_array_size(r) == 1);
        json_t *r0 = json_array_get(r, 0);
        CHECK(r0 && !strcmp(jsget(r0, "network"), "0.0.0.0") &&
              !strcmp(jsget(r0, "netmask"), "0.0.0.0") &&
              !strcmp(jsget(r0, "gateway"), "10.0.0.1"));
        json_t *ns = json_object_get(n0, "services");
        CHECK(json_array_size(ns) == 2 && !strcmp(jsget(json_array_get(ns, 0), "type"), "dns") &&
              !strcmp(jsget(json_array_get(ns, 0), "address"), "8.8.8.8") &&
              !strcmp(jsget(json_array_get(ns, 1), "address"), "1.1.1.1"));
        if (np == 1) {
            CHECK(json_array_size(svc) == 2);
        } else {
            /* services: each DNS once (8.8.8.8 is on both) */
            CHECK(json_array_size(svc) == 3 &&
                  !strcmp(jsget(json_array_get(svc, 2), "address"), "9.9.9.9"));
            json_t *l1 = json_array_get(links, 1), *n1 = json_array_get(nets, 1);
            CHECK(l1 && !strcmp(jsget(l1, "id"), "tapaaaabbbb-cc") &&
                  json_integer_value(json_object_get(l1, "mtu")) == 9000);
            CHECK(n1 && !strcmp(jsget(n1, "id"), "network1") &&
                  !strcmp(jsget(n1, "link"), "tapaaaabbbb-cc") &&
                  !strcmp(jsget(n1, "ip_address"), "192.168.10.11") &&
                  !strcmp(jsget(n1, "netmask"), "255.255.240.0") &&
                  json_array_size(json_object_get(n1, "routes")) == 0 &&
                  !strcmp(jsget(n1, "network_id"), NET2));
        }
        json_decref(j);
    }
    /* a port without an address: its link, no network; mtu 0: null */
    nics[1].ip = 0;
    nics[1].mtu = 0;
    inst.nnics = 2;
    j = get_json("/openstack/latest/network_data.json");
    CHECK(j && json_array_size(json_object_get(j, "links")) == 2 &&
          json_array_size(json_object_get(j, "networks")) == 1 &&
          json_is_null(json_object_get(json_array_get(json_object_get(j, "links"), 1), "mtu")));
    json_decref(j);
    setup();
}

static void test_hostile(void)
{
    static const char *const bad[] = {
        "",
        "openstack",
        "//",
        "//openstack",
        "/openstack//latest",
        "/openstack/latest//",
        "/openstack/latest/meta_data.json//",
        "/openstack/../openstack/latest/meta_data.json",
        "/openstack/latest/../latest/meta_data.json",
        "/openstack/./latest",
        "/..",
        "/.",
        "/./",
        "/openstack/%2e%2e/latest",
        "/openstack/latest/meta_data%2ejson",
        "/openstack/latest/meta_data.json?x=1",
        "/openstack/latest/meta_data.json#x",
        "/openstack/latest/meta_data.json\\",
        "/openstack/latest/ meta_data.json",
        "/openstack/latest/META_DATA.JSON",
        "/openstack/Latest",
        "/openstack/2012-08-11/meta_data.json",
        "/openstack/2025-04-04",
        "/openstack/latest/nothing",
        "/openstack/latest/version",
        "/openstack/latest/content",
        "/openstack/content/0000",
        "/openstack/latest/meta_data.json/x",
        "/openstack/latest/meta_data.json/x/y/z/a/b/c/d/e/f",
        "/ec2/ec2/latest",
        "/ec2/openstack/latest",
        "/latest/meta-data/../user-data",
        "/2009-04-05/meta-data",
        "/LATEST/meta-data",
        "/favicon.ico",
        "/openstack/latest/meta_data.json\n",
        "/openstack/latest/\xc3\xa9",
        "/\x01",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_enoent(bad[i]);
    char *out = (char *)1;
    size_t len = 1;
    const char *ct = NULL;
    CHECK(kova_md_get(&inst, NULL, &out, &len, &ct) == -ENOENT && !out && !len && ct);

    /* very long: a valid-looking path past KOVA_MD_PATH_MAX */
    char lng[4096];
    snprintf(lng, sizeof(lng), "/openstack/latest");
    while (strlen(lng) < sizeof(lng) - 4)
        strcat(lng, "/");
    expect_enoent(lng);
    memset(lng, 'a', sizeof(lng) - 1);
    lng[0] = '/';
    lng[sizeof(lng) - 1] = '\0';
    expect_enoent(lng);
    /* just at and just past the limit */
    char edge[KOVA_MD_PATH_MAX + 2];
    memset(edge, 'a', sizeof(edge));
    edge[0] = '/';
    edge[KOVA_MD_PATH_MAX] = '\0';
    expect_enoent(edge); /* KOVA_MD_PATH_MAX bytes: looked at, no such name */
    edge[KOVA_MD_PATH_MAX] = 'a';
    edge[KOVA_MD_PATH_MAX + 1] = '\0';
    expect_enoent(edge);

    /* NUL in the middle: with a length */
    static const char nul[] = "/openstack\0/../x";
    CHECK(kova_md_getn(&inst, nul, sizeof(nul) - 1, &out, &len, &ct) == -ENOENT && !out);
    static const char nul2[] = "/openstack/latest/meta_data.json\0";
    CHECK(kova_md_getn(&inst, nul2, sizeof(nul2) - 1, &out, &len, &ct) == -ENOENT && !out);
    CHECK(kova_md_getn(&inst, nul2, sizeof(nul2) - 2, &out, &len, &ct) == 0 && out);
    free(out);

    /* every short name in the trees' alphabet that is not one: not found */
    static const char alpha[] = "ab.-_/0";
    char p[8];
    unsigned found = 0;
    for (size_t a = 0; a < sizeof(alpha) - 1; a++)
        for (size_t b = 0; b < sizeof(alpha) - 1; b++) {
            snprintf(p, sizeof(p), "/%c%c", alpha[a], alpha[b]);
            char *s = get(p, NULL, NULL, NULL);
            found += s != NULL;
            free(s);
        }
    CHECK(found == 0);
}

static void test_b64(void)
{
    unsigned char *o = NULL;
    size_t n = 0;
    CHECK(kova_md_b64_decode("aGk=", &o, &n) == 0 && n == 2 && !memcmp(o, "hi", 2));
    free(o);
    CHECK(kova_md_b64_decode("aGVsbG8=\r\n", &o, &n) == 0 && n == 5 && !memcmp(o, "hello", 5));
    free(o);
    CHECK(kova_md_b64_decode("aA==", &o, &n) == 0 && n == 1 && o[0] == 'h');
    free(o);
    CHECK(kova_md_b64_decode("", &o, &n) == 0 && n == 0);
    free(o);
    static const char *const bad[] = {"aGk", "a===", "aG=k", "aGk=aGk=", "aGk!", "=aGk", "aGk=="};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        o = NULL;
        if (kova_md_b64_decode(bad[i], &o, &n) != -EINVAL || o) {
            fprintf(stderr, "b64 \"%s\" accepted\n", bad[i]);
            failures++;
            free(o);
        }
    }
}

static const struct kova_md_file *find(const struct kova_md_file *f, size_t n, const char *p)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(f[i].path, p))
            return &f[i];
    return NULL;
}

static void test_drive_files(void)
{
    struct kova_md_file *f = NULL;
    size_t n = 0;
    CHECK(kova_md_config_drive_files(&inst, &f, &n) == 0);
    /* ec2: 2 versions x 2; openstack: 10 versions, the files each has */
    CHECK(n == 4 + 2 + 2 + 3 + 4 + 4 + 5 * 5);
    const struct kova_md_file *ud = find(f, n, "openstack/latest/user_data");
    CHECK(ud && ud->len == strlen(UD_PLAIN) && !memcmp(ud->data, UD_PLAIN, ud->len));
    CHECK(find(f, n, "ec2/latest/user-data") && find(f, n, "ec2/2009-04-04/user-data"));
    CHECK(find(f, n, "openstack/2012-08-10/meta_data.json"));
    CHECK(!find(f, n, "openstack/2012-08-10/vendor_data.json"));
    CHECK(find(f, n, "openstack/2013-10-17/vendor_data.json"));
    CHECK(!find(f, n, "openstack/2013-10-17/network_data.json"));
    CHECK(find(f, n, "openstack/2015-10-15/network_data.json"));
    CHECK(find(f, n, "openstack/2016-10-06/vendor_data2.json"));
    CHECK(find(f, n, "openstack/latest/vendor_data2.json"));
    CHECK(!find(f, n, "openstack/latest/password"));
    CHECK(!find(f, n, "ec2/2008-09-01/meta-data.json"));
    const struct kova_md_file *md = find(f, n, "openstack/latest/meta_data.json");
    json_t *j = md ? json_loadb(md->data, md->len, 0, NULL) : NULL;
    CHECK(j && !strcmp(jsget(j, "uuid"), UUID) && json_object_get(j, "dedicated_cpus"));
    json_decref(j);
    const struct kova_md_file *em = find(f, n, "ec2/latest/meta-data.json");
    j = em ? json_loadb(em->data, em->len, 0, NULL) : NULL;
    CHECK(j && !strcmp(jsget(j, "instance-id"), "i-0000002a") &&
          !strcmp(jsget(j, "hostname"), "vm1") && !strcmp(jsget(j, "local-ipv4"), "10.0.0.5") &&
          !strcmp(jsget(json_object_get(j, "placement"), "availability-zone"), "nova"));
    json_t *k0 = json_object_get(json_object_get(j, "public-keys"), "0");
    CHECK(k0 && json_object_size(k0) == 1 && !strcmp(jsget(k0, "openssh-key"), KEY));
    json_t *sg = json_object_get(j, "security-groups");
    CHECK(json_array_size(sg) == 1 && !strcmp(json_string_value(json_array_get(sg, 0)), "default"));
    CHECK(json_integer_value(json_object_get(j, "ami-launch-index")) == 0);
    json_decref(j);
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(f[i].path);
        if (l > 5 && !strcmp(f[i].path + l - 5, ".json")) {
            json_t *x = json_loadb(f[i].data, f[i].len, JSON_REJECT_DUPLICATES, NULL);
            if (!x) {
                fprintf(stderr, "%s is not JSON\n", f[i].path);
                failures++;
            }
            json_decref(x);
        }
    }
    kova_md_files_free(f, n);

    /* no user data: no user_data files */
    inst.user_data_b64 = NULL;
    CHECK(kova_md_config_drive_files(&inst, &f, &n) == 0);
    CHECK(n == 2 + 1 + 1 + 2 + 3 + 3 + 5 * 4 && !find(f, n, "openstack/latest/user_data") &&
          !find(f, n, "ec2/latest/user-data"));
    kova_md_files_free(f, n);
    inst.meta_json = "nope";
    f = (struct kova_md_file *)1;
    CHECK(kova_md_config_drive_files(&inst, &f, &n) == -EINVAL && !f && !n);
    setup();
}

int main(void)
{
    setup();
    test_b64();
    test_hostname();
    test_meta_data();
    test_other_os_files();
    test_listings();
    test_ec2();
    test_network_data();
    test_hostile();
    test_drive_files();
    return kt_finish("metadata.units");
}
