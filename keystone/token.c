/* SPDX-License-Identifier: Apache-2.0 */
/* Keystone's token bodies and times, parsed strictly: an answer that is not what Keystone v3
 * sends is not a valid token. */
#include "internal.h"
#include "kova/common.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Copies o[key] (a string without NULs, shorter than n) into dst; "" when absent and !need. */
static int copy_str(json_t *o, const char *key, char *dst, size_t n, bool need)
{
    json_t *v = json_object_get(o, key);
    dst[0] = 0;
    if (!v)
        return need ? -EINVAL : 0;
    if (!json_is_string(v) || json_string_length(v) >= n ||
        strlen(json_string_value(v)) != json_string_length(v))
        return -EINVAL;
    memcpy(dst, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

int ks_parse_token(const char *body, size_t len, struct kova_identity *id)
{
    int r = -EINVAL;
    memset(id, 0, sizeof(*id));
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    json_t *tok = json_object_get(root, "token");
    json_t *user = json_object_get(tok, "user");
    json_t *proj = json_object_get(tok, "project");
    json_t *roles = json_object_get(tok, "roles");
    json_t *exp = json_object_get(tok, "expires_at");
    if (!json_is_object(tok) || !json_is_object(user) || !json_is_string(exp))
        goto out;
    if (copy_str(user, "id", id->user_id, sizeof(id->user_id), true) < 0 || !id->user_id[0] ||
        copy_str(user, "name", id->user_name, sizeof(id->user_name), false) < 0)
        goto out;
    if (proj) {
        if (!json_is_object(proj) ||
            copy_str(proj, "id", id->project_id, sizeof(id->project_id), true) < 0 ||
            !id->project_id[0] ||
            copy_str(proj, "name", id->project_name, sizeof(id->project_name), false) < 0)
            goto out;
    }
    if (kova_parse_time(json_string_value(exp), &id->expires_at) < 0)
        goto out;
    if (roles && !json_is_array(roles))
        goto out;
    size_t i;
    json_t *role;
    json_array_foreach(roles, i, role)
    {
        const char *name = json_string_value(json_object_get(role, "name"));
        if (!name)
            goto out;
        if (!strcasecmp(name, "admin"))
            id->roles |= KOVA_ROLE_ADMIN | KOVA_ROLE_MEMBER | KOVA_ROLE_READER;
        else if (!strcasecmp(name, "member"))
            id->roles |= KOVA_ROLE_MEMBER | KOVA_ROLE_READER;
        else if (!strcasecmp(name, "reader"))
            id->roles |= KOVA_ROLE_READER;
    }
    if (!id->project_id[0])
        id->roles = 0; /* an unscoped token carries no project roles */
    r = 0;
out:
    json_decref(root);
    return r;
}

bool ks_token_ok(const char *token, size_t max_len)
{
    size_t n = 0;
    if (!token)
        return false;
    for (; token[n]; n++) {
        unsigned char c = (unsigned char)token[n];
        if (c <= 0x20 || c >= 0x7f || n >= max_len)
            return false;
    }
    return n > 0;
}
