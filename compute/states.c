/* SPDX-License-Identifier: Apache-2.0 */
/* The state names and the one action table (kova/states.h). */
#include "kova/states.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

static const char *const vm_names[KOVA_VM__COUNT] = {
    [KOVA_VM_ACTIVE] = "active",   [KOVA_VM_BUILDING] = "building",
    [KOVA_VM_PAUSED] = "paused",   [KOVA_VM_SUSPENDED] = "suspended",
    [KOVA_VM_STOPPED] = "stopped", [KOVA_VM_RESCUED] = "rescued",
    [KOVA_VM_RESIZED] = "resized", [KOVA_VM_SOFT_DELETED] = "soft-delete",
    [KOVA_VM_DELETED] = "deleted", [KOVA_VM_ERROR] = "error",
    [KOVA_VM_SHELVED] = "shelved", [KOVA_VM_SHELVED_OFFLOADED] = "shelved_offloaded",
};

static const char *const task_names[KOVA_TASK__COUNT] = {
    [KOVA_TASK_NONE] = NULL,
    [KOVA_TASK_SCHEDULING] = "scheduling",
    [KOVA_TASK_SPAWNING] = "spawning",
    [KOVA_TASK_POWERING_OFF] = "powering-off",
    [KOVA_TASK_POWERING_ON] = "powering-on",
    [KOVA_TASK_REBOOTING] = "rebooting",
    [KOVA_TASK_REBOOTING_HARD] = "rebooting_hard",
    [KOVA_TASK_PAUSING] = "pausing",
    [KOVA_TASK_UNPAUSING] = "unpausing",
    [KOVA_TASK_REBUILDING] = "rebuilding",
    [KOVA_TASK_DELETING] = "deleting",
};

const char *kova_vm_state_name(enum kova_vm_state s)
{
    return (unsigned)s < KOVA_VM__COUNT ? vm_names[s] : "error";
}

int kova_vm_state_parse(const char *s, enum kova_vm_state *out)
{
    for (unsigned i = 0; s && i < KOVA_VM__COUNT; i++)
        if (!strcmp(vm_names[i], s)) {
            *out = (enum kova_vm_state)i;
            return 0;
        }
    return -EINVAL;
}

const char *kova_task_state_name(enum kova_task_state t)
{
    return (unsigned)t < KOVA_TASK__COUNT ? task_names[t] : NULL;
}

int kova_task_state_parse(const char *s, enum kova_task_state *out)
{
    if (!s) {
        *out = KOVA_TASK_NONE;
        return 0;
    }
    for (unsigned i = 1; i < KOVA_TASK__COUNT; i++)
        if (!strcmp(task_names[i], s)) {
            *out = (enum kova_task_state)i;
            return 0;
        }
    return -EINVAL;
}

#define B(s) KOVA_VM_BIT(KOVA_VM_##s)
#define NOOP KOVA_OP_NONE, KOVA_TASK_NONE, NULL, NULL

/* Nova's @check_instance_state rules for the actions the API knows (nova/compute/api.py). */
static const struct kova_action actions[] = {
    {"create", KOVA_ANY_STATE, KOVA_OP_BUILD, KOVA_TASK_SCHEDULING, "create",
     "compute__do_build_and_run_instance"},
    {"delete", KOVA_ANY_STATE, KOVA_OP_DELETE, KOVA_TASK_DELETING, "delete",
     "compute_terminate_instance"},
    {"os-start", B(STOPPED), KOVA_OP_START, KOVA_TASK_POWERING_ON, "start",
     "compute_start_instance"},
    {"os-stop", B(ACTIVE) | B(ERROR), KOVA_OP_STOP, KOVA_TASK_POWERING_OFF, "stop",
     "compute_stop_instance"},
    {"reboot-soft", B(ACTIVE), KOVA_OP_REBOOT_SOFT, KOVA_TASK_REBOOTING, "reboot",
     "compute_reboot_instance"},
    {"reboot-hard", B(ACTIVE) | B(STOPPED) | B(PAUSED) | B(SUSPENDED) | B(ERROR),
     KOVA_OP_REBOOT_HARD, KOVA_TASK_REBOOTING_HARD, "reboot", "compute_reboot_instance"},
    {"pause", B(ACTIVE), KOVA_OP_PAUSE, KOVA_TASK_PAUSING, "pause", "compute_pause_instance"},
    {"unpause", B(PAUSED), KOVA_OP_UNPAUSE, KOVA_TASK_UNPAUSING, "unpause",
     "compute_unpause_instance"},
    {"rebuild", B(ACTIVE) | B(STOPPED) | B(ERROR), KOVA_OP_REBUILD, KOVA_TASK_REBUILDING, "rebuild",
     "compute_rebuild_instance"},
    /* known, not implemented: the state check first (409), then 501 */
    {"suspend", B(ACTIVE), NOOP},
    {"resume", B(SUSPENDED), NOOP},
    {"lock", KOVA_ANY_STATE, NOOP},
    {"unlock", KOVA_ANY_STATE, NOOP},
    {"resize", B(ACTIVE) | B(STOPPED), NOOP},
    {"confirmResize", B(RESIZED), NOOP},
    {"revertResize", B(RESIZED), NOOP},
    {"createImage", B(ACTIVE) | B(STOPPED) | B(PAUSED) | B(SUSPENDED), NOOP},
    {"createBackup", B(ACTIVE) | B(STOPPED) | B(PAUSED) | B(SUSPENDED), NOOP},
    {"shelve", B(ACTIVE) | B(STOPPED) | B(PAUSED) | B(SUSPENDED), NOOP},
    {"shelveOffload", B(SHELVED), NOOP},
    {"unshelve", B(SHELVED) | B(SHELVED_OFFLOADED), NOOP},
    {"rescue", B(ACTIVE) | B(STOPPED) | B(ERROR), NOOP},
    {"unrescue", B(RESCUED), NOOP},
    {"changePassword", B(ACTIVE), NOOP},
    {"migrate", B(ACTIVE) | B(STOPPED), NOOP},
    {"os-migrateLive", B(ACTIVE) | B(PAUSED), NOOP},
    {"evacuate", KOVA_ANY_STATE, NOOP},
    {"forceDelete", B(SOFT_DELETED), NOOP},
    {"restore", B(SOFT_DELETED), NOOP},
    {"trigger_crash_dump", B(ACTIVE), NOOP},
    {"os-resetState", KOVA_ANY_STATE, NOOP},
    {"injectNetworkInfo", KOVA_ANY_STATE, NOOP},
    {"resetNetwork", KOVA_ANY_STATE, NOOP},
    {"addSecurityGroup", KOVA_ANY_STATE, NOOP},
    {"removeSecurityGroup", KOVA_ANY_STATE, NOOP},
    {"addFixedIp", KOVA_ANY_STATE, NOOP},
    {"removeFixedIp", KOVA_ANY_STATE, NOOP},
    {"addFloatingIp", KOVA_ANY_STATE, NOOP},
    {"removeFloatingIp", KOVA_ANY_STATE, NOOP},
    {"os-getVNCConsole", B(ACTIVE), NOOP},
    {"os-getSPICEConsole", B(ACTIVE), NOOP},
    {"os-getSerialConsole", B(ACTIVE), NOOP},
    {"os-getRDPConsole", B(ACTIVE), NOOP},
};

const struct kova_action *kova_action_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof(actions) / sizeof(actions[0]); i++)
        if (!strcmp(actions[i].name, name))
            return &actions[i];
    return NULL;
}

const struct kova_action *kova_action_of_op(enum kova_op op)
{
    for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
        if (actions[i].op == op && op != KOVA_OP_NONE)
            return &actions[i];
    return NULL;
}

bool kova_action_allowed(const struct kova_action *a, enum kova_vm_state vm,
                         enum kova_task_state task)
{
    if (a->vm_states == KOVA_ANY_STATE)
        return true;
    return task == KOVA_TASK_NONE && (unsigned)vm < KOVA_VM__COUNT &&
           (a->vm_states & KOVA_VM_BIT(vm));
}

void kova_state_read(const char *vm_name, const char *task_name, enum kova_vm_state *vm,
                     enum kova_task_state *task)
{
    if (kova_vm_state_parse(vm_name, vm) < 0)
        *vm = KOVA_VM_ERROR;
    if (kova_task_state_parse(task_name, task) < 0)
        *task = KOVA_TASK_SCHEDULING;
}
