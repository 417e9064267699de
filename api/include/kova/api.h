/* SPDX-License-Identifier: Apache-2.0 */
/* kova api library: placeholder until its issue fills it. Errors: 0 or -errno. */
#ifndef KOVA_API_H
#define KOVA_API_H

/* Returns the library's name; proves the library links. */
const char *kova_api_name(void);

#endif
