/* SPDX-License-Identifier: Apache-2.0 */
/* kova db library: placeholder until its issue fills it. Errors: 0 or -errno. */
#ifndef KOVA_DB_H
#define KOVA_DB_H

/* Returns the library's name; proves the library links. */
const char *kova_db_name(void);

#endif
