/* SPDX-License-Identifier: Apache-2.0 */
/* kova layout library: placeholder until its issue fills it. Errors: 0 or -errno. */
#ifndef KOVA_LAYOUT_H
#define KOVA_LAYOUT_H

/* Returns the library's name; proves the library links. */
const char *kova_layout_name(void);

#endif
