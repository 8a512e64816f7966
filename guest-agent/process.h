/* pr: processes of containers: creation of their stdio plumbing, start,
 * signals, waiting, terminal size, and the PID 1 reaper that records every
 * exit (and reaps orphans). All functions take a->mu themselves unless
 * noted. */
#ifndef VESSEL_GUEST_AGENT_PROCESS_H
#define VESSEL_GUEST_AGENT_PROCESS_H

#include "common/vs_err.h"
#include "guest-agent/agent.h"
#include "guest-agent/spawn.h"
#include "vessel/v1/types.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Allocates a process with its pipes (or pty) and takes ownership of *x
 * (moved; x is zeroed). Not linked into any container. */
ag_process *pr_new(const char *id, int is_init, sp_exec *x, vs_err *err);
void pr_free(ag_process *p);

/* Starts a created process: releases a container's waiting init, or spawns
 * an exec'd process in its namespaces. Errors found at exec time (missing
 * binary) are returned; the process then counts as exited. */
int pr_start(agent *a, ag_container *c, ag_process *p, pid_t *pid, vs_err *err);

int pr_signal(agent *a, ag_container *c, ag_process *p, int sig, int all, vs_err *err);

/* 1 if p has exited or exits within ms. */
int pr_exited_within(agent *a, ag_process *p, int ms);
/* Blocks until p exited; cancelled() is polled every 100 ms (returns
 * nonzero to stop waiting -> CANCELLED). Caller must hold a reference. */
int pr_wait(agent *a, ag_process *p, int (*cancelled)(void *), void *arg, vs_err *err);

/* Fills st with how p exited (ts is the storage for its time). */
void pr_exit_status(agent *a, ag_process *p, Vessel__V1__ExitStatus *st,
                    Google__Protobuf__Timestamp *ts);

int pr_resize(agent *a, ag_process *p, unsigned rows, unsigned cols, vs_err *err);
int pr_close_stdin(agent *a, ag_process *p);

/* Records an exit reported by waitpid (a->mu held). */
void pr_record_exit(agent *a, pid_t pid, int status);

/* Starts the reaper thread (SIGCHLD must be blocked in every thread) which
 * also watches memory.events for OOM kills. */
int pr_start_reaper(agent *a, vs_err *err);

#ifdef __cplusplus
}
#endif
#endif
