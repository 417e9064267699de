/* SPDX-License-Identifier: Apache-2.0 */
#include "kova/api.h"

const char *kova_api_name(void)
{
    return "api";
}
