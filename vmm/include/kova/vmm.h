/* SPDX-License-Identifier: Apache-2.0 */
/* kova vmm library: placeholder until its issue fills it. Errors: 0 or -errno. */
#ifndef KOVA_VMM_H
#define KOVA_VMM_H

/* Returns the library's name; proves the library links. */
const char *kova_vmm_name(void);

#endif
