/* SPDX-License-Identifier: Apache-2.0 */
/* Nova's default policy as one table: each rule, its name and the role it needs (internal.h). */
#include "internal.h"

static const struct {
    const char *name;
    unsigned role; /* KOVA_ROLE_* needed; 0: any authenticated caller */
} rules[] = {
    [RULE_UNSET] = {"(none)", ~0u},
    [RULE_PUBLIC] = {"public", 0},
    [RULE_ANY] = {"@", 0},
    [RULE_READER] = {"project_reader_or_admin", KOVA_ROLE_READER},
    [RULE_MEMBER] = {"project_member_or_admin", KOVA_ROLE_MEMBER},
    [RULE_ADMIN] = {"admin_api", KOVA_ROLE_ADMIN},
};

bool kova_policy_allows(enum kova_rule rule, const struct kova_auth *a)
{
    if ((unsigned)rule >= sizeof(rules) / sizeof(rules[0]) || rule == RULE_UNSET)
        return false;
    if (rules[rule].role == 0)
        return true;
    /* an admin passes every rule, in any project (Nova's "or admin") */
    return (a->roles & KOVA_ROLE_ADMIN) || (a->roles & rules[rule].role);
}

const char *kova_policy_name(enum kova_rule rule)
{
    if ((unsigned)rule >= sizeof(rules) / sizeof(rules[0]))
        return rules[RULE_UNSET].name;
    return rules[rule].name;
}
