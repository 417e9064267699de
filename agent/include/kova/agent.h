/* SPDX-License-Identifier: Apache-2.0 */
/* kova agent library: placeholder until its issue fills it. Errors: 0 or -errno. */
#ifndef KOVA_AGENT_H
#define KOVA_AGENT_H

/* Returns the library's name; proves the library links. */
const char *kova_agent_name(void);

#endif
