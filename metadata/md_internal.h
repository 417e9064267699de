/* SPDX-License-Identifier: Apache-2.0 */
/* kova metadata's internals shared by its files and its unit tests. */
#ifndef KOVA_MD_INTERNAL_H
#define KOVA_MD_INTERNAL_H

#include <stddef.h>

/* Strict base64 (RFC 4648's alphabet, '=' padding required, ASCII whitespace skipped): *out
 * malloc'd (*outlen bytes). -EINVAL for anything else, -ENOMEM. */
int kova_md_b64_decode(const char *s, unsigned char **out, size_t *outlen);

#endif
