/* SPDX-License-Identifier: Apache-2.0 */
/* The cache of validated tokens: bounded, set-associative, keyed by the token's SHA-256. */
#include "internal.h"

#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define WAYS 4

struct slot {
    uint8_t key[32];
    time_t deadline; /* 0: free */
    struct kova_identity id;
};

struct ks_cache {
    pthread_mutex_t lock;
    unsigned nsets;
    struct slot *slots; /* nsets * WAYS */
};

int ks_cache_new(unsigned n, struct ks_cache **out)
{
    struct ks_cache *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->nsets = n < WAYS ? 1 : (n + WAYS - 1) / WAYS;
    c->slots = calloc((size_t)c->nsets * WAYS, sizeof(*c->slots));
    if (!c->slots) {
        free(c);
        return -ENOMEM;
    }
    pthread_mutex_init(&c->lock, NULL);
    *out = c;
    return 0;
}

void ks_cache_free(struct ks_cache *c)
{
    if (!c)
        return;
    pthread_mutex_destroy(&c->lock);
    free(c->slots);
    free(c);
}

static struct slot *set_of(struct ks_cache *c, const uint8_t key[32])
{
    uint32_t h =
        (uint32_t)key[0] | (uint32_t)key[1] << 8 | (uint32_t)key[2] << 16 | (uint32_t)key[3] << 24;
    return &c->slots[(size_t)(h % c->nsets) * WAYS];
}

int ks_cache_get(struct ks_cache *c, const uint8_t key[32], time_t now, struct kova_identity *id)
{
    int found = 0;
    pthread_mutex_lock(&c->lock);
    struct slot *set = set_of(c, key);
    for (int i = 0; i < WAYS; i++) {
        if (set[i].deadline && memcmp(set[i].key, key, 32) == 0) {
            if (now < set[i].deadline) {
                *id = set[i].id;
                found = 1;
            } else {
                set[i].deadline = 0; /* expired: free the slot */
            }
            break;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return found;
}

void ks_cache_put(struct ks_cache *c, const uint8_t key[32], time_t deadline,
                  const struct kova_identity *id)
{
    pthread_mutex_lock(&c->lock);
    struct slot *set = set_of(c, key), *victim = NULL;
    for (int i = 0; i < WAYS && !victim; i++)
        if (set[i].deadline && memcmp(set[i].key, key, 32) == 0)
            victim = &set[i]; /* the same token again: refresh it */
    for (int i = 0; i < WAYS && !victim; i++)
        if (!set[i].deadline)
            victim = &set[i];
    if (!victim) {
        victim = &set[0]; /* all taken: the one that expires first goes */
        for (int i = 1; i < WAYS; i++)
            if (set[i].deadline < victim->deadline)
                victim = &set[i];
    }
    memcpy(victim->key, key, 32);
    victim->deadline = deadline;
    victim->id = *id;
    pthread_mutex_unlock(&c->lock);
}

void ks_token_key(const char *token, uint8_t key[32])
{
    unsigned int n = 32;
    EVP_Digest(token, strlen(token), key, &n, EVP_sha256(), NULL);
}
