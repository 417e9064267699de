/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Authentication behind one small interface (kova_authenticate), two strategies:
 *  - noauth2 (Nova's, the embedded default): any token is accepted; "user:project" sets both, a
 *    bare token is user and project; the user "admin" is an administrator, anyone else a member;
 *  - keystone: the token is validated by Keystone (kova/keystone.h), which gives user, project
 *    and roles.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static bool clean_id(const char *s, size_t n)
{
    if (n == 0 || n > 255)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || c == '/') /* printable ASCII: ids go into JSON and paths */
            return false;
    }
    return true;
}

static int noauth2(struct kova_req *r)
{
    const char *tok = req_header(r, "X-Auth-Token");
    if (!tok || !tok[0])
        return -EACCES;
    const char *colon = strchr(tok, ':');
    size_t ul = colon ? (size_t)(colon - tok) : strlen(tok);
    const char *proj = colon ? colon + 1 : tok;
    size_t pl = strlen(proj);
    if (pl == 0) { /* "user:" → project = user, as Nova's noauth2 does */
        proj = tok;
        pl = ul;
    }
    if (!clean_id(tok, ul) || !clean_id(proj, pl))
        return -EACCES;
    memcpy(r->auth.user_id, tok, ul);
    r->auth.user_id[ul] = 0;
    memcpy(r->auth.project_id, proj, pl);
    r->auth.project_id[pl] = 0;
    r->auth.is_admin = strcmp(r->auth.user_id, "admin") == 0;
    r->auth.roles = KOVA_ROLE_MEMBER | KOVA_ROLE_READER | (r->auth.is_admin ? KOVA_ROLE_ADMIN : 0);
    return 0;
}

static int keystone(struct kova_req *r)
{
    const char *tok = req_header(r, "X-Auth-Token");
    if (!tok || !tok[0])
        return -EACCES;
    struct kova_identity id;
    int e = kova_keystone_validate(r->api->cfg.keystone, tok, &id);
    if (e == -EACCES)
        return -EACCES;
    if (e < 0)
        return -EHOSTUNREACH;
    /* both are 256-byte fields; ids that could not be path segments are refused */
    if (!clean_id(id.user_id, strlen(id.user_id)) ||
        (id.project_id[0] && !clean_id(id.project_id, strlen(id.project_id))))
        return -EACCES;
    snprintf(r->auth.user_id, sizeof(r->auth.user_id), "%s", id.user_id);
    snprintf(r->auth.project_id, sizeof(r->auth.project_id), "%s", id.project_id);
    r->auth.roles = id.roles;
    r->auth.is_admin = (id.roles & KOVA_ROLE_ADMIN) != 0;
    return 0;
}

int kova_authenticate(struct kova_req *r)
{
    /* kova_api_start() checked that keystone is set when that is the strategy */
    return r->api->cfg.keystone ? keystone(r) : noauth2(r);
}
