/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kova keystone: validation of callers' tokens against a real Keystone v3, as keystonemiddleware's
 * auth_token does for Nova.
 *
 * Contract:
 *  - kova_keystone_validate() asks Keystone `GET /v3/auth/tokens?nocatalog` with the agent's own
 *    service token in X-Auth-Token and the caller's in X-Subject-Token, and fills in the caller's
 *    identity (user, project, roles, expiry) from the answer.
 *  - The service token is fetched with the service user's password (project-scoped), kept, and
 *    fetched anew before it expires (a minute before, or when Keystone calls it invalid).
 *  - Valid tokens are cached, keyed by their SHA-256 (the token itself is never kept), no longer
 *    than min(the token's expires_at, cache_time); the cache is bounded (cache_size entries,
 *    the oldest slot reused). Invalid tokens are never cached.
 *  - One call never waits longer than timeout_ms in all (connect, service token, validation):
 *    an HTTP thread is never held longer than that.
 *  - Thread-safe: any number of threads may validate at once.
 * Errors: 0 valid; -EACCES the token is missing, malformed, unknown, expired or revoked (401);
 * -EHOSTUNREACH Keystone could not be reached, timed out, failed (5xx) or refused the service
 * user (503: never "let it in"); -ENOMEM; -EINVAL bad configuration (kova_keystone_new).
 */
#ifndef KOVA_KEYSTONE_H
#define KOVA_KEYSTONE_H

#include <stdint.h>
#include <time.h>

struct kova_keystone;

/* Options, named as in nova.conf's [keystone_authtoken]. */
struct kova_keystone_config {
    const char *auth_url; /* Keystone's URL, with or without /v3 */
    const char *username; /* the service user, e.g. "nova" */
    const char *password;
    const char *project_name;        /* e.g. "service" */
    const char *user_domain_name;    /* "Default" when NULL */
    const char *project_domain_name; /* "Default" when NULL */
    unsigned cache_time;             /* token_cache_time: seconds a validation is reused */
    unsigned cache_size;             /* entries (0: 1024) */
    unsigned timeout_ms;             /* http_request_timeout: one validation's whole budget */
};

/* Roles, with Keystone's bootstrap inheritance applied: admin implies member implies reader. */
enum { KOVA_ROLE_READER = 1, KOVA_ROLE_MEMBER = 2, KOVA_ROLE_ADMIN = 4 };

struct kova_identity {
    char user_id[256];
    char user_name[256];
    char project_id[256]; /* "" for an unscoped token (which has no roles) */
    char project_name[256];
    unsigned roles; /* KOVA_ROLE_* */
    time_t expires_at;
};

int kova_keystone_new(const struct kova_keystone_config *cfg, struct kova_keystone **out);
void kova_keystone_free(struct kova_keystone *ks);
/* Validates token (NUL-terminated, as the caller sent it) and fills *id. See Errors above. */
int kova_keystone_validate(struct kova_keystone *ks, const char *token, struct kova_identity *id);

/* Counters for logs and tests: validations answered from the cache and by Keystone. */
struct kova_keystone_stats {
    uint64_t cache_hits, keystone_calls, service_tokens, failures;
};
void kova_keystone_stats(struct kova_keystone *ks, struct kova_keystone_stats *out);

#endif
