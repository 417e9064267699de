/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The typed table access of db/ (flavors, extra specs, keypairs, images) against a real SQLite
 * database: each function's result and its documented errors (-ENOENT, -EEXIST, -ENOTUNIQ,
 * -EDQUOT), paging markers, and kova_db_txn_conn's savepoint inside an open transaction being
 * undone when its function fails. (Its HTTP behaviour is checked by the api.* tests.)
 */
#include "kova/db.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures, checks;

/* Counts and reports a failed check; the test goes on (a crash afterwards still fails it). */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                        \
        }                                                                                          \
    } while (0)

static int ins_fail(sqlite3 *c, void *a)
{
    (void)a;
    struct kova_db_flavor f = {.ram = 1, .vcpus = 1, .rxtx_factor = 1, .is_public = 1};
    strcpy(f.id, "n1");
    strcpy(f.name, "nested");
    int r = kova_db_flavor_create(c, &f); /* nested: savepoint */
    CHECK(r == 0);
    struct kova_db_flavor g;
    CHECK(kova_db_flavor_get(c, "n1", &g) == 0);
    return -EINVAL;
}

int main(void)
{
    char dir[] = "/tmp/kova-db-test-XXXXXX", path[64];
    if (!mkdtemp(dir))
        return 1;
    snprintf(path, sizeof path, "%s/state.db", dir);
    struct kova_db *db;
    if (kova_db_open(path, 2, &db) < 0) {
        fprintf(stderr, "FAIL: cannot open %s\n", path);
        return 1;
    }
    sqlite3 *c = kova_db_acquire(db);
    struct kova_db_flavor f = {
        .ram = 64, .vcpus = 1, .disk = 1, .rxtx_factor = 1.5, .is_public = 0};
    strcpy(f.id, "x1");
    strcpy(f.name, "f1");
    CHECK(kova_db_flavor_create(c, &f) == 0);
    CHECK(kova_db_flavor_create(c, &f) == -EEXIST);
    strcpy(f.id, "x2");
    CHECK(kova_db_flavor_create(c, &f) == -ENOTUNIQ);
    struct kova_db_flavor g;
    CHECK(kova_db_flavor_get(c, "x1", &g) == 0 && g.ram == 64 && !g.is_public &&
          g.rxtx_factor == 1.5);
    CHECK(kova_db_flavor_get(c, "zz", &g) == -ENOENT);
    struct kova_db_flavor *v;
    size_t n;
    struct kova_db_flavor_filter flt = {.is_public = -1, .limit = -1};
    CHECK(kova_db_flavor_list(c, &flt, &v, &n) == 0 && n == 6);
    free(v);
    flt.marker = "3";
    flt.limit = 1;
    CHECK(kova_db_flavor_list(c, &flt, &v, &n) == 0 && n == 1 && !strcmp(v[0].id, "4"));
    free(v);
    flt.marker = "nope";
    CHECK(kova_db_flavor_list(c, &flt, &v, &n) == -ENOENT);
    struct kova_db_spec sp[2] = {{"a", "1"}, {"b", "2"}};
    CHECK(kova_db_flavor_specs_set(c, "x1", sp, 2) == 0);
    CHECK(kova_db_flavor_specs_set(c, "zz", sp, 2) == -ENOENT);
    struct kova_db_spec *sv;
    CHECK(kova_db_flavor_specs(c, "x1", &sv, &n) == 0 && n == 2 && !strcmp(sv[1].value, "2"));
    free(sv);
    struct kova_db_spec one;
    CHECK(kova_db_flavor_spec_get(c, "x1", "b", &one) == 0 && !strcmp(one.value, "2"));
    CHECK(kova_db_flavor_spec_delete(c, "x1", "b") == 0);
    CHECK(kova_db_flavor_spec_delete(c, "x1", "b") == -ENOENT);
    /* nested txn rolled back: n1 must not exist */
    CHECK(kova_db_txn_conn(c, ins_fail, NULL) == -EINVAL);
    CHECK(kova_db_flavor_get(c, "n1", &g) == -ENOENT);
    CHECK(kova_db_flavor_delete(c, "x1") == 0);
    CHECK(kova_db_flavor_delete(c, "x1") == -ENOENT);
    CHECK(kova_db_flavor_specs(c, "x1", &sv, &n) == 0 && n == 0);
    free(sv);

    struct kova_db_keypair k = {.public_key = "ssh-ed25519 AAAA x"};
    strcpy(k.user_id, "u");
    strcpy(k.name, "k1");
    strcpy(k.type, "ssh");
    strcpy(k.fingerprint, "aa:bb");
    CHECK(kova_db_keypair_create(c, &k, 2) == 0 && k.id == 1 && strlen(k.created_at) == 26);
    CHECK(kova_db_keypair_create(c, &k, 2) == -EEXIST);
    strcpy(k.name, "k2");
    CHECK(kova_db_keypair_create(c, &k, 2) == 0);
    strcpy(k.name, "k3");
    CHECK(kova_db_keypair_create(c, &k, 2) == -EDQUOT);
    CHECK(kova_db_keypair_create(c, &k, -1) == 0);
    struct kova_db_keypair *kv, kg;
    CHECK(kova_db_keypair_list(c, "u", &kv, &n) == 0 && n == 3 && !strcmp(kv[2].name, "k3"));
    kova_db_keypair_list_free(kv, n);
    CHECK(kova_db_keypair_get(c, "u", "k2", &kg) == 0 &&
          !strcmp(kg.public_key, "ssh-ed25519 AAAA x"));
    kova_db_keypair_free(&kg);
    CHECK(kova_db_keypair_get(c, "v", "k2", &kg) == -ENOENT);
    CHECK(kova_db_keypair_delete(c, "u", "k2") == 0);
    CHECK(kova_db_keypair_delete(c, "u", "k2") == -ENOENT);

    struct kova_db_image im = {
        .has_owner = 1, .properties = "{\"kernel_id\":\"k\"}", .tags = "[\"t\"]"};
    strcpy(im.id, "i1");
    strcpy(im.owner, "p");
    strcpy(im.visibility, "private");
    im.has_disk_format = 1;
    strcpy(im.disk_format, "raw");
    CHECK(kova_db_image_create(c, &im) == 0);
    CHECK(kova_db_image_create(c, &im) == -EEXIST);
    strcpy(im.id, "i2");
    im.has_disk_format = 0;
    im.properties = NULL;
    im.tags = NULL;
    CHECK(kova_db_image_create(c, &im) == 0);
    struct kova_db_image gi;
    CHECK(kova_db_image_get(c, "i1", &gi) == 0 && !strcmp(gi.tags, "[\"t\"]") &&
          gi.has_disk_format && !gi.has_name && !gi.has_size);
    free(gi.properties); /* the documented short way: frees tags too (LeakSanitizer checks) */
    CHECK(kova_db_image_get(c, "i2", &gi) == 0 && !gi.has_disk_format &&
          !strcmp(gi.disk_format, "") && !strcmp(gi.properties, "{}"));
    kova_db_image_free(&gi);
    CHECK(kova_db_image_get_visible(c, "i1", "q", false, &gi) == -ENOENT);
    CHECK(kova_db_image_get_visible(c, "i1", "q", true, &gi) == 0);
    kova_db_image_free(&gi);
    struct kova_db_image *iv;
    struct kova_db_image_filter ff = {.project_id = "p", .limit = -1};
    CHECK(kova_db_image_list(c, &ff, &iv, &n) == 0 && n == 2 && !strcmp(iv[0].id, "i2"));
    kova_db_image_list_free(iv, n);
    ff.marker = "i2";
    CHECK(kova_db_image_list(c, &ff, &iv, &n) == 0 && n == 1 && !strcmp(iv[0].id, "i1"));
    kova_db_image_list_free(iv, n);
    ff.marker = "zz";
    CHECK(kova_db_image_list(c, &ff, &iv, &n) == -ENOENT);
    ff.marker = NULL;
    ff.limit = 0;
    CHECK(kova_db_image_list(c, &ff, &iv, &n) == 0 && n == 0);
    kova_db_image_list_free(iv, n);
    CHECK(kova_db_image_set_status(c, "i1", "queued", "saving") == 1);
    CHECK(kova_db_image_set_status(c, "i1", "queued", "saving") == 0);
    CHECK(kova_db_image_set_status(c, "i2", "queued", "importing") == 1);
    char(*ids)[KOVA_DB_ID_MAX];
    CHECK(kova_db_image_reset_unfinished(c, &ids, &n) == 0 && n == 2 && !strcmp(ids[1], "i2"));
    free(ids);
    CHECK(kova_db_image_set_status(c, "i1", "queued", "saving") == 1);
    CHECK(kova_db_image_activate(c, "i1", "saving", 5, "md5", "sha") == 0);
    CHECK(kova_db_image_activate(c, "i1", "saving", 5, "md5", "sha") == -ENOENT);
    CHECK(kova_db_image_get(c, "i1", &gi) == 0 && gi.has_size && gi.size == 5 &&
          !strcmp(gi.status, "active") && !strcmp(gi.os_hash_algo, "sha512"));
    gi.has_name = 1;
    strcpy(gi.name, "nm");
    char *keep = gi.properties;
    gi.properties = "{}";
    gi.tags = "[]";
    CHECK(kova_db_image_update(c, &gi) == 0);
    free(keep);
    CHECK(kova_db_image_get(c, "i1", &gi) == 0 && !strcmp(gi.name, "nm") &&
          !strcmp(gi.properties, "{}"));
    kova_db_image_free(&gi);
    strcpy(gi.id, "zz");
    CHECK(kova_db_image_update(c, &gi) == -ENOENT);
    CHECK(kova_db_image_exists(c, "i1") == 1 && kova_db_image_exists(c, "zz") == 0);
    CHECK(kova_db_image_delete(c, "i1") == 0 && kova_db_image_delete(c, "i1") == -ENOENT);
    kova_db_release(db, c);
    kova_db_close(db);
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: %s left behind\n", dir);
    printf("%d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
