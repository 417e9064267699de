/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kova states: a server's vm_state, task_state and power_state as named values (Nova's
 * nova/compute/{vm_states,task_states,power_state}.py), and the one table of which action is
 * allowed in which state. The API answers 202 or 409 by it and the manager runs the action's
 * task by it; nothing else decides.
 *
 * Contract:
 *  - The names are what the database stores and what the API shows (OS-EXT-STS:*): the *_name()
 *    functions never return NULL for a value of the enum, the *_parse() functions return -EINVAL
 *    for any other string (NULL included, except task_parse(NULL) = KOVA_TASK_NONE).
 *  - An action is allowed when the server has no task (task_state NULL) and its vm_state is in
 *    the row's vm_states; an action whose row has KOVA_ANY_STATE is allowed in every state (the
 *    API refuses it by other rules or answers 501). An allowed action puts the server into its
 *    task_state until the task ends.
 *  - Pure data and lookups: no allocation, no global mutable state.
 */
#ifndef KOVA_STATES_H
#define KOVA_STATES_H

#include <stdbool.h>
#include <stdint.h>

enum kova_vm_state {
    KOVA_VM_ACTIVE,
    KOVA_VM_BUILDING,
    KOVA_VM_PAUSED,
    KOVA_VM_SUSPENDED,
    KOVA_VM_STOPPED,
    KOVA_VM_RESCUED,
    KOVA_VM_RESIZED,
    KOVA_VM_SOFT_DELETED,
    KOVA_VM_DELETED,
    KOVA_VM_ERROR,
    KOVA_VM_SHELVED,
    KOVA_VM_SHELVED_OFFLOADED,
    KOVA_VM__COUNT
};

enum kova_task_state {
    KOVA_TASK_NONE, /* NULL in the database */
    KOVA_TASK_SCHEDULING,
    KOVA_TASK_SPAWNING,
    KOVA_TASK_POWERING_OFF,
    KOVA_TASK_POWERING_ON,
    KOVA_TASK_REBOOTING,
    KOVA_TASK_REBOOTING_HARD,
    KOVA_TASK_PAUSING,
    KOVA_TASK_UNPAUSING,
    KOVA_TASK_REBUILDING,
    KOVA_TASK_DELETING,
    KOVA_TASK__COUNT
};

/* Nova's power_state numbers (OS-EXT-STS:power_state). */
enum kova_power_state {
    KOVA_POWER_NOSTATE = 0,
    KOVA_POWER_RUNNING = 1,
    KOVA_POWER_PAUSED = 3,
    KOVA_POWER_SHUTDOWN = 4,
    KOVA_POWER_CRASHED = 6,
    KOVA_POWER_SUSPENDED = 7,
};

/* The tasks the manager runs (the API's actions that kova implements). */
enum kova_op {
    KOVA_OP_BUILD,
    KOVA_OP_STOP,
    KOVA_OP_START,
    KOVA_OP_REBOOT_SOFT,
    KOVA_OP_REBOOT_HARD,
    KOVA_OP_PAUSE,
    KOVA_OP_UNPAUSE,
    KOVA_OP_REBUILD,
    KOVA_OP_DELETE,
    KOVA_OP__COUNT,
    KOVA_OP_NONE = -1 /* an action kova knows the rules of but does not implement (501) */
};

#define KOVA_VM_BIT(s) (1u << (s))
#define KOVA_ANY_STATE 0u /* vm_states of an action allowed in every state */

struct kova_action {
    const char *name;          /* the API's action key ("os-stop"), or "reboot-soft" ... */
    uint32_t vm_states;        /* KOVA_VM_BIT()s it is allowed in; KOVA_ANY_STATE: any */
    enum kova_op op;           /* the task, or KOVA_OP_NONE (not implemented) */
    enum kova_task_state task; /* the task_state while it runs */
    const char *record;        /* instance action name ("stop") */
    const char *event;         /* its event ("compute_stop_instance") */
};

const char *kova_vm_state_name(enum kova_vm_state s);
int kova_vm_state_parse(const char *s, enum kova_vm_state *out);
/* NULL for KOVA_TASK_NONE. */
const char *kova_task_state_name(enum kova_task_state t);
int kova_task_state_parse(const char *s, enum kova_task_state *out);

/* The row for an API action name (server action keys, plus "reboot-soft", "reboot-hard",
 * "delete" and "create"); NULL when kova knows no such action. */
const struct kova_action *kova_action_find(const char *name);
/* The row whose task is op (op in [0, KOVA_OP__COUNT)); never NULL for a valid op. */
const struct kova_action *kova_action_of_op(enum kova_op op);
/* Whether the action may start in this state (see the contract). */
bool kova_action_allowed(const struct kova_action *a, enum kova_vm_state vm,
                         enum kova_task_state task);
/* The state as the database stores it (task NULL: none), read the one way both the API and the
 * manager read it: an unknown vm_state counts as error, an unknown task_state as a task in
 * progress. */
void kova_state_read(const char *vm_name, const char *task_name, enum kova_vm_state *vm,
                     enum kova_task_state *task);

#endif
