/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Keystone client: the service token and the validation of callers' tokens (kova/keystone.h
 * states the contract). Each call runs against one deadline, now + timeout_ms, that every HTTP
 * request it makes shares.
 */
#include "internal.h"
#include "kova/common.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TOKEN_MAX    8192       /* a caller's token longer than this is not one Keystone made */
#define ANSWER_MAX   (1u << 20) /* a token body with nocatalog is a few KiB */
#define RENEW_MARGIN 60         /* the service token is fetched anew this long before it expires */

struct kova_keystone {
    char *auth_url; /* ends in "/v3", no trailing '/' */
    char *username, *password, *project_name, *user_domain, *project_domain;
    unsigned cache_time, timeout_ms;
    struct ks_cache *cache;
    pthread_mutex_t svc_lock; /* guards svc_token and svc_expires */
    char *svc_token;
    time_t svc_expires;
    _Atomic uint64_t hits, calls, svc_fetches, failures;
};

static char *dup_or(const char *s, const char *dflt)
{
    return strdup(s && s[0] ? s : dflt);
}

int kova_keystone_new(const struct kova_keystone_config *cfg, struct kova_keystone **out)
{
    if (!cfg->auth_url || !cfg->auth_url[0] || !cfg->username || !cfg->username[0] ||
        !cfg->password || !cfg->project_name || !cfg->project_name[0] ||
        (strncmp(cfg->auth_url, "http://", 7) != 0 && strncmp(cfg->auth_url, "https://", 8) != 0))
        return -EINVAL;
    struct kova_keystone *ks = calloc(1, sizeof(*ks));
    if (!ks)
        return -ENOMEM;
    pthread_mutex_init(&ks->svc_lock, NULL);
    int r = -ENOMEM;
    size_t n = strlen(cfg->auth_url);
    while (n && cfg->auth_url[n - 1] == '/')
        n--;
    bool has_v3 = n >= 3 && !strncmp(cfg->auth_url + n - 3, "/v3", 3);
    ks->auth_url = malloc(n + 4);
    if (!ks->auth_url)
        goto fail;
    snprintf(ks->auth_url, n + 4, "%.*s%s", (int)n, cfg->auth_url, has_v3 ? "" : "/v3");
    ks->username = strdup(cfg->username);
    ks->password = strdup(cfg->password);
    ks->project_name = strdup(cfg->project_name);
    ks->user_domain = dup_or(cfg->user_domain_name, "Default");
    ks->project_domain = dup_or(cfg->project_domain_name, "Default");
    if (!ks->username || !ks->password || !ks->project_name || !ks->user_domain ||
        !ks->project_domain)
        goto fail;
    ks->cache_time = cfg->cache_time;
    ks->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 10000;
    if ((r = ks_cache_new(cfg->cache_size ? cfg->cache_size : 1024, &ks->cache)) < 0)
        goto fail;
    *out = ks;
    return 0;
fail:
    kova_keystone_free(ks);
    return r;
}

void kova_keystone_free(struct kova_keystone *ks)
{
    if (!ks)
        return;
    ks_cache_free(ks->cache);
    pthread_mutex_destroy(&ks->svc_lock);
    free(ks->svc_token);
    free(ks->auth_url);
    free(ks->username);
    free(ks->password);
    free(ks->project_name);
    free(ks->user_domain);
    free(ks->project_domain);
    free(ks);
}

void kova_keystone_stats(struct kova_keystone *ks, struct kova_keystone_stats *out)
{
    out->cache_hits = ks->hits;
    out->keystone_calls = ks->calls;
    out->service_tokens = ks->svc_fetches;
    out->failures = ks->failures;
}

/* ---------------------------------------------------------------- one HTTP exchange */

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct answer {
    char *body;
    size_t len;
    bool too_big;
    char *subject_token; /* the X-Subject-Token header, when asked for */
    bool want_subject;
};

static size_t on_body(char *p, size_t size, size_t n, void *opaque)
{
    struct answer *a = opaque;
    size_t add = size * n;
    if (a->len + add > ANSWER_MAX) {
        a->too_big = true;
        return 0;
    }
    char *b = realloc(a->body, a->len + add + 1);
    if (!b)
        return 0;
    memcpy(b + a->len, p, add);
    a->body = b;
    a->len += add;
    a->body[a->len] = 0;
    return add;
}

static size_t on_header(char *p, size_t size, size_t n, void *opaque)
{
    struct answer *a = opaque;
    size_t len = size * n;
    static const char name[] = "x-subject-token:";
    if (a->want_subject && len > sizeof(name) - 1 && !strncasecmp(p, name, sizeof(name) - 1)) {
        const char *v = p + sizeof(name) - 1;
        size_t vl = len - (sizeof(name) - 1);
        while (vl && (*v == ' ' || *v == '\t'))
            v++, vl--;
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
            vl--;
        free(a->subject_token);
        a->subject_token = strndup(v, vl);
    }
    return len;
}

/* Makes one request before deadline (monotonic ms). Returns the HTTP status, or -EHOSTUNREACH
 * (no answer: refused, timed out, out of budget, too big) or -ENOMEM. */
static int exchange(struct kova_keystone *ks, long deadline, const char *method, const char *url,
                    struct curl_slist *hdrs, const char *body, struct answer *a)
{
    long left = deadline - now_ms();
    if (left <= 0)
        return -EHOSTUNREACH;
    CURL *c = curl_easy_init();
    if (!c)
        return -ENOMEM;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, left);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, left);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, a);
    CURLcode cr = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    if (cr != CURLE_OK) {
        kova_log(1, "keystone: %s %s: %s", method, url, curl_easy_strerror(cr));
        return cr == CURLE_OUT_OF_MEMORY ? -ENOMEM : -EHOSTUNREACH;
    }
    return (int)status;
}

static void answer_free(struct answer *a)
{
    free(a->body);
    free(a->subject_token);
    memset(a, 0, sizeof(*a));
}

/* Appends "<name><value>" to *list; -ENOMEM leaves *list as it was. */
static int header_add(struct curl_slist **list, const char *name, const char *value)
{
    size_t n = strlen(name) + strlen(value) + 1;
    char *line = malloc(n);
    if (!line)
        return -ENOMEM;
    snprintf(line, n, "%s%s", name, value);
    struct curl_slist *t = curl_slist_append(*list, line);
    free(line);
    if (!t)
        return -ENOMEM;
    *list = t;
    return 0;
}

/* ---------------------------------------------------------------- the service token */

/* Fetches a service token with the service user's password; stores it. Caller holds svc_lock. */
static int fetch_service_token(struct kova_keystone *ks, long deadline)
{
    json_t *req =
        json_pack("{s:{s:{s:[s], s:{s:{s:s, s:{s:s}, s:s}}}, s:{s:{s:s, s:{s:s}}}}}", "auth",
                  "identity", "methods", "password", "password", "user", "name", ks->username,
                  "domain", "name", ks->user_domain, "password", ks->password, "scope", "project",
                  "name", ks->project_name, "domain", "name", ks->project_domain);
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!body)
        return -ENOMEM;
    char url[4200];
    snprintf(url, sizeof(url), "%s/auth/tokens?nocatalog", ks->auth_url);
    struct curl_slist *h = NULL;
    int r = -ENOMEM;
    if (header_add(&h, "Content-Type: ", "application/json") < 0 ||
        header_add(&h, "Accept: ", "application/json") < 0) {
        curl_slist_free_all(h);
        goto out;
    }
    struct answer a = {.want_subject = true};
    int st = exchange(ks, deadline, "POST", url, h, body, &a);
    curl_slist_free_all(h);
    struct kova_identity me;
    if (st == 201 && a.subject_token && ks_token_ok(a.subject_token, TOKEN_MAX) &&
        ks_parse_token(a.body ? a.body : "", a.len, &me) == 0) {
        free(ks->svc_token);
        ks->svc_token = a.subject_token;
        a.subject_token = NULL;
        ks->svc_expires = me.expires_at;
        ks->svc_fetches++;
        kova_log(2, "keystone: service token for %s renewed (expires in %lld s)", ks->username,
                 (long long)(me.expires_at - time(NULL)));
        r = 0;
    } else {
        if (st >= 0)
            kova_log(0, "keystone: the service user %s could not log in to %s: HTTP %d",
                     ks->username, ks->auth_url, st);
        r = st == -ENOMEM ? -ENOMEM : -EHOSTUNREACH;
    }
    answer_free(&a);
out:
    free(body);
    return r;
}

/* Copies the service token into *tok (malloc'd), fetching one first when there is none, it
 * expires soon, or it equals stale (which Keystone refused). */
static int service_token(struct kova_keystone *ks, long deadline, const char *stale, char **tok)
{
    int r = 0;
    pthread_mutex_lock(&ks->svc_lock);
    time_t now = time(NULL);
    bool need = !ks->svc_token || now + RENEW_MARGIN >= ks->svc_expires ||
                (stale && !strcmp(stale, ks->svc_token));
    if (need)
        r = fetch_service_token(ks, deadline);
    if (r == 0 && !(*tok = strdup(ks->svc_token)))
        r = -ENOMEM;
    pthread_mutex_unlock(&ks->svc_lock);
    return r;
}

/* ---------------------------------------------------------------- validation */

int kova_keystone_validate(struct kova_keystone *ks, const char *token, struct kova_identity *id)
{
    if (!ks_token_ok(token, TOKEN_MAX))
        return -EACCES;
    uint8_t key[32];
    ks_token_key(token, key);
    time_t now = time(NULL);
    if (ks_cache_get(ks->cache, key, now, id)) {
        ks->hits++;
        return 0;
    }
    long deadline = now_ms() + (long)ks->timeout_ms;
    char *svc = NULL, *stale = NULL;
    int r = -EHOSTUNREACH;
    char url[4200];
    snprintf(url, sizeof(url), "%s/auth/tokens?nocatalog", ks->auth_url);
    for (int attempt = 0; attempt < 2; attempt++) {
        free(svc);
        svc = NULL;
        if ((r = service_token(ks, deadline, stale, &svc)) < 0)
            break;
        struct curl_slist *h = NULL;
        if (header_add(&h, "X-Auth-Token: ", svc) < 0 ||
            header_add(&h, "X-Subject-Token: ", token) < 0 ||
            header_add(&h, "Accept: ", "application/json") < 0) {
            curl_slist_free_all(h);
            r = -ENOMEM;
            break;
        }
        struct answer a = {0};
        ks->calls++;
        int st = exchange(ks, deadline, "GET", url, h, NULL, &a);
        curl_slist_free_all(h);
        if (st == 200) {
            r = ks_parse_token(a.body ? a.body : "", a.len, id) == 0 ? 0 : -EHOSTUNREACH;
            if (r == 0 && id->expires_at <= time(NULL))
                r = -EACCES;
            if (r == 0) {
                time_t until = time(NULL) + (time_t)ks->cache_time;
                if (until > id->expires_at)
                    until = id->expires_at;
                if (ks->cache_time)
                    ks_cache_put(ks->cache, key, until, id);
            } else if (r == -EHOSTUNREACH) {
                kova_log(0, "keystone: an unreadable token body from %s", ks->auth_url);
            }
        } else if (st == 404) {
            r = -EACCES; /* unknown, expired or revoked */
        } else if (st == 401 && attempt == 0) {
            free(stale);
            stale = strdup(svc); /* our own token was refused: fetch a new one, once */
            r = -EHOSTUNREACH;
            answer_free(&a);
            if (!stale) {
                r = -ENOMEM;
                break;
            }
            continue;
        } else if (st >= 0) {
            kova_log(0, "keystone: validating a token at %s: HTTP %d", ks->auth_url, st);
            r = -EHOSTUNREACH;
        } else {
            r = st;
        }
        answer_free(&a);
        break;
    }
    free(svc);
    free(stale);
    if (r == -EHOSTUNREACH || r == -ENOMEM)
        ks->failures++;
    return r;
}
