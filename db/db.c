/* SPDX-License-Identifier: Apache-2.0 */
#include "kova/db.h"

const char *kova_db_name(void)
{
    return "db";
}
