/* SPDX-License-Identifier: Apache-2.0 */
/* /os-keypairs: create (generate or import), list, show, delete. Keypairs belong to users. */
#include "internal.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define MAX_PUBKEY 16384

static const char *const key_types[] = {"ssh-rsa",
                                        "ssh-ed25519",
                                        "ssh-dss",
                                        "ecdsa-sha2-nistp256",
                                        "ecdsa-sha2-nistp384",
                                        "ecdsa-sha2-nistp521",
                                        "sk-ssh-ed25519@openssh.com",
                                        "sk-ecdsa-sha2-nistp256@openssh.com",
                                        NULL};

/* Validates an OpenSSH public key line and computes Nova's fingerprint (MD5 of the key blob,
 * colon-separated hex). Returns 0 or -EINVAL. */
static int pubkey_fingerprint(const char *key, char fp[48])
{
    size_t n = strlen(key);
    if (n == 0 || n > MAX_PUBKEY)
        return -EINVAL;
    const char *p = key;
    while (*p == ' ' || *p == '\t')
        p++;
    const char *te = p;
    while (*te && *te != ' ' && *te != '\t')
        te++;
    size_t tl = (size_t)(te - p);
    bool known = false;
    for (int i = 0; key_types[i]; i++)
        if (strlen(key_types[i]) == tl && strncmp(key_types[i], p, tl) == 0)
            known = true;
    if (!known)
        return -EINVAL;
    const char *b = te;
    while (*b == ' ' || *b == '\t')
        b++;
    const char *be = b;
    while (*be && *be != ' ' && *be != '\t' && *be != '\n' && *be != '\r')
        be++;
    size_t bl = (size_t)(be - b);
    if (bl < 8 || bl % 4 != 0)
        return -EINVAL;
    unsigned char *blob = malloc(bl);
    if (!blob)
        return -ENOMEM;
    int dl = EVP_DecodeBlock(blob, (const unsigned char *)b, (int)bl);
    int r = -EINVAL;
    if (dl < 4)
        goto out;
    /* EVP_DecodeBlock counts the '=' padding as zero bytes */
    if (b[bl - 1] == '=')
        dl--;
    if (b[bl - 2] == '=')
        dl--;
    unsigned len =
        (unsigned)blob[0] << 24 | (unsigned)blob[1] << 16 | (unsigned)blob[2] << 8 | blob[3];
    if (len != tl || (size_t)dl < 4 + len || memcmp(blob + 4, p, tl) != 0)
        goto out;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (!EVP_Digest(blob, (size_t)dl, md, &mdlen, EVP_md5(), NULL) || mdlen != 16)
        goto out;
    for (unsigned i = 0; i < 16; i++)
        snprintf(fp + i * 3, 4, i == 15 ? "%02x" : "%02x:", md[i]);
    r = 0;
out:
    free(blob);
    return r;
}

/* A growing byte string in OpenSSH's wire encoding (RFC 4251 §5: uint32, string). */
struct wire {
    unsigned char *p;
    size_t len, cap;
    bool oom;
};

static void w_put(struct wire *w, const void *d, size_t n)
{
    if (w->len + n > w->cap) {
        size_t nc = (w->cap ? w->cap * 2 : 256) + n;
        unsigned char *np = realloc(w->p, nc);
        if (!np) {
            w->oom = true;
            return;
        }
        w->p = np;
        w->cap = nc;
    }
    memcpy(w->p + w->len, d, n);
    w->len += n;
}

static void w_u32(struct wire *w, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    w_put(w, b, 4);
}

static void w_str(struct wire *w, const void *d, size_t n)
{
    w_u32(w, (uint32_t)n);
    w_put(w, d, n);
}

static char *base64(const unsigned char *d, size_t n)
{
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    if (out)
        EVP_EncodeBlock((unsigned char *)out, d, (int)n);
    return out;
}

/* Generates an ed25519 key pair with libcrypto: the public key as an OpenSSH line, the private
 * key in OpenSSH's own format ("openssh-key-v1", unencrypted), as ssh-keygen writes it. */
static int generate_key(char **pub, char **priv)
{
    static const char comment[] = "Generated-by-Nova", type[] = "ssh-ed25519";
    unsigned char pk[32], sk[32];
    size_t pkl = sizeof(pk), skl = sizeof(sk);
    EVP_PKEY *key = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
    struct wire blob = {0}, sec = {0}, file = {0};
    char *b64 = NULL, *pem = NULL;
    int r = -EIO;
    *pub = *priv = NULL;
    if (!ctx || EVP_PKEY_keygen_init(ctx) <= 0 || EVP_PKEY_keygen(ctx, &key) <= 0 ||
        EVP_PKEY_get_raw_public_key(key, pk, &pkl) <= 0 ||
        EVP_PKEY_get_raw_private_key(key, sk, &skl) <= 0 || pkl != 32 || skl != 32)
        goto out;
    w_str(&blob, type, strlen(type));
    w_str(&blob, pk, 32);
    /* the private section: two equal check words, the key, the comment, padding 1 2 3 .. */
    uint32_t check;
    if (getrandom(&check, sizeof(check), 0) != sizeof(check))
        goto out;
    w_u32(&sec, check);
    w_u32(&sec, check);
    w_str(&sec, type, strlen(type));
    w_str(&sec, pk, 32);
    unsigned char both[64];
    memcpy(both, sk, 32);
    memcpy(both + 32, pk, 32);
    w_str(&sec, both, 64);
    OPENSSL_cleanse(both, sizeof(both));
    w_str(&sec, comment, strlen(comment));
    for (unsigned char pad = 1; sec.len % 8; pad++)
        w_put(&sec, &pad, 1);
    static const char magic[] = "openssh-key-v1"; /* with its NUL */
    w_put(&file, magic, sizeof(magic));
    w_str(&file, "none", 4); /* cipher */
    w_str(&file, "none", 4); /* kdf */
    w_str(&file, "", 0);     /* kdf options */
    w_u32(&file, 1);         /* number of keys */
    w_str(&file, blob.p, blob.len);
    w_str(&file, sec.p, sec.len);
    if (blob.oom || sec.oom || file.oom) {
        r = -ENOMEM;
        goto out;
    }
    char *pb = base64(blob.p, blob.len);
    b64 = base64(file.p, file.len);
    size_t bl = b64 ? strlen(b64) : 0;
    pem = malloc(bl + bl / 70 + 128);
    if (!pb || !b64 || !pem || asprintf(pub, "%s %s %s", type, pb, comment) < 0) {
        free(pb);
        *pub = NULL;
        r = -ENOMEM;
        goto out;
    }
    free(pb);
    size_t o = (size_t)sprintf(pem, "-----BEGIN OPENSSH PRIVATE KEY-----\n");
    for (size_t i = 0; i < bl; i += 70) {
        size_t n = bl - i < 70 ? bl - i : 70;
        memcpy(pem + o, b64 + i, n);
        o += n;
        pem[o++] = '\n';
    }
    strcpy(pem + o, "-----END OPENSSH PRIVATE KEY-----\n");
    *priv = pem;
    pem = NULL;
    r = 0;
out:
    if (r < 0)
        kova_log(0, "cannot generate a key pair: %s", strerror(-r));
    OPENSSL_cleanse(sk, sizeof(sk));
    if (sec.p)
        OPENSSL_cleanse(sec.p, sec.len);
    if (file.p)
        OPENSSL_cleanse(file.p, file.len);
    if (b64)
        OPENSSL_cleanse(b64, strlen(b64));
    free(blob.p);
    free(sec.p);
    free(file.p);
    free(b64);
    free(pem);
    EVP_PKEY_free(key);
    EVP_PKEY_CTX_free(ctx);
    return r;
}

static bool valid_keypair_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 255)
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == ' '))
            return false;
    }
    return true;
}

static void keypair_create(struct kova_req *r)
{
    static const char *const allowed[] = {"name", "public_key", NULL};
    static const char *const allowed_body[] = {"keypair", NULL};
    char *pub = NULL, *priv = NULL;
    json_t *body = req_json(r);
    if (!body)
        return;
    json_t *k = req_json_root(r, body, "keypair");
    if (!k || !check_keys(r, body, allowed_body, "body") || !check_keys(r, k, allowed, "'keypair'"))
        goto out;
    json_t *v = json_object_get(k, "name");
    if (!json_is_string(v) || !valid_keypair_name(json_string_value(v))) {
        reply_fault(r, 400,
                    "Invalid input for field/attribute name: 1-255 characters of "
                    "[a-zA-Z0-9 _-] are required.");
        goto out;
    }
    const char *name = json_string_value(v);
    v = json_object_get(k, "public_key");
    char fp[48];
    if (v) {
        if (!json_is_string(v) || json_string_length(v) > MAX_PUBKEY ||
            strlen(json_string_value(v)) != json_string_length(v)) {
            reply_fault(r, 400,
                        "Invalid input for field/attribute public_key: a string is "
                        "required.");
            goto out;
        }
        pub = strdup(json_string_value(v));
        if (!pub || pubkey_fingerprint(pub, fp) < 0) {
            reply_fault(r, 400, "Keypair data is invalid: failed to generate fingerprint");
            goto out;
        }
    } else {
        int e = generate_key(&pub, &priv);
        if (e < 0) {
            reply_fault(r, 500, "Key generation failed");
            goto out;
        }
        if (pubkey_fingerprint(pub, fp) < 0) {
            reply_fault(r, 500, "Key generation produced an unreadable key");
            goto out;
        }
    }
    struct kova_db_keypair kp = {.public_key = pub};
    snprintf(kp.user_id, sizeof(kp.user_id), "%s", r->auth.user_id);
    snprintf(kp.name, sizeof(kp.name), "%s", name);
    snprintf(kp.type, sizeof(kp.type), "ssh");
    snprintf(kp.fingerprint, sizeof(kp.fingerprint), "%s", fp);
    int e = kova_db_keypair_create(r->db, &kp, r->api->cfg.quota_key_pairs);
    if (e == -EEXIST) {
        reply_fault(r, 409, "Key pair '%.255s' already exists.", name);
        goto out;
    }
    if (e == -EDQUOT) {
        reply_fault(r, 403, "Quota exceeded, too many key pairs.");
        goto out;
    }
    if (e < 0) {
        reply_db_error(r, e);
        goto out;
    }
    json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "name", name, "public_key", pub, "fingerprint",
                          fp, "user_id", r->auth.user_id);
    if (priv)
        json_object_set_new(o, "private_key", json_string(priv));
    reply_json(r, 200, json_pack("{s:o}", "keypair", o));
out:
    free(pub);
    if (priv) {
        explicit_bzero(priv, strlen(priv));
        free(priv);
    }
    json_decref(body);
}

static void keypair_list(struct kova_req *r)
{
    struct kova_db_keypair *v;
    size_t n;
    int e = kova_db_keypair_list(r->db, r->auth.user_id, &v, &n);
    if (e < 0) {
        reply_db_error(r, -EIO);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:{s:s, s:s, s:s}}", "keypair", "name", v[i].name,
                                             "public_key", v[i].public_key, "fingerprint",
                                             v[i].fingerprint));
    kova_db_keypair_list_free(v, n);
    /* limit/marker paging of keypairs is microversion 2.35; 2.1 lists them all */
    reply_json(r, 200, json_pack("{s:o}", "keypairs", arr));
}

static void keypair_show(struct kova_req *r)
{
    struct kova_db_keypair k;
    int e = kova_db_keypair_get(r->db, r->auth.user_id, r->arg[0], &k);
    if (e == -ENOENT) {
        reply_fault(r, 404, "Keypair %.255s not found for user %s", r->arg[0], r->auth.user_id);
        return;
    }
    if (e < 0) {
        reply_db_error(r, -EIO);
        return;
    }
    json_t *o =
        json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:b, s:n, s:n}", "id", (json_int_t)k.id, "name",
                  k.name, "public_key", k.public_key, "fingerprint", k.fingerprint, "created_at",
                  k.created_at, "user_id", k.user_id, "deleted", 0, "deleted_at", "updated_at");
    kova_db_keypair_free(&k);
    reply_json(r, 200, json_pack("{s:o}", "keypair", o));
}

static void keypair_delete(struct kova_req *r)
{
    int e = kova_db_keypair_delete(r->db, r->auth.user_id, r->arg[0]);
    if (e == -ENOENT)
        reply_fault(r, 404, "Keypair %.255s not found for user %s", r->arg[0], r->auth.user_id);
    else if (e < 0)
        reply_db_error(r, -EIO);
    else
        reply_empty(r, 202);
}

const struct kova_route kova_keypair_routes[] = {
    {SVC_COMPUTE, "GET", "/os-keypairs", keypair_list, 0, RULE_ANY},
    {SVC_COMPUTE, "POST", "/os-keypairs", keypair_create, 0, RULE_ANY},
    {SVC_COMPUTE, "GET", "/os-keypairs/*", keypair_show, 0, RULE_ANY},
    {SVC_COMPUTE, "DELETE", "/os-keypairs/*", keypair_delete, 0, RULE_ANY},
    {0, NULL, NULL, NULL, 0, RULE_UNSET},
};
