/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of kova keystone's pure parts: Keystone's times and token bodies, the token check
 * and the validation cache. (The client itself is tested against a real Keystone:
 * tests/keystone/test_keystone.py.) */
#include "internal.h"
#include "kova/common.h"
#include "kova_test.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* kova_parse_time (common): the times Keystone writes, and what clients send (changes-since) */
static void test_time(void)
{
    time_t t;
    CHECK(kova_parse_time("1970-01-01T00:00:00Z", &t) == 0 && t == 0);
    CHECK(kova_parse_time("2026-12-03T04:05:06.000000Z", &t) == 0 && t == 1796270706);
    CHECK(kova_parse_time("2026-12-03T04:05:06+00:00", &t) == 0 && t == 1796270706);
    CHECK(kova_parse_time("2026-12-03T04:05:06", &t) == 0 && t == 1796270706);
    CHECK(kova_parse_time("2026-12-03T04:05:06.5Z", &t) == 0 && t == 1796270706);
    CHECK(kova_parse_time("2026-12-03 04:05:06Z", &t) == 0 && t == 1796270706);
    CHECK(kova_parse_time("2026-12-03T05:05:06+01:00", &t) == 0 && t == 1796270706);
    CHECK(kova_parse_time("2026-12-03T03:35:06-0030", &t) == 0 && t == 1796270706);
    CHECK(kova_parse_time("2026-12-03T06:05:06+02", &t) == 0 && t == 1796270706);
    CHECK(kova_parse_time("2026-12-03T04:05Z", &t) == 0 && t == 1796270700);
    CHECK(kova_parse_time("2026-12-03", &t) == 0 && t == 1796256000);
    CHECK(kova_parse_time("2024-02-29", &t) == 0);
    static const char *const bad[] = {"",
                                      "yesterday",
                                      "2026-13-03T04:05:06Z",
                                      "2026-02-29",
                                      "2026-04-31T00:00:00Z",
                                      "garbage",
                                      "2026-12-03T24:00:00Z",
                                      "2026-12-03T04:05:06.Z",
                                      "2026-12-03T04:05:06ZZ",
                                      "2026-12-03T04:05:06+24:00",
                                      "2026-12-03T04:05:06+1",
                                      "1969-12-31T23:59:59Z",
                                      "1970-01-01T00:30:00+01:00",
                                      "2026-12-03T04",
                                      "2026-12-3",
                                      "+2026-12-03",
                                      "2026-12-03T04:05:06 ",
                                      NULL};
    for (int i = 0; bad[i]; i++) {
        t = 42;
        CHECK(kova_parse_time(bad[i], &t) == -EINVAL && t == 42);
    }
    CHECK(kova_parse_time(NULL, &t) == -EINVAL);
}

static int parse(const char *body, struct kova_identity *id)
{
    return ks_parse_token(body, strlen(body), id);
}

static void test_token(void)
{
    struct kova_identity id;
    const char *full =
        "{\"token\": {\"methods\": [\"password\"], \"user\": {\"id\": \"u1\", \"name\": \"alice\","
        " \"domain\": {\"id\": \"default\"}}, \"project\": {\"id\": \"p1\", \"name\": \"pa\"},"
        " \"roles\": [{\"id\": \"r1\", \"name\": \"member\"}, {\"id\": \"r9\", \"name\": \"x\"}],"
        " \"expires_at\": \"2026-12-03T04:05:06.000000Z\"}}";
    CHECK(parse(full, &id) == 0);
    CHECK(!strcmp(id.user_id, "u1") && !strcmp(id.user_name, "alice"));
    CHECK(!strcmp(id.project_id, "p1") && !strcmp(id.project_name, "pa"));
    CHECK(id.roles == (KOVA_ROLE_MEMBER | KOVA_ROLE_READER));
    CHECK(id.expires_at == 1796270706);

    /* inheritance: admin implies member implies reader; names in any case */
    CHECK(parse("{\"token\": {\"user\": {\"id\": \"u\"}, \"project\": {\"id\": \"p\"}, \"roles\":"
                " [{\"name\": \"Admin\"}], \"expires_at\": \"2030-01-01T00:00:00Z\"}}",
                &id) == 0);
    CHECK(id.roles == (KOVA_ROLE_ADMIN | KOVA_ROLE_MEMBER | KOVA_ROLE_READER));
    CHECK(parse("{\"token\": {\"user\": {\"id\": \"u\"}, \"project\": {\"id\": \"p\"}, \"roles\":"
                " [{\"name\": \"reader\"}], \"expires_at\": \"2030-01-01T00:00:00Z\"}}",
                &id) == 0);
    CHECK(id.roles == KOVA_ROLE_READER);
    /* unscoped: no project, no roles even if listed */
    CHECK(parse("{\"token\": {\"user\": {\"id\": \"u\"}, \"roles\": [{\"name\": \"admin\"}],"
                " \"expires_at\": \"2030-01-01T00:00:00Z\"}}",
                &id) == 0);
    CHECK(id.project_id[0] == 0 && id.roles == 0);

    char longid[400];
    memset(longid, 'a', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = 0;
    char buf[1000];
    snprintf(buf, sizeof(buf),
             "{\"token\": {\"user\": {\"id\": \"%s\"}, \"expires_at\": \"2030-01-01T00:00:00Z\"}}",
             longid);
    const char *const bad[] = {
        "",
        "[]",
        "{\"token\": 1}",
        "{\"token\": {}}",
        "{\"token\": {\"user\": {\"id\": \"u\"}}}",                           /* no expiry */
        "{\"token\": {\"user\": {\"id\": \"u\"}, \"expires_at\": \"soon\"}}", /* bad expiry */
        "{\"token\": {\"user\": {\"id\": 5}, \"expires_at\": \"2030-01-01T00:00:00Z\"}}",
        "{\"token\": {\"user\": {\"id\": \"\"}, \"expires_at\": \"2030-01-01T00:00:00Z\"}}",
        "{\"token\": {\"user\": {\"id\": \"u\\u0000x\"}, \"expires_at\": "
        "\"2030-01-01T00:00:00Z\"}}",
        "{\"token\": {\"user\": {\"id\": \"u\"}, \"project\": \"p\", \"expires_at\": "
        "\"2030-01-01T00:00:00Z\"}}",
        "{\"token\": {\"user\": {\"id\": \"u\"}, \"project\": {\"id\": \"p\"}, \"roles\": {},"
        " \"expires_at\": \"2030-01-01T00:00:00Z\"}}",
        "{\"token\": {\"user\": {\"id\": \"u\"}, \"project\": {\"id\": \"p\"}, \"roles\": [1],"
        " \"expires_at\": \"2030-01-01T00:00:00Z\"}}",
        "{\"token\": {\"user\": {\"id\": \"u\"}, \"user\": {\"id\": \"v\"}, \"expires_at\": "
        "\"2030-01-01T00:00:00Z\"}}", /* duplicate keys */
        buf,                          /* an id longer than kova keeps */
        NULL};
    for (int i = 0; bad[i]; i++) {
        if (parse(bad[i], &id) != -EINVAL) {
            fprintf(stderr, "accepted bad token body %d\n", i);
            failures++;
        }
    }
}

static void test_token_ok(void)
{
    CHECK(ks_token_ok("gAAAAABh-_x", 100));
    CHECK(!ks_token_ok("", 100));
    CHECK(!ks_token_ok(NULL, 100));
    CHECK(!ks_token_ok("a b", 100));
    CHECK(!ks_token_ok("a\r\nX-Evil: 1", 100));
    CHECK(!ks_token_ok("\x7f", 100));
    CHECK(!ks_token_ok("caf\xc3\xa9", 100));
    CHECK(ks_token_ok("abcd", 4));
    CHECK(!ks_token_ok("abcde", 4));
}

static void test_cache(void)
{
    struct ks_cache *c;
    CHECK(ks_cache_new(8, &c) == 0);
    struct kova_identity id = {.roles = KOVA_ROLE_READER}, got;
    uint8_t k[32], k2[32];
    ks_token_key("token-a", k);
    ks_token_key("token-b", k2);
    CHECK(memcmp(k, k2, 32) != 0);
    snprintf(id.user_id, sizeof(id.user_id), "alice");
    CHECK(!ks_cache_get(c, k, 100, &got));
    ks_cache_put(c, k, 200, &id);
    CHECK(ks_cache_get(c, k, 100, &got) && !strcmp(got.user_id, "alice"));
    CHECK(ks_cache_get(c, k, 199, &got));
    CHECK(!ks_cache_get(c, k, 200, &got)); /* at the deadline: gone */
    CHECK(!ks_cache_get(c, k, 100, &got)); /* and freed */
    CHECK(!ks_cache_get(c, k2, 100, &got));
    /* refresh in place */
    ks_cache_put(c, k, 200, &id);
    snprintf(id.user_id, sizeof(id.user_id), "bob");
    ks_cache_put(c, k, 300, &id);
    CHECK(ks_cache_get(c, k, 250, &got) && !strcmp(got.user_id, "bob"));
    /* bounded: 1000 tokens into 8 slots; the newest is always there, most others are gone */
    int present = 0;
    for (int i = 0; i < 1000; i++) {
        char t[32];
        snprintf(t, sizeof(t), "tok-%d", i);
        uint8_t key[32];
        ks_token_key(t, key);
        ks_cache_put(c, key, 1000 + i, &id);
        CHECK(ks_cache_get(c, key, 500, &got));
    }
    for (int i = 0; i < 1000; i++) {
        char t[32];
        snprintf(t, sizeof(t), "tok-%d", i);
        uint8_t key[32];
        ks_token_key(t, key);
        present += ks_cache_get(c, key, 500, &got);
    }
    CHECK(present <= 8 && present >= 1);
    ks_cache_free(c);
    /* one slot rounds up to a set of 4 */
    CHECK(ks_cache_new(1, &c) == 0);
    ks_cache_put(c, k, 200, &id);
    CHECK(ks_cache_get(c, k, 100, &got));
    ks_cache_free(c);
}

int main(void)
{
    test_time();
    test_token();
    test_token_ok();
    test_cache();
    return kt_finish("keystone units");
}
