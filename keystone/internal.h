/* SPDX-License-Identifier: Apache-2.0 */
/* Internals of kova keystone, shared by its files and its unit tests (tests/keystone). */
#ifndef KOVA_KEYSTONE_INTERNAL_H
#define KOVA_KEYSTONE_INTERNAL_H

#include "kova/keystone.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* ---- token.c: Keystone's answers ---- */
/* Fills *id from a token body {"token": {...}} (GET or POST /v3/auth/tokens). Roles named
 * admin/member/reader (any case) set their bit and the bits they imply; other roles are
 * ignored. -EINVAL when the body is not such a token, a field is too long or expires_at is
 * missing or unparsable. */
int ks_parse_token(const char *body, size_t len, struct kova_identity *id);
/* Whether a token as a caller sent it may go into a request header: 1..max_len printable
 * ASCII characters, no spaces. */
bool ks_token_ok(const char *token, size_t max_len);

/* ---- cache.c: validated tokens, keyed by SHA-256 ---- */
/* A set-associative table of n entries (rounded up to a multiple of 4), 4 per set: a key's set
 * is fixed by its first bytes; a new entry takes a free or expired slot of its set, else the
 * one that expires first. Entries are found only while now < their deadline. Thread-safe. */
struct ks_cache;
int ks_cache_new(unsigned n, struct ks_cache **out);
void ks_cache_free(struct ks_cache *c);
/* 1 and *id filled when key is cached and not past its deadline at now; 0 otherwise. */
int ks_cache_get(struct ks_cache *c, const uint8_t key[32], time_t now, struct kova_identity *id);
void ks_cache_put(struct ks_cache *c, const uint8_t key[32], time_t deadline,
                  const struct kova_identity *id);
/* The SHA-256 of a token, the cache's key. */
void ks_token_key(const char *token, uint8_t key[32]);

#endif
