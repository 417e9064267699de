/* SPDX-License-Identifier: Apache-2.0 */
#include "kova/layout.h"

const char *kova_layout_name(void)
{
    return "layout";
}
