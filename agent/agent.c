/* SPDX-License-Identifier: Apache-2.0 */
#include "kova/agent.h"

const char *kova_agent_name(void)
{
    return "agent";
}
