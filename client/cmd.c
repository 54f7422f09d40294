/*
 * cmd.c -- the command table and the grammar every command shares.
 *
 * A command is one row: its name, an optional alias, its usage, how many
 * positional words it takes, which options it accepts and the function
 * that carries it out.  A command may have a table of subcommands, rows
 * of the same kind: the word right after its name picks one ("pool
 * resize"), and without such a word the command itself runs.  Unique
 * prefixes of names are accepted.  Options are rows too; they may appear
 * anywhere among a command's words, and "--" ends them; after a task's
 * arguments, the words after "--" are the command an exec job runs.
 */
#include <err.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "concctl.h"

static const struct cmd_entry cmd_pool_table[] = {
    {
        .name = "pool resize",
        .usage = "[--threads N] [--processes M]",
        .summary = "Change the number of warm threads and processes "
                   "(admins: root, admin-group, a user instance's user).",
        .minargs = 0,
        .maxargs = 0,
        .options = CMD_OPT_THREADS | CMD_OPT_PROCESSES,
        .one_of = CMD_OPT_THREADS | CMD_OPT_PROCESSES,
        .exec = cmd_pool_resize,
    },
    {
        .name = "pool add",
        .usage = "--slurm N [--partition P] [--time T]",
        .summary = "Ask Slurm for N tasks and start a warm worker in each "
                   "(executor remote; admins).",
        .minargs = 1,
        .maxargs = 1,
        .options = CMD_OPT_SLURM | CMD_OPT_PARTITION | CMD_OPT_TIME,
        .one_of = CMD_OPT_SLURM,
        .exec = cmd_pool_add,
    },
    {
        .name = "pool remove",
        .usage = "--slurm",
        .summary = "Let the remote workers finish their jobs and exit, "
                   "then end their allocations (admins).",
        .minargs = 0,
        .maxargs = 0,
        .options = CMD_OPT_SLURM,
        .one_of = CMD_OPT_SLURM,
        .exec = cmd_pool_remove,
    },
};
#define CMD_POOL_COUNT (sizeof(cmd_pool_table) / sizeof(cmd_pool_table[0]))
_Static_assert(CMD_POOL_COUNT == 3, "cmd_pool_table rows");

static const struct cmd_entry cmd_group_table[] = {
    {
        .name = "group add",
        .usage = "NAME [--parallel N]",
        .summary = "Add a group whose running jobs take at most N CPU "
                   "slots (0, the default: no limit).",
        .minargs = 1,
        .maxargs = 1,
        .words = CMD_WORDS_GROUP,
        .options = CMD_OPT_PARALLEL,
        .exec = cmd_group_add,
    },
    {
        .name = "group list",
        .alias = "ls",
        .usage = "[NAME]",
        .summary = "List the groups: limit, slots in use, jobs queued and "
                   "running, paused or not.",
        .minargs = 0,
        .maxargs = 1,
        .words = CMD_WORDS_GROUP,
        .exec = cmd_group_list,
    },
    {
        .name = "group pause",
        .usage = "NAME",
        .summary = "Start no more jobs of the group; running ones go on.",
        .minargs = 1,
        .maxargs = 1,
        .words = CMD_WORDS_GROUP,
        .exec = cmd_group_pause,
    },
    {
        .name = "group remove",
        .alias = "rm",
        .usage = "NAME",
        .summary = "Remove a group that has no queued or running job.",
        .minargs = 1,
        .maxargs = 1,
        .words = CMD_WORDS_GROUP,
        .exec = cmd_group_remove,
    },
    {
        .name = "group resume",
        .usage = "NAME",
        .summary = "Let a paused group start jobs again.",
        .minargs = 1,
        .maxargs = 1,
        .words = CMD_WORDS_GROUP,
        .exec = cmd_group_resume,
    },
    {
        .name = "group set",
        .usage = "NAME --parallel N",
        .summary = "Change a group's limit in CPU slots (0: none).",
        .minargs = 1,
        .maxargs = 1,
        .words = CMD_WORDS_GROUP,
        .options = CMD_OPT_PARALLEL,
        .one_of = CMD_OPT_PARALLEL,
        .exec = cmd_group_set,
    },
};
#define CMD_GROUP_COUNT (sizeof(cmd_group_table) / sizeof(cmd_group_table[0]))
_Static_assert(CMD_GROUP_COUNT == 6, "cmd_group_table rows");

static const struct cmd_entry cmd_table[] = {
    {
        .name = "cancel",
        .alias = "kill",
        .usage = "ID ...",
        .summary = "Cancel jobs.",
        .minargs = 1,
        .maxargs = -1,
        .words = CMD_WORDS_JOBS,
        .exec = cmd_job_cancel,
    },
    {
        .name = "clean",
        .usage = "[--state STATE] [--before WHEN] [-u USER]",
        .summary = "Forget finished jobs and their logs, in memory and in "
                   "the job store: your own, or an admin's choice (every "
                   "user's unless -u names one); only those in STATE, or "
                   "that finished before WHEN (as for ps --until).",
        .minargs = 0,
        .maxargs = 0,
        .options = CMD_OPT_STATE | CMD_OPT_BEFORE | CMD_OPT_USER,
        .exec = cmd_job_clean,
    },
    {
        .name = "gather",
        .usage = "[--as-completed] [--fail-fast] [--wait-for-slot] [FILE]",
        .summary = "Submit the jobs listed in FILE (or the standard input) "
                   "in one request, one per line as TASK [key=value ...] "
                   "[-x EXECUTOR] [--daemon] [--fresh] [--timeout SECONDS] "
                   "[--retries N] [--retry-delay SECONDS] [--mem SIZE] "
                   "[--pids N] [-g GROUP] "
                   "[--priority N] [--cpus N] [--label LABEL] [--at WHEN "
                   "| --in DURATION] [--hold] "
                   "[--after ID|@N[,...] | --after-any ID|@N[,...]] "
                   "[-- COMMAND [ARG ...]] (@N: the job of line N, from "
                   "0), and print each one's outcome as INDEX JOB "
                   "STATE RESULT-or-ERROR, in input order.",
        .minargs = 0,
        .maxargs = 1,
        .options = CMD_OPT_AS_COMPLETED | CMD_OPT_FAIL_FAST | CMD_OPT_WAIT_SLOT,
        .prepare = cmd_gather_prepare,
        .exec = cmd_gather,
    },
    {
        .name = "group",
        .usage = "",
        .summary = "List the groups jobs wait in for their CPU slots; "
                   "add, set, pause, resume or remove one (its creator "
                   "or an admin).",
        .minargs = 0,
        .maxargs = 0,
        .exec = cmd_group_list,
        .subs = cmd_group_table,
        .nsubs = CMD_GROUP_COUNT,
    },
    {
        .name = "help",
        .usage = "[COMMAND [SUBCOMMAND]]",
        .summary = "Show the usage of every command, or of one.",
        .minargs = 0,
        .maxargs = 2,
        .offline = true,
        .exec = cmd_help,
    },
    {
        .name = "log",
        .usage = "ID [-f] [--tail N] [--stdout | --stderr]",
        .summary = "Print a job's kept output, its stdout on the standard "
                   "output and its stderr on the standard error, or with "
                   "-f follow it until the job ends.",
        .minargs = 1,
        .maxargs = 1,
        .options =
            CMD_OPT_FOLLOW | CMD_OPT_TAIL | CMD_OPT_STDOUT | CMD_OPT_STDERR,
        .words = CMD_WORDS_JOBS,
        .exec = cmd_job_log,
    },
    {
        .name = "pause",
        .alias = "hold",
        .usage = "ID ...",
        .summary = "Hold queued jobs back: they do not start until resumed.",
        .minargs = 1,
        .maxargs = -1,
        .words = CMD_WORDS_JOBS,
        .exec = cmd_group_hold,
    },
    {
        .name = "ping",
        .usage = "",
        .summary = "Check that the daemon answers and time the answer.",
        .minargs = 0,
        .maxargs = 0,
        .exec = cmd_info_ping,
    },
    {
        .name = "pool",
        .usage = "",
        .summary = "List the workers of each executor, their jobs and the "
                   "queues.",
        .minargs = 0,
        .maxargs = 0,
        .exec = cmd_pool_show,
        .subs = cmd_pool_table,
        .nsubs = CMD_POOL_COUNT,
    },
    {
        .name = "ps",
        .alias = "ls",
        .usage = "[-a] [--state STATE] [--task TASK] [-u USER] "
                 "[-g GROUP] [--label LABEL] "
                 "[--since WHEN] [--until WHEN] [-n COUNT] [-o COLUMNS]",
        .summary = "List your unfinished jobs, or with -a all jobs, or "
                   "those in one state; narrowed to one task, one owner "
                   "(admins), or the jobs submitted since or until WHEN: "
                   "a duration back from now (30s, 15m, 1h, 2d), a local "
                   "date and time (2026-12-06, 2026-12-06T14:00) or "
                   "@SECONDS since the epoch.  -o picks the columns: ID, "
                   "TASK, STATE, EXEC, WORKER, PROGRESS, AGE, COMMAND "
                   "(these by default), GROUP, LABEL, PRIORITY, AHEAD, "
                   "USER, UID, SUBMITTED, STARTED, FINISHED, RUNTIME, "
                   "ERROR, RESULT; +COLUMNS adds to the default ones.",
        .minargs = 0,
        .maxargs = 0,
        .options = CMD_OPT_ALL | CMD_OPT_LIMIT | CMD_OPT_STATE | CMD_OPT_TASK |
                   CMD_OPT_USER | CMD_OPT_SINCE | CMD_OPT_UNTIL |
                   CMD_OPT_GROUP | CMD_OPT_LABEL | CMD_OPT_OUTPUT,
        .prepare = cmd_info_ps_check,
        .exec = cmd_info_ps,
    },
    {
        .name = "restart",
        .usage = "ID",
        .summary = "Submit a finished job's request again, as a new job "
                   "linked to it (restart_of), and print the new id.",
        .minargs = 1,
        .maxargs = 1,
        .words = CMD_WORDS_JOBS,
        .exec = cmd_job_restart,
    },
    {
        .name = "result",
        .usage = "ID",
        .summary = "Print the result of a finished job.",
        .minargs = 1,
        .maxargs = 1,
        .words = CMD_WORDS_JOBS,
        .exec = cmd_job_result,
    },
    {
        .name = "resume",
        .alias = "release",
        .usage = "ID ...",
        .summary = "Let held jobs go on.",
        .minargs = 1,
        .maxargs = -1,
        .words = CMD_WORDS_JOBS,
        .exec = cmd_group_release,
    },
    {
        .name = "run",
        .usage = "TASK [key=value ...] [-x EXECUTOR] [--daemon] "
                 "[--fresh] [--timeout SECONDS] [--retries N] "
                 "[--retry-delay SECONDS] [--mem SIZE] [--pids N] "
                 "[--wait-for-slot] "
                 "[-g GROUP] [--priority N] [--cpus N] [--label LABEL] "
                 "[--at WHEN | --in DURATION] [--hold] "
                 "[--after ID[,ID...] | --after-any ID[,ID...]] "
                 "[--env NAME[=VALUE]] [--env-all] [--cwd DIR] "
                 "[--no-stdin] [-- COMMAND [ARG ...]]",
        .summary = "Submit a job, show its progress or output and print "
                   "its result.  The words after -- are the command of an "
                   "exec job, which reads this standard input and whose "
                   "exit status is run's.",
        .minargs = 1,
        .maxargs = -1,
        .options = CMD_OPT_JOB | CMD_OPT_WAIT_SLOT | CMD_OPT_NO_STDIN,
        .words = CMD_WORDS_TASK,
        .exec = cmd_job_run,
    },
    {
        .name = "shutdown",
        .usage = "[--cancel-pending]",
        .summary = "Stop the daemon (admins: root, admin-group, a user "
                   "instance's user).",
        .minargs = 0,
        .maxargs = 0,
        .options = CMD_OPT_CANCEL_PENDING,
        .exec = cmd_info_shutdown,
    },
    {
        .name = "status",
        .usage = "ID",
        .summary = "Show one job's record.",
        .minargs = 1,
        .maxargs = 1,
        .words = CMD_WORDS_JOBS,
        .exec = cmd_info_status,
    },
    {
        .name = "submit",
        .usage = "TASK [key=value ...] [-x EXECUTOR] [--daemon] "
                 "[--fresh] [--timeout SECONDS] [--retries N] "
                 "[--retry-delay SECONDS] [--mem SIZE] [--pids N] "
                 "[--wait-for-slot] "
                 "[-g GROUP] [--priority N] [--cpus N] [--label LABEL] "
                 "[--at WHEN | --in DURATION] [--hold] "
                 "[--after ID[,ID...] | --after-any ID[,ID...]] "
                 "[--env NAME[=VALUE]] [--env-all] [--cwd DIR] "
                 "[-- COMMAND [ARG ...]]",
        .summary = "Submit a job and print its id.",
        .minargs = 1,
        .maxargs = -1,
        .options = CMD_OPT_JOB | CMD_OPT_WAIT_SLOT,
        .words = CMD_WORDS_TASK,
        .exec = cmd_job_submit,
    },
    {
        .name = "tasks",
        .usage = "",
        .summary = "List the tasks the daemon can run.",
        .minargs = 0,
        .maxargs = 0,
        .exec = cmd_info_tasks,
    },
    {
        .name = "wait",
        .usage = "ID ... [--any] [--timeout SECONDS] | --group GROUP "
                 "[--timeout SECONDS]",
        .summary = "Wait until jobs finish; exit with the worst "
                   "outcome, or with --any with the first job's.  With "
                   "--group, until the group has no queued or running "
                   "job.",
        .minargs = 0,
        .maxargs = -1,
        .options = CMD_OPT_TIMEOUT | CMD_OPT_ANY | CMD_OPT_GROUP,
        .words = CMD_WORDS_JOBS,
        .prepare = cmd_group_wait_check,
        .exec = cmd_job_wait,
    },
    {
        .name = "watch",
        .usage = "ID",
        .summary = "Follow a job's progress and print its result.",
        .minargs = 1,
        .maxargs = 1,
        .words = CMD_WORDS_JOBS,
        .exec = cmd_job_watch,
    },
};
#define CMD_COUNT (sizeof(cmd_table) / sizeof(cmd_table[0]))
_Static_assert(CMD_COUNT == 20, "cmd_table rows");

/* Every command takes these as well. */
#define CMD_OPT_COMMON (CMD_OPT_HELP | CMD_OPT_JSON | CMD_OPT_QUIET)

static const struct cmd_option_entry cmd_options[] = {
    {
        .flag = CMD_OPT_HELP,
        .short_name = 'h',
        .long_name = "help",
        .help = "show this usage",
    },
    {
        .flag = CMD_OPT_JSON,
        .long_name = "json",
        .help = "print every reply as a JSON line",
    },
    {
        .flag = CMD_OPT_QUIET,
        .short_name = 'q',
        .long_name = "quiet",
        .help = "no progress or informational lines",
    },
    {
        .flag = CMD_OPT_ALL,
        .short_name = 'a',
        .long_name = "all",
        .help = "every job the daemon remembers",
    },
    {
        .flag = CMD_OPT_EXEC,
        .short_name = 'x',
        .long_name = "exec",
        .arg = "EXECUTOR",
        .help = "auto, loop, thread, process, slurm or remote",
    },
    {
        .flag = CMD_OPT_DAEMON,
        .long_name = "daemon",
        .help = "kill the job at shutdown instead of draining it",
    },
    {
        .flag = CMD_OPT_FRESH,
        .long_name = "fresh",
        .help = "run on a worker made for this job alone",
    },
    {
        .flag = CMD_OPT_TIMEOUT,
        .long_name = "timeout",
        .arg = "SECONDS",
        .help = "time limit in seconds (fractions allowed)",
    },
    {
        .flag = CMD_OPT_LIMIT,
        .short_name = 'n',
        .long_name = "limit",
        .arg = "COUNT",
        .help = "at most COUNT jobs, the newest",
    },
    {
        .flag = CMD_OPT_CANCEL_PENDING,
        .long_name = "cancel-pending",
        .help = "cancel queued jobs instead of running them",
    },
    {
        .flag = CMD_OPT_THREADS,
        .long_name = "threads",
        .arg = "N",
        .help = "warm worker threads, at least 1",
    },
    {
        .flag = CMD_OPT_PROCESSES,
        .long_name = "processes",
        .arg = "M",
        .help = "warm worker processes, 0 for none",
    },
    {
        .flag = CMD_OPT_RETRIES,
        .long_name = "retries",
        .arg = "N",
        .help = "run a failed or timed-out job again, up to N times",
    },
    {
        .flag = CMD_OPT_RETRY_DELAY,
        .long_name = "retry-delay",
        .arg = "SECONDS",
        .help = "pause between attempts (fractions allowed)",
    },
    {
        .flag = CMD_OPT_MEM,
        .long_name = "mem",
        .arg = "SIZE",
        .help = "memory limit of an exec job's command, e.g. 512M or 2G; "
                "over it the job fails with error oom",
    },
    {
        .flag = CMD_OPT_PIDS,
        .long_name = "pids",
        .arg = "N",
        .help = "at most N processes and threads in an exec job",
    },
    {
        .flag = CMD_OPT_WAIT_SLOT,
        .long_name = "wait-for-slot",
        .help = "when the queue is full, retry until there is room",
    },
    {
        .flag = CMD_OPT_AS_COMPLETED,
        .long_name = "as-completed",
        .help = "print outcomes as their jobs end, not in input order",
    },
    {
        .flag = CMD_OPT_FAIL_FAST,
        .long_name = "fail-fast",
        .help = "cancel the other jobs when one fails or times out",
    },
    {
        .flag = CMD_OPT_ANY,
        .long_name = "any",
        .help = "return as soon as the first of the jobs ends",
    },
    {
        .flag = CMD_OPT_STATE,
        .long_name = "state",
        .arg = "STATE",
        .help = "only jobs in STATE (queued, running, succeeded, ...)",
    },
    {
        .flag = CMD_OPT_TASK,
        .long_name = "task",
        .arg = "TASK",
        .help = "only jobs of TASK",
    },
    {
        .flag = CMD_OPT_USER,
        .short_name = 'u',
        .long_name = "user",
        .arg = "USER",
        .help = "only jobs of USER, a name or a uid (admins: anyone's)",
    },
    {
        .flag = CMD_OPT_SINCE,
        .long_name = "since",
        .arg = "WHEN",
        .help = "only jobs submitted at WHEN or later",
    },
    {
        .flag = CMD_OPT_UNTIL,
        .long_name = "until",
        .arg = "WHEN",
        .help = "only jobs submitted before WHEN",
    },
    {
        .flag = CMD_OPT_FOLLOW,
        .short_name = 'f',
        .long_name = "follow",
        .help = "go on printing output until the job ends",
    },
    {
        .flag = CMD_OPT_TAIL,
        .long_name = "tail",
        .arg = "N",
        .help = "only the last N lines",
    },
    {
        .flag = CMD_OPT_STDOUT,
        .long_name = "stdout",
        .help = "only the job's standard output",
    },
    {
        .flag = CMD_OPT_STDERR,
        .long_name = "stderr",
        .help = "only the job's standard error",
    },
    {
        .flag = CMD_OPT_GROUP,
        .short_name = 'g',
        .long_name = "group",
        .arg = "GROUP",
        .help = "the job's group (default: default); ps: only its jobs",
    },
    {
        .flag = CMD_OPT_PRIORITY,
        .long_name = "priority",
        .arg = "N",
        .help = "higher runs first within the group (default 0)",
    },
    {
        .flag = CMD_OPT_CPUS,
        .long_name = "cpus",
        .arg = "N",
        .help = "CPU slots of the group the job takes (exec: 1, others: 0)",
    },
    {
        .flag = CMD_OPT_LABEL,
        .long_name = "label",
        .arg = "LABEL",
        .help = "a label for the job; ps: only jobs with LABEL",
    },
    {
        .flag = CMD_OPT_AT,
        .long_name = "at",
        .arg = "WHEN",
        .help = "start no earlier than WHEN (14:30, 2026-12-24T08:00)",
    },
    {
        .flag = CMD_OPT_IN,
        .long_name = "in",
        .arg = "DURATION",
        .help = "start no earlier than DURATION from now (10m, 1h30m)",
    },
    {
        .flag = CMD_OPT_HOLD,
        .long_name = "hold",
        .help = "submit it held: it waits until concctl resume ID",
    },
    {
        .flag = CMD_OPT_PARALLEL,
        .long_name = "parallel",
        .arg = "N",
        .help = "CPU slots the group's running jobs may take, 0: no limit",
    },
    {
        .flag = CMD_OPT_OUTPUT,
        .short_name = 'o',
        .long_name = "output",
        .arg = "COLUMNS",
        .help = "the columns, such as ID,STATE,COMMAND or +GROUP",
    },
    {
        .flag = CMD_OPT_AFTER,
        .long_name = "after",
        .arg = "ID[,ID...]",
        .help = "start once these jobs have succeeded; fail if one does "
                "not (in gather, @N names line N)",
    },
    {
        .flag = CMD_OPT_AFTER_ANY,
        .long_name = "after-any",
        .arg = "ID[,ID...]",
        .help = "start once these jobs have ended, however they ended",
    },
    {
        .flag = CMD_OPT_BEFORE,
        .long_name = "before",
        .arg = "WHEN",
        .help = "only jobs that finished before WHEN",
    },
    {
        .flag = CMD_OPT_ENV,
        .short_name = 'e',
        .long_name = "env",
        .arg = "NAME[=VALUE]",
        .help = "give the job NAME, with VALUE or its value here "
                "(repeatable)",
    },
    {
        .flag = CMD_OPT_ENV_ALL,
        .long_name = "env-all",
        .help = "give the job this whole environment",
    },
    {
        .flag = CMD_OPT_CWD,
        .long_name = "cwd",
        .arg = "DIR",
        .help = "run in DIR, not in the current directory",
    },
    {
        .flag = CMD_OPT_NO_STDIN,
        .long_name = "no-stdin",
        .help = "give the command /dev/null, not this standard input",
    },
    {
        .flag = CMD_OPT_SLURM,
        .long_name = "slurm",
        .help = "remote workers, on Slurm's nodes",
    },
    {
        .flag = CMD_OPT_PARTITION,
        .long_name = "partition",
        .arg = "P",
        .help = "Slurm's partition for the allocation",
    },
    {
        .flag = CMD_OPT_TIME,
        .long_name = "time",
        .arg = "T",
        .help = "the allocation's time limit, as Slurm's --time",
    },
};
#define CMD_OPTION_COUNT (sizeof(cmd_options) / sizeof(cmd_options[0]))
_Static_assert(CMD_OPTION_COUNT == 48, "cmd_options rows");

/* The tables, for completion (cmd_complete.c). */
const struct cmd_entry *
cmd_commands(size_t *n)
{
	*n = CMD_COUNT;
	return cmd_table;
}

const struct cmd_option_entry *
cmd_option_rows(size_t *n)
{
	*n = CMD_OPTION_COUNT;
	return cmd_options;
}

/* The options a command takes, those every command takes included. */
uint64_t
cmd_options_of(const struct cmd_entry *ce)
{
	return ce->options | (ce->bare ? 0 : CMD_OPT_COMMON);
}

/* Longest --timeout accepted, in seconds: a year. */
#define CMD_MAX_TIMEOUT (365.0 * 24 * 3600)
/* Longest --retry-delay, in seconds: concd's limit. */
#define CMD_MAX_RETRY_DELAY (PROTO_MAX_RETRY_DELAY / 1000.0)

/* The first --wait-for-slot backoff and the longest, in microseconds. */
#define CMD_SLOT_FIRST 10000
#define CMD_SLOT_MAX   1000000

/*
 * Arguments that are always strings, even when they look like numbers;
 * of those with file set, a value @FILE stands for the file's contents.
 */
static const struct cmd_string_key {
	const char *key;
	bool file;
} cmd_string_keys[] = {
    {"cwd", false},
    {"stdin", true},
};

/* The word a row is matched by: the last of its name. */
static const char *
cmd_word(const struct cmd_entry *ce)
{
	const char *sp = strrchr(ce->name, ' ');

	return sp != NULL ? sp + 1 : ce->name;
}

/*
 * The row of table (the commands, or the subcommands of parent) named
 * word, an alias or a unique prefix; else NULL after a message.
 */
static const struct cmd_entry *
cmd_lookup(const struct cmd_entry *table, size_t n,
           const struct cmd_entry *parent, const char *word)
{
	const struct cmd_entry *found = NULL;
	const char *what = parent != NULL ? "subcommand" : "command";
	char head[64] = "";
	size_t i, len = strlen(word), matches = 0;

	for (i = 0; i < n; i++) {
		if (strcmp(cmd_word(&table[i]), word) == 0 ||
		    (table[i].alias != NULL &&
		     strcmp(table[i].alias, word) == 0))
			return &table[i];
	}
	for (i = 0; len > 0 && i < n; i++) {
		if (strncmp(cmd_word(&table[i]), word, len) == 0) {
			found = &table[i];
			matches++;
		}
	}
	if (matches == 1)
		return found;
	if (parent != NULL)
		snprintf(head, sizeof(head), "%s: ", parent->name);
	if (matches == 0)
		fprintf(stderr, "%s: %sunknown %s: %s, valid %ss: ",
		        program_invocation_short_name, head, what, word, what);
	else
		fprintf(stderr, "%s: %sambiguous %s: %s, could be: ",
		        program_invocation_short_name, head, what, word);
	/* every name when none matched, else the candidates */
	for (i = 0, matches = 0; i < n; i++) {
		if (found == NULL ||
		    strncmp(cmd_word(&table[i]), word, len) == 0)
			fprintf(stderr, "%s%s", matches++ == 0 ? "" : ", ",
			        cmd_word(&table[i]));
	}
	fputc('\n', stderr);
	return NULL;
}

/*
 * The command named by argv[0] and, where it has subcommands, argv[1];
 * *used is how many words named it.  NULL after a message.
 */
const struct cmd_entry *
cmd_find(int argc, char **argv, int *used)
{
	const struct cmd_entry *ce;

	ce = cmd_lookup(cmd_table, CMD_COUNT, NULL, argv[0]);
	*used = 1;
	while (ce != NULL && ce->nsubs > 0 && *used < argc &&
	       argv[*used][0] != '-') {
		ce = cmd_lookup(ce->subs, ce->nsubs, ce, argv[*used]);
		(*used)++;
	}
	return ce;
}

/* The end of the group of words at w: a word, or a whole "[...]". */
static const char *
cmd_wrap_group(const char *w)
{
	const char *end = w + strcspn(w, " ");

	if (*w == '[') {
		while (end[-1] != ']' && *end == ' ')
			end += 1 + strcspn(end + 1, " ");
	}
	return end;
}

/* Print head then words, wrapped before 80 columns, indented by indent. */
static void
cmd_wrap(FILE *f, const char *head, const char *words, int indent)
{
	const char *w = words, *end;
	int col;

	col = fprintf(f, "%s", head);
	while (*w != '\0') {
		end = cmd_wrap_group(w);
		if (col + 1 + (end - w) > 79 && col > indent)
			col = fprintf(f, "\n%*s", indent - 1, "") - 1;
		col += fprintf(f, " %.*s", (int)(end - w), w);
		w = *end == ' ' ? end + 1 : end;
	}
	fputc('\n', f);
}

/* Text on lines of fewer than 80 columns. */
static void
cmd_wrap_text(FILE *f, const char *text)
{
	const char *w = text, *end;
	int col = 0;

	while (*w != '\0') {
		end = w + strcspn(w, " ");
		if (col > 0 && col + 1 + (end - w) > 79) {
			fputc('\n', f);
			col = 0;
			if (end == w) { /* the second space after a sentence */
				w++;
				continue;
			}
		}
		col +=
		    fprintf(f, "%s%.*s", col > 0 ? " " : "", (int)(end - w), w);
		w = *end == ' ' ? end + 1 : end;
	}
	fputc('\n', f);
}

/* One usage line: lead ("usage:" or blanks), the name, then the words. */
static void
cmd_usage_line(FILE *f, const char *lead, const struct cmd_entry *ce)
{
	char head[64];

	snprintf(head, sizeof(head), "%s%s%s %s", lead,
	         *lead != '\0' ? " " : "", program_invocation_short_name,
	         ce->name);
	cmd_wrap(f, head, ce->usage, (int)strlen(head) + 1);
}

/* The options in the mask, one line each. */
static void
cmd_usage_options(FILE *f, uint64_t options)
{
	size_t i;

	for (i = 0; i < CMD_OPTION_COUNT; i++) {
		const struct cmd_option_entry *o = &cmd_options[i];
		char left[64];

		if ((options & o->flag) == 0)
			continue;
		snprintf(left, sizeof(left), "%c%c%s--%s%s%s",
		         o->short_name ? '-' : ' ',
		         o->short_name ? o->short_name : ' ',
		         o->short_name ? ", " : "  ", o->long_name,
		         o->arg != NULL ? " " : "",
		         o->arg != NULL ? o->arg : "");
		fprintf(f, "  %-24s %s\n", left, o->help);
	}
}

/*
 * The usage lines of one command and of its subcommands; in full, with
 * the summaries and options of each.
 */
void
cmd_usage(FILE *f, const struct cmd_entry *ce, bool full)
{
	char head[64];
	size_t i;

	cmd_usage_line(f, "usage:", ce);
	for (i = 0; i < ce->nsubs; i++)
		cmd_usage_line(f, "      ", &ce->subs[i]);
	if (!full)
		return;
	cmd_wrap_text(f, ce->summary);
	if (ce->alias != NULL)
		fprintf(f, "Alias: %s.\n", ce->alias);
	fprintf(f, "Options:\n");
	cmd_usage_options(f, ce->options | CMD_OPT_HELP);
	fprintf(f, "  %-24s %s\n", "    --json, -q",
	        "as before the command (see concctl -h)");
	for (i = 0; i < ce->nsubs; i++) {
		const struct cmd_entry *sub = &ce->subs[i];

		snprintf(head, sizeof(head), "%s:", sub->name);
		cmd_wrap(f, head, sub->summary, 2);
		if (sub->options != 0) {
			fprintf(f, "Options of %s:\n", sub->name);
			cmd_usage_options(f, sub->options);
		}
	}
}

/* The global usage; in full, with every command. */
void
cmd_usage_all(FILE *f, bool full)
{
	char head[64];
	size_t i, j;

	fprintf(f, "usage: %s [-hqV] [--json] [-s PATH] COMMAND [ARGS]\n",
	        program_invocation_short_name);
	if (!full) {
		fprintf(f, "Run \"%s help\" for the commands.\n",
		        program_invocation_short_name);
		return;
	}
	fprintf(f,
	        "Options:\n"
	        "  -s, --socket PATH      the daemon's socket\n"
	        "      --json             print every reply as a JSON line\n"
	        "  -q, --quiet            no progress or informational lines\n"
	        "  -h, --help             show this usage\n"
	        "  -V, --version          show the version\n"
	        "Commands (unique prefixes are accepted):\n");
	for (i = 0; i < CMD_COUNT; i++) {
		const struct cmd_entry *ce = &cmd_table[i];

		for (j = 0; j <= ce->nsubs; j++) {
			const struct cmd_entry *row =
			    j == 0 ? ce : &ce->subs[j - 1];

			snprintf(head, sizeof(head), "  %s", row->name);
			cmd_wrap(f, head, row->usage, (int)strlen(head) + 1);
		}
	}
	fprintf(f, "Run \"%s help COMMAND\" for one command's options.\n",
	        program_invocation_short_name);
}

static const struct cmd_option_entry *
cmd_option_find(char short_name, const char *long_name, size_t len)
{
	size_t i;

	for (i = 0; i < CMD_OPTION_COUNT; i++) {
		const struct cmd_option_entry *o = &cmd_options[i];

		if (long_name == NULL && o->short_name != 0 &&
		    o->short_name == short_name)
			return o;
		if (long_name != NULL && strlen(o->long_name) == len &&
		    strncmp(o->long_name, long_name, len) == 0)
			return o;
	}
	return NULL;
}

/*
 * Seconds, fractions allowed, up to max, into milliseconds; zero only if
 * allowed.
 */
static int
cmd_parse_seconds(const char *cmd, const char *what, const char *word,
                  bool zero, double max, uint64_t *ms)
{
	char *end;
	double s;

	errno = 0;
	s = strtod(word, &end);
	if (*word == '\0' || *end != '\0' || errno != 0 || !isfinite(s) ||
	    s < 0 || (s == 0 && !zero) || s > max) {
		warnx("%s: invalid %s: %s (seconds, %s, at most %.0f)", cmd,
		      what, word, zero ? "0 or more" : "more than 0", max);
		return -1;
	}
	*ms = (uint64_t)ceil(s * 1000);
	return 0;
}

/* A decimal count, min or more. */
static int
cmd_parse_count(const char *cmd, const char *word, uint64_t min, uint64_t *n)
{
	unsigned long long v;
	char *end;

	errno = 0;
	if (*word < '0' || *word > '9' ||
	    ((v = strtoull(word, &end, 10)), errno != 0) || *end != '\0' ||
	    v < min) {
		warnx("%s: invalid count: %s", cmd, word);
		return -1;
	}
	*n = v;
	return 0;
}

/* A decimal count from min to max: the daemon's bounds, checked here. */
static int
cmd_parse_bounded(const char *cmd, const char *opt, const char *word,
                  uint64_t min, uint64_t max, uint64_t *n)
{
	if (cmd_parse_count(cmd, word, 0, n) < 0)
		return -1;
	if (*n < min || *n > max) {
		warnx("%s: --%s must be from %" PRIu64 " to %" PRIu64 ": %s",
		      cmd, opt, min, max, word);
		return -1;
	}
	return 0;
}

/*
 * A name for concd within its field's limit, checked here: cut, it would
 * name another group, and concd would refuse it whole anyway.
 */
static int
cmd_check_name(const char *cmd, const char *what, enum proto_field f,
               const char *word)
{
	if (strlen(word) <= proto_fields[f].max)
		return 0;
	warnx("%s: %s longer than %u bytes: %s", cmd, what,
	      (unsigned)proto_fields[f].max, word);
	return -1;
}

/* The units of a duration back from now ("1h30m"), in seconds. */
static const struct cmd_unit {
	char name;
	uint64_t seconds;
} cmd_units[] = {
    {'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}, {'w', 604800},
};

/* Exactly n decimal digits at *p, moved past them; -1 if not there. */
static int
cmd_digits(const char **p, int n)
{
	int v = 0;

	for (; n > 0; n--, (*p)++) {
		if (**p < '0' || **p > '9')
			return -1;
		v = v * 10 + (**p - '0');
	}
	return v;
}

/* ".123456" at *p into microseconds (at most 6 digits); -1 if bad. */
static int64_t
cmd_fraction(const char **p)
{
	int64_t us = 0, scale = 100000;

	if (**p != '.')
		return 0;
	if ((*p)[1] < '0' || (*p)[1] > '9')
		return -1;
	for ((*p)++; **p >= '0' && **p <= '9'; (*p)++, scale /= 10) {
		if (scale == 0)
			return -1;
		us += (**p - '0') * scale;
	}
	return us;
}

/* "30s", "15m", "1h30m": seconds back from now; -1 if not one. */
static int64_t
cmd_when_ago(const char *p)
{
	int64_t total = 0;
	size_t i;

	if (*p == '\0')
		return -1;
	while (*p != '\0') {
		int64_t n = 0;

		if (*p < '0' || *p > '9')
			return -1;
		for (; *p >= '0' && *p <= '9'; p++)
			if ((n = n * 10 + (*p - '0')) > INT64_C(1) << 40)
				return -1;
		for (i = 0; i < sizeof(cmd_units) / sizeof(cmd_units[0]); i++)
			if (cmd_units[i].name == *p)
				break;
		if (i == sizeof(cmd_units) / sizeof(cmd_units[0]))
			return -1;
		p++;
		if ((total += n * (int64_t)cmd_units[i].seconds) > INT64_C(1)
		                                                       << 40)
			return -1;
	}
	return total;
}

/*
 * "2026-12-06", "2026-12-06T14:00", "2026-12-06 14:00:30.5": local time,
 * or UTC with a final "Z", or another zone with "+02:00" or "-0530".
 * Microseconds since the epoch; -1 if not one.
 */
static int64_t
cmd_when_iso(const char *p)
{
	struct tm tm = {0}, check;
	int64_t us = 0, offset = 0;
	time_t t;
	bool zoned = false;
	int hh, mm;

	if ((tm.tm_year = cmd_digits(&p, 4)) < 0 || *p++ != '-' ||
	    (tm.tm_mon = cmd_digits(&p, 2)) < 1 || tm.tm_mon > 12 ||
	    *p++ != '-' || (tm.tm_mday = cmd_digits(&p, 2)) < 1)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon--;
	if (*p == 'T' || *p == ' ') {
		p++;
		if ((tm.tm_hour = cmd_digits(&p, 2)) < 0 || tm.tm_hour > 23 ||
		    *p++ != ':' || (tm.tm_min = cmd_digits(&p, 2)) < 0 ||
		    tm.tm_min > 59)
			return -1;
		if (*p == ':') {
			p++;
			if ((tm.tm_sec = cmd_digits(&p, 2)) < 0 ||
			    tm.tm_sec > 59 || (us = cmd_fraction(&p)) < 0)
				return -1;
		}
		if (*p == 'Z') {
			p++;
			zoned = true;
		} else if (*p == '+' || *p == '-') {
			int sign = *p++ == '-' ? -1 : 1;

			if ((hh = cmd_digits(&p, 2)) < 0 || hh > 23)
				return -1;
			p += *p == ':';
			if ((mm = cmd_digits(&p, 2)) < 0 || mm > 59)
				return -1;
			offset = sign * (hh * 3600 + mm * 60);
			zoned = true;
		}
	}
	if (*p != '\0')
		return -1;
	/* no 2026-02-30: the day must survive normalisation */
	check = tm;
	if (timegm(&check) == (time_t)-1 || check.tm_mday != tm.tm_mday)
		return -1;
	if (zoned)
		t = timegm(&tm) - (time_t)offset;
	else {
		tm.tm_isdst = -1;
		if ((t = mktime(&tm)) == (time_t)-1)
			return -1;
	}
	if (t < 0)
		return -1;
	return (int64_t)t * 1000000 + us;
}

/* "@1765000000", "@1765000000.25": since the epoch; -1 if not one. */
static int64_t
cmd_when_epoch(const char *p)
{
	int64_t s = 0, us;

	if (*p++ != '@' || *p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++)
		if ((s = s * 10 + (*p - '0')) > INT64_C(1) << 40)
			return -1;
	if ((us = cmd_fraction(&p)) < 0 || *p != '\0')
		return -1;
	return s * 1000000 + us;
}

/*
 * A point in time for --since and --until, in microseconds since the
 * epoch: a duration back from now, a date and time, or @seconds.
 */
static int
cmd_parse_when(const char *cmd, const char *what, const char *word,
               uint64_t *us)
{
	struct timespec now;
	int64_t v, ago;

	if (*word == '@')
		v = cmd_when_epoch(word);
	else if ((ago = cmd_when_ago(word)) >= 0) {
		clock_gettime(CLOCK_REALTIME, &now);
		v = ((int64_t)now.tv_sec - ago) * 1000000 + now.tv_nsec / 1000;
	} else
		v = cmd_when_iso(word);
	if (v < 0) {
		warnx("%s: invalid time for --%s: %s (a duration back from "
		      "now such as 30s, 15m, 1h or 2d; a local date and time "
		      "such as 2026-12-06 or 2026-12-06T14:00; or @SECONDS "
		      "since the epoch)",
		      cmd, what, word);
		return -1;
	}
	*us = (uint64_t)v;
	return 0;
}

/* --priority: any integer, negative ones too. */
static int
cmd_parse_priority(const char *cmd, const char *word, int64_t *n)
{
	long long v;
	char *end;

	errno = 0;
	v = strtoll(word, &end, 10);
	if (*word == '\0' || *end != '\0' || errno != 0 || v < -1000000000 ||
	    v > 1000000000) {
		warnx("%s: invalid priority: %s (an integer, higher runs "
		      "first)",
		      cmd, word);
		return -1;
	}
	*n = v;
	return 0;
}

/*
 * When a job may start: --in a duration from now (10m, 1h30m), or --at a
 * time of day (14:30, 14:30:15: today, or tomorrow once it has passed), a
 * date and time (2026-12-24, 2026-12-24T08:00) or @SECONDS.
 */
static int
cmd_parse_start(const char *cmd, bool in, const char *word, uint64_t *us)
{
	struct timespec now;
	struct tm tm;
	int64_t v = -1, d;
	time_t t;
	const char *p = word;
	int hh, mm, ss = 0;

	clock_gettime(CLOCK_REALTIME, &now);
	if (in) {
		if ((d = cmd_when_ago(word)) >= 0)
			v = ((int64_t)now.tv_sec + d) * 1000000 +
			    now.tv_nsec / 1000;
	} else if (*word == '@')
		v = cmd_when_epoch(word);
	else if ((hh = cmd_digits(&p, 2)) >= 0 && hh < 24 && *p++ == ':' &&
	         (mm = cmd_digits(&p, 2)) >= 0 && mm < 60 &&
	         (*p == '\0' || (*p++ == ':' && (ss = cmd_digits(&p, 2)) >= 0 &&
	                         ss < 60 && *p == '\0'))) {
		t = now.tv_sec;
		localtime_r(&t, &tm);
		tm.tm_hour = hh;
		tm.tm_min = mm;
		tm.tm_sec = ss;
		tm.tm_isdst = -1;
		if ((t = mktime(&tm)) != (time_t)-1 && t <= now.tv_sec) {
			tm.tm_mday++; /* tomorrow */
			tm.tm_hour = hh;
			tm.tm_min = mm;
			tm.tm_sec = ss;
			tm.tm_isdst = -1;
			t = mktime(&tm);
		}
		if (t != (time_t)-1)
			v = (int64_t)t * 1000000;
	} else
		v = cmd_when_iso(word);
	if (v < 0) {
		if (in)
			warnx("%s: invalid duration for --in: %s (such as 30s, "
			      "10m, 1h30m or 2d)",
			      cmd, word);
		else
			warnx("%s: invalid time for --at: %s (a time of day "
			      "such as 14:30, a local date and time such as "
			      "2026-12-24 or 2026-12-24T08:00, or @SECONDS "
			      "since the epoch)",
			      cmd, word);
		return -1;
	}
	*us = (uint64_t)v;
	return 0;
}

/* A user's name or uid, for --user. */
static int
cmd_parse_user(const char *cmd, const char *word, uint64_t *uid)
{
	unsigned long long v;
	struct passwd *pw;
	char *end;

	if (*word >= '0' && *word <= '9') {
		errno = 0;
		v = strtoull(word, &end, 10);
		if (errno != 0 || *end != '\0' || v >= UINT32_MAX) {
			warnx("%s: invalid uid: %s", cmd, word);
			return -1;
		}
		*uid = v;
		return 0;
	}
	if ((pw = getpwnam(word)) == NULL) {
		warnx("%s: unknown user: %s", cmd, word);
		return -1;
	}
	*uid = pw->pw_uid;
	return 0;
}

/*
 * --after ID[,ID...] or --after-any ID[,ID...]: the ids are added to the
 * job's list; in a gather line @N names the job of line N (from 0).  The
 * one job waits for all of them alike, so the two do not mix.
 */
static int
cmd_parse_after(const struct cmd_entry *ce, const struct cmd_option_entry *o,
                const char *value, struct cmd_args *a)
{
	uint64_t other =
	    o->flag == CMD_OPT_AFTER ? CMD_OPT_AFTER_ANY : CMD_OPT_AFTER;
	unsigned long long v;
	const char *p = value;
	char *end;
	bool line;

	if (a->seen & other) {
		warnx("%s: --after and --after-any do not mix: a job runs "
		      "after the success of all it names, or after their end",
		      ce->name);
		return -1;
	}
	for (;;) {
		line = *p == '@';
		if (line && !ce->bare) {
			warnx("%s: --%s %s: @N names a line of a gather, and "
			      "only there",
			      ce->name, o->long_name, value);
			return -1;
		}
		p += line;
		errno = 0;
		if (*p < '0' || *p > '9' ||
		    ((v = strtoull(p, &end, 10)), errno != 0) ||
		    (*end != ',' && *end != '\0') || (!line && v == 0)) {
			warnx("%s: --%s %s: not a list of job ids%s", ce->name,
			      o->long_name, value,
			      ce->bare ? " or @LINE references" : "");
			return -1;
		}
		if (a->nafter == CMD_MAX_AFTER) {
			warnx("%s: a job runs after at most %d others",
			      ce->name, CMD_MAX_AFTER);
			return -1;
		}
		a->after[a->nafter++] = (struct cmd_dep){.v = v, .line = line};
		if (*end == '\0')
			return 0;
		p = end + 1;
	}
}

/* Apply one option with its argument (NULL for flags). */
static int
cmd_apply(const struct cmd_entry *ce, const struct cmd_option_entry *o,
          const char *value, struct cmd_args *a, struct ctl *ctl)
{
	int x;

	a->seen |= o->flag;
	switch (o->flag) {
	case CMD_OPT_JSON:
		ctl->json = true;
		break;
	case CMD_OPT_QUIET:
		ctl->quiet = true;
		break;
	case CMD_OPT_EXEC:
		x = proto_exec_lookup(value, strlen(value));
		if (x < 0) {
			warnx("%s: unknown executor: %s, valid: auto, loop, "
			      "thread, process, slurm, remote",
			      ce->name, value);
			return -1;
		}
		a->exec = (enum proto_exec)x;
		break;
	case CMD_OPT_TIMEOUT:
		return cmd_parse_seconds(ce->name, "timeout", value, false,
		                         CMD_MAX_TIMEOUT, &a->timeout_ms);
	case CMD_OPT_RETRY_DELAY:
		return cmd_parse_seconds(ce->name, "retry delay", value, true,
		                         CMD_MAX_RETRY_DELAY,
		                         &a->retry_delay_ms);
	case CMD_OPT_RETRIES:
		/* the daemon knows its limit and says it */
		return cmd_parse_count(ce->name, value, 0, &a->retries);
	case CMD_OPT_MEM:
		if (proto_size_parse(value, &a->mem) < 0 || a->mem == 0) {
			warnx("%s: invalid size: %s (a number of bytes, or "
			      "with K, M, G or T after it)",
			      ce->name, value);
			return -1;
		}
		break;
	case CMD_OPT_PIDS:
		return cmd_parse_bounded(ce->name, o->long_name, value, 1,
		                         PROTO_MAX_PIDS, &a->pids);
	case CMD_OPT_STATE:
		if ((a->state = proto_state_lookup(value, strlen(value))) < 0) {
			warnx("%s: unknown state: %s, valid: queued, running, "
			      "succeeded, failed, cancelled, timed_out",
			      ce->name, value);
			return -1;
		}
		break;
	case CMD_OPT_TASK:
		a->task = value;
		return cmd_check_name(ce->name, "task name", PF_TASK, value);
	case CMD_OPT_OUTPUT:
		a->output = value;
		break;
	case CMD_OPT_PARTITION:
		a->partition = value;
		return cmd_check_name(ce->name, "partition", PF_PARTITION,
		                      value);
	case CMD_OPT_TIME:
		a->time_limit = value;
		return cmd_check_name(ce->name, "time limit", PF_TIME, value);
	case CMD_OPT_USER:
		return cmd_parse_user(ce->name, value, &a->uid);
	case CMD_OPT_SINCE:
		return cmd_parse_when(ce->name, o->long_name, value, &a->since);
	case CMD_OPT_UNTIL:
		return cmd_parse_when(ce->name, o->long_name, value, &a->until);
	case CMD_OPT_AFTER:
	case CMD_OPT_AFTER_ANY:
		return cmd_parse_after(ce, o, value, a);
	case CMD_OPT_BEFORE:
		return cmd_parse_when(ce->name, o->long_name, value,
		                      &a->before);
	case CMD_OPT_LIMIT:
		/* 0: no rows, only the counts */
		return cmd_parse_count(ce->name, value, 0, &a->limit);
	case CMD_OPT_TAIL:
		return cmd_parse_count(ce->name, value, 0, &a->tail);
	case CMD_OPT_STDOUT:
	case CMD_OPT_STDERR:
		if ((a->seen & CMD_OPT_STDOUT) && (a->seen & CMD_OPT_STDERR)) {
			warnx("%s: --stdout and --stderr exclude each other; "
			      "without either, both streams are printed",
			      ce->name);
			return -1;
		}
		break;
	case CMD_OPT_GROUP:
		a->group = value;
		return cmd_check_name(ce->name, "group name", PF_GROUP, value);
	case CMD_OPT_LABEL:
		a->label = value;
		return cmd_check_name(ce->name, "label", PF_LABEL, value);
	case CMD_OPT_PRIORITY:
		return cmd_parse_priority(ce->name, value, &a->priority);
	case CMD_OPT_CPUS:
		return cmd_parse_count(ce->name, value, 1, &a->cpus);
	case CMD_OPT_PARALLEL:
		return cmd_parse_bounded(ce->name, o->long_name, value, 0,
		                         PROTO_MAX_SLOTS, &a->parallel);
	case CMD_OPT_AT:
	case CMD_OPT_IN:
		if ((a->seen & CMD_OPT_AT) && (a->seen & CMD_OPT_IN)) {
			warnx("%s: --at and --in exclude each other", ce->name);
			return -1;
		}
		return cmd_parse_start(ce->name, o->flag == CMD_OPT_IN, value,
		                       &a->at);
	case CMD_OPT_ENV:
		if (*value == '\0' || *value == '=') {
			warnx("%s: --env needs NAME or NAME=VALUE, not \"%s\"",
			      ce->name, value);
			return -1;
		}
		a->env[a->nenv++] = value;
		break;
	case CMD_OPT_CWD:
		if (*value == '\0') {
			warnx("%s: --cwd needs a directory", ce->name);
			return -1;
		}
		a->cwd = value;
		break;
	case CMD_OPT_THREADS:
		/* the daemon knows its limits and says them */
		return cmd_parse_count(ce->name, value, 0, &a->threads);
	case CMD_OPT_PROCESSES:
		return cmd_parse_count(ce->name, value, 0, &a->processes);
	}
	return 0;
}

static const struct cmd_option_entry *
cmd_option_check(const struct cmd_entry *ce, const struct cmd_option_entry *o,
                 const char *word)
{
	if (o == NULL ||
	    ((ce->options | (ce->bare ? 0 : CMD_OPT_COMMON)) & o->flag) == 0) {
		warnx("%s: unknown option: %s", ce->name, word);
		return NULL;
	}
	return o;
}

/* A job id is a decimal number, nothing else. */
static int
cmd_job_id(const char *cmd, const char *word, uint64_t *job)
{
	unsigned long long v;
	char *end;

	errno = 0;
	if (*word < '0' || *word > '9' ||
	    ((v = strtoull(word, &end, 10)), errno != 0) || *end != '\0') {
		warnx("%s: invalid job id: %s", cmd, word);
		return -1;
	}
	*job = v;
	return 0;
}

/* Read a whole file, at most a string's worth, for stdin=@FILE. */
static int
cmd_read_file(const char *cmd, const char *path, struct cmd_kv *kv)
{
	struct pbuf b = {0};
	FILE *f;
	size_t n;

	if ((f = fopen(path, "r")) == NULL) {
		warnx("%s: %.*s: %s: %s", cmd, (int)kv->keylen, kv->key, path,
		      strerror(errno));
		return -1;
	}
	do {
		pbuf_reserve(&b, 65536);
		n = fread(b.data + b.len, 1, b.cap - b.len, f);
		b.len += n;
	} while (n > 0 && b.len <= PROTO_MAX_STR);
	if (ferror(f) || b.len > PROTO_MAX_STR) {
		if (ferror(f))
			warnx("%s: %.*s: %s: %s", cmd, (int)kv->keylen, kv->key,
			      path, strerror(errno));
		else
			warnx("%s: %.*s: %s: larger than %d bytes", cmd,
			      (int)kv->keylen, kv->key, path, PROTO_MAX_STR);
		fclose(f);
		pbuf_free(&b);
		return -1;
	}
	fclose(f);
	pbuf_reserve(&b, 1);
	kv->owned = b.data;
	kv->s = b.data;
	kv->slen = b.len;
	return 0;
}

/*
 * key=value: an integer (decimal, optional sign), true or false, or else
 * a string.  map.key=value is one entry of a map of strings; cwd and
 * stdin are always strings, and stdin=@FILE is the contents of FILE
 * (stdin=@@... the text "@..." itself).
 */
static int
cmd_kv(const char *cmd, const char *word, struct cmd_kv *kv)
{
	const char *eq = strchr(word, '='), *v, *digits, *dot;
	long long n;
	char *end;
	size_t i;

	memset(kv, 0, sizeof(*kv));
	if (eq == NULL || eq == word) {
		warnx("%s: expected key=value: %s", cmd, word);
		return -1;
	}
	kv->key = word;
	kv->keylen = (size_t)(eq - word);
	v = eq + 1;
	kv->s = v;
	kv->slen = strlen(v);
	kv->type = CMD_VALUE_STR;
	if ((dot = memchr(word, '.', kv->keylen)) != NULL) {
		if (dot == word || dot + 1 == eq) {
			warnx("%s: expected map.key=value: %s", cmd, word);
			return -1;
		}
		kv->maplen = (size_t)(dot - word);
		return 0;
	}
	for (i = 0; i < sizeof(cmd_string_keys) / sizeof(cmd_string_keys[0]);
	     i++) {
		const struct cmd_string_key *sk = &cmd_string_keys[i];

		if (strlen(sk->key) != kv->keylen ||
		    memcmp(sk->key, word, kv->keylen) != 0)
			continue;
		if (sk->file && v[0] == '@' && v[1] == '@') {
			kv->s++;
			kv->slen--;
		} else if (sk->file && v[0] == '@')
			return cmd_read_file(cmd, v + 1, kv);
		return 0;
	}
	/* in octal, as umask(1) and chmod(1) read a mode: 077 is 0077 */
	if (kv->keylen == 5 && memcmp(word, "umask", 5) == 0) {
		if (*v == '\0' || v[strspn(v, "01234567")] != '\0' ||
		    (n = strtoll(v, NULL, 8)) > 0777) {
			warnx("%s: umask is an octal mask, 0 to 0777: %s", cmd,
			      word);
			return -1;
		}
		kv->type = CMD_VALUE_INT;
		kv->i = n;
		return 0;
	}
	if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0) {
		kv->type = CMD_VALUE_BOOL;
		kv->i = *v == 't';
		return 0;
	}
	digits = v + (*v == '-' || *v == '+');
	if (*digits == '\0' || digits[strspn(digits, "0123456789")] != '\0')
		return 0;
	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno != 0 || *end != '\0') {
		warnx("%s: integer out of range: %s", cmd, word);
		return -1;
	}
	kv->type = CMD_VALUE_INT;
	kv->i = n;
	return 0;
}

/* What an argument names: its map's name, or its key. */
static size_t
cmd_kv_name(const struct cmd_kv *kv)
{
	return kv->maplen > 0 ? kv->maplen : kv->keylen;
}

static int
cmd_cmp_bytes(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c != 0)
		return c;
	return (alen > blen) - (alen < blen);
}

/*
 * Arguments by what they name: the name, plain keys before map entries,
 * the whole key, then the order given.
 */
static int
cmd_kv_order(const void *pa, const void *pb)
{
	const struct cmd_kv *a = pa, *b = pb;
	int c = cmd_cmp_bytes(a->key, cmd_kv_name(a), b->key, cmd_kv_name(b));

	if (c != 0)
		return c;
	if ((a->maplen > 0) != (b->maplen > 0))
		return a->maplen > 0 ? 1 : -1;
	if ((c = cmd_cmp_bytes(a->key, a->keylen, b->key, b->keylen)) != 0)
		return c;
	return (a->pos > b->pos) - (a->pos < b->pos);
}

static bool
cmd_kv_same_name(const struct cmd_kv *a, const struct cmd_kv *b)
{
	return cmd_cmp_bytes(a->key, cmd_kv_name(a), b->key, cmd_kv_name(b)) ==
	       0;
}

/* *first becomes kv, with what it clashes on, if kv came before it. */
static void
cmd_kv_clash(const struct cmd_kv *kv, size_t len, const struct cmd_kv **first,
             size_t *firstlen)
{
	if (*first == NULL || kv->pos < (*first)->pos) {
		*first = kv;
		*firstlen = len;
	}
}

/*
 * The first argument, in the order given, that names what an earlier one
 * named: the same key, or a map and a plain argument of the map's name
 * ("argv" too when there is a command).  kv is in cmd_kv_order; *len is
 * what the two share.  Sorting makes this n log n: a gather line of a
 * million words took minutes compared pairwise.
 */
static const struct cmd_kv *
cmd_kv_first_clash(const struct cmd_kv *kv, int n, bool argv, size_t *len)
{
	const struct cmd_kv *first = NULL;
	int g, end, i;

	for (g = 0; g < n; g = end) {
		for (end = g + 1; end < n && cmd_kv_same_name(&kv[g], &kv[end]);
		     end++)
			;
		if (argv && cmd_kv_name(&kv[g]) == 4 &&
		    memcmp(kv[g].key, "argv", 4) == 0) {
			for (i = g; i < end; i++)
				cmd_kv_clash(&kv[i], 4, &first, len);
			continue;
		}
		/* The earliest plain key comes first: every later one clashes
		 * with it, and it with any earlier map entry. */
		for (i = g + 1; kv[g].maplen == 0 && i < end; i++)
			cmd_kv_clash(kv[i].pos < kv[g].pos ? &kv[g] : &kv[i],
			             cmd_kv_name(&kv[g]), &first, len);
		/* Map entries of one key, in the order given. */
		for (i = g + 1; i < end; i++)
			if (kv[i - 1].maplen > 0 &&
			    cmd_cmp_bytes(kv[i - 1].key, kv[i - 1].keylen,
			                  kv[i].key, kv[i].keylen) == 0)
				cmd_kv_clash(&kv[i], kv[i].keylen, &first, len);
	}
	return first;
}

/*
 * The task's key=value words, then the command after "--".  The words
 * are kept in cmd_kv_order, so a map's entries are side by side.
 */
static int
cmd_task_words(const struct cmd_entry *ce, struct cmd_args *a)
{
	int i, nkv = a->cmdstart >= 0 ? a->cmdstart : a->argc;
	const struct cmd_kv *clash;
	size_t len;

	if (strchr(a->argv[0], '=') != NULL) {
		warnx("%s: missing task name before %s", ce->name, a->argv[0]);
		return -1;
	}
	if (cmd_check_name(ce->name, "task name", PF_TASK, a->argv[0]) < 0)
		return -1;
	if (a->cmdstart >= 0 && a->cmdstart == a->argc) {
		warnx("%s: missing command after --", ce->name);
		return -1;
	}
	if (cmd_job_check_cwd(ce->name, a) < 0)
		return -1;
	if ((a->kv = calloc((size_t)nkv + 1, sizeof(*a->kv))) == NULL) {
		warnx("%s: out of memory", ce->name);
		return -1;
	}
	for (i = 1; i < nkv; i++) {
		if (cmd_kv(ce->name, a->argv[i], &a->kv[a->nkv]) < 0)
			return -1;
		a->kv[a->nkv++].pos = i;
	}
	qsort(a->kv, (size_t)a->nkv, sizeof(*a->kv), cmd_kv_order);
	clash = cmd_kv_first_clash(a->kv, a->nkv, a->cmdstart >= 0, &len);
	if (clash != NULL) {
		warnx("%s: argument given twice: %.*s", ce->name, (int)len,
		      clash->key);
		return -1;
	}
	return 0;
}

static int
cmd_env_order(const void *pa, const void *pb, void *arg)
{
	const char *const *env = arg;
	int ia = *(const int *)pa, ib = *(const int *)pb;
	int c = cmd_cmp_bytes(env[ia], strcspn(env[ia], "="), env[ib],
	                      strcspn(env[ib], "="));

	return c != 0 ? c : (ia < ib) - (ia > ib); /* the later first */
}

/*
 * The --env words by name, each name once: the last one given, as the
 * last of a shell's assignments wins.  Sorted, so that --env-all finds
 * what --env names by bisection; compared pairwise, a few hundred
 * thousand words took minutes.
 */
static int
cmd_env_sort(const struct cmd_entry *ce, struct cmd_args *a)
{
	const char **env;
	int *idx, i, n = 0;

	if (a->nenv < 2)
		return 0;
	idx = calloc((size_t)a->nenv, sizeof(*idx));
	env = calloc((size_t)a->nenv, sizeof(*env));
	if (idx == NULL || env == NULL) {
		free(idx);
		free(env);
		warnx("%s: out of memory", ce->name);
		return -1;
	}
	for (i = 0; i < a->nenv; i++)
		idx[i] = i;
	qsort_r(idx, (size_t)a->nenv, sizeof(*idx), cmd_env_order, a->env);
	for (i = 0; i < a->nenv; i++) {
		const char *w = a->env[idx[i]];

		if (n == 0 ||
		    cmd_cmp_bytes(env[n - 1], strcspn(env[n - 1], "="), w,
		                  strcspn(w, "=")) != 0)
			env[n++] = w;
	}
	memcpy(a->env, env, (size_t)n * sizeof(*env));
	a->nenv = n;
	free(idx);
	free(env);
	return 0;
}

/* Check and convert the positional words as the command's row says. */
static int
cmd_words(const struct cmd_entry *ce, struct cmd_args *a)
{
	int i;

	switch (ce->words) {
	case CMD_WORDS_ANY:
		break;
	case CMD_WORDS_JOBS:
		a->jobs = calloc((size_t)a->argc + 1, sizeof(*a->jobs));
		a->done = calloc((size_t)a->argc + 1, sizeof(*a->done));
		if (a->jobs == NULL || a->done == NULL) {
			warnx("%s: out of memory", ce->name);
			return -1;
		}
		for (i = 0; i < a->argc; i++) {
			if (cmd_job_id(ce->name, a->argv[i], &a->jobs[i]) < 0)
				return -1;
		}
		break;
	case CMD_WORDS_TASK:
		return cmd_task_words(ce, a);
	case CMD_WORDS_GROUP:
		if (a->argc > 0)
			return cmd_check_name(ce->name, "group name", PF_NAME,
			                      a->argv[0]);
		break;
	}
	return 0;
}

/* "pool resize: missing option: --threads or --processes" */
static void
cmd_missing_option(const struct cmd_entry *ce)
{
	char list[256];
	size_t i, off = 0, n = 0, total = 0;

	for (i = 0; i < CMD_OPTION_COUNT; i++)
		total += (ce->one_of & cmd_options[i].flag) != 0;
	list[0] = '\0';
	for (i = 0; i < CMD_OPTION_COUNT && off < sizeof(list); i++) {
		if ((ce->one_of & cmd_options[i].flag) == 0)
			continue;
		n++;
		off +=
		    (size_t)snprintf(list + off, sizeof(list) - off, "%s--%s",
		                     n == 1       ? ""
		                     : n == total ? " or "
		                                  : ", ",
		                     cmd_options[i].long_name);
	}
	warnx("%s: missing option: %s", ce->name, list);
}

/*
 * The task a command line names, before it is parsed: its first
 * positional word, found as cmd_parse finds it, past the options and
 * their values (--label exec, -e exec, --label=exec); NULL if none comes
 * before "--".
 */
const char *
cmd_task_name(int argc, char **argv)
{
	const struct cmd_option_entry *o;
	const char *w;
	size_t len;
	int i;

	for (i = 0; i < argc; i++) {
		w = argv[i];
		if (strcmp(w, "--") == 0)
			return NULL;
		if (w[0] != '-' || w[1] == '\0')
			return w;
		if (w[1] == '-') {
			len = strcspn(w + 2, "=");
			o = cmd_option_find(0, w + 2, len);
			if (o != NULL && o->arg != NULL && w[2 + len] == '\0')
				i++; /* its value is the next word */
			continue;
		}
		for (w++; *w != '\0'; w++) {
			o = cmd_option_find(*w, NULL, 0);
			if (o != NULL && o->arg != NULL) {
				if (w[1] == '\0')
					i++;
				break; /* the rest of the word is its value */
			}
		}
	}
	return NULL;
}

/*
 * Split argv (the words after the command name) into options and
 * positional words (cmd_task_name walks them the same way).  Returns 0,
 * or -1 after a message.
 */
int
cmd_parse(const struct cmd_entry *ce, int argc, char **argv, struct cmd_args *a,
          struct ctl *ctl)
{
	const struct cmd_option_entry *o;
	bool ended = false;
	int i;

	memset(a, 0, sizeof(*a));
	/* room for every word, whatever it turns out to be */
	a->argv = calloc((size_t)argc + 1, sizeof(*a->argv));
	a->env = calloc((size_t)argc + 1, sizeof(*a->env));
	if (a->argv == NULL || a->env == NULL) {
		warnx("%s: out of memory", ce->name);
		return -1;
	}
	a->exec = PX_AUTO;
	a->cmdstart = -1;
	a->state = -1;
	for (i = 0; i < argc; i++) {
		char *w = argv[i];

		if (!ended && strcmp(w, "--") == 0) {
			ended = true;
			if (ce->words != CMD_WORDS_TASK)
				continue;
			if (a->argc == 0) {
				warnx("%s: missing task name before --",
				      ce->name);
				return -1;
			}
			a->cmdstart = a->argc;
			continue;
		}
		if (ended || w[0] != '-' || w[1] == '\0') {
			a->argv[a->argc++] = w;
			continue;
		}
		if (w[1] == '-') {
			const char *name = w + 2, *eq = strchr(name, '=');
			size_t len =
			    eq != NULL ? (size_t)(eq - name) : strlen(name);

			o = cmd_option_check(ce, cmd_option_find(0, name, len),
			                     w);
			if (o == NULL)
				return -1;
			if (o->arg == NULL && eq != NULL) {
				warnx("%s: option --%s takes no value",
				      ce->name, o->long_name);
				return -1;
			}
			if (o->arg != NULL && eq == NULL) {
				if (i + 1 == argc) {
					warnx("%s: option --%s needs %s",
					      ce->name, o->long_name, o->arg);
					return -1;
				}
				eq = argv[++i];
			} else if (eq != NULL)
				eq++;
			if (cmd_apply(ce, o, eq, a, ctl) < 0)
				return -1;
			if (o->flag == CMD_OPT_HELP)
				return 0;
			continue;
		}
		/* one or more short options: -qa, -x thread, -xthread */
		for (w++; *w != '\0'; w++) {
			char name[3] = {'-', *w, '\0'};
			const char *value = NULL;

			o = cmd_option_check(ce, cmd_option_find(*w, NULL, 0),
			                     name);
			if (o == NULL)
				return -1;
			if (o->arg != NULL) {
				if (w[1] != '\0')
					value = w + 1;
				else if (i + 1 < argc)
					value = argv[++i];
				else {
					warnx("%s: option -%c needs %s",
					      ce->name, *w, o->arg);
					return -1;
				}
			}
			if (cmd_apply(ce, o, value, a, ctl) < 0)
				return -1;
			if (o->flag == CMD_OPT_HELP)
				return 0;
			if (value != NULL)
				break;
		}
	}
	if (a->argc < ce->minargs) {
		warnx("%s: missing argument", ce->name);
		return -1;
	}
	if (ce->maxargs >= 0 && a->argc > ce->maxargs) {
		warnx("%s: too many arguments", ce->name);
		return -1;
	}
	if (ce->one_of != 0 && (a->seen & ce->one_of) == 0) {
		cmd_missing_option(ce);
		return -1;
	}
	if (cmd_env_sort(ce, a) < 0)
		return -1;
	return cmd_words(ce, a);
}

/* Free what parsing and preparing a command allocated. */
void
cmd_args_clear(struct cmd_args *a)
{
	int i;

	for (i = 0; a->kv != NULL && i < a->nkv; i++)
		free(a->kv[i].owned);
	a->nkv = 0;
	free(a->argv);
	free(a->jobs);
	free(a->done);
	free(a->kv);
	free(a->env);
	a->argv = NULL;
	a->jobs = NULL;
	a->done = NULL;
	a->kv = NULL;
	a->env = NULL;
	a->argc = a->nenv = 0;
	pbuf_free(&a->batch.fields);
	free(a->batch.line);
	free(a->batch.deps);
	free(a->batch.order);
	free(a->batch.frames);
	memset(&a->batch, 0, sizeof(a->batch));
}

static bool
cmd_blank(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' ||
	       ch == '\v' || ch == '\f';
}

/*
 * Split a line into at most max words, in place, the way a shell would
 * without expanding anything: blanks separate words; '...' keeps
 * everything inside; "..." too, except that \\, \", \$ and \` stand for
 * the second character; outside quotes a backslash keeps the character
 * after it; an unquoted # where a word would start begins a comment.
 * Returns the number of words, or -1 with *cause set.
 */
int
cmd_split(char *line, char **words, int max, const char **cause)
{
	char *r = line, *w = line, quote;
	int n = 0;

	for (;;) {
		while (cmd_blank(*r))
			r++;
		if (*r == '\0' || *r == '#')
			return n;
		if (n == max) {
			*cause = "too many words";
			return -1;
		}
		words[n++] = w;
		while (*r != '\0' && !cmd_blank(*r)) {
			if (*r == '\'' || *r == '"') {
				quote = *r++;
				while (*r != quote) {
					if (*r == '\0') {
						*cause = quote == '"'
						             ? "unterminated \""
						             : "unterminated '";
						return -1;
					}
					if (quote == '"' && *r == '\\' &&
					    r[1] != '\0' &&
					    strchr("\\\"$`", r[1]) != NULL)
						r++;
					*w++ = *r++;
				}
				r++;
			} else if (*r == '\\' && r[1] != '\0') {
				r++;
				*w++ = *r++;
			} else
				*w++ = *r++;
		}
		if (*r != '\0')
			r++;
		*w++ = '\0';
	}
}

/* Run the command named by argv[0]; returns the exit status. */
int
cmd_run(struct ctl *ctl, int argc, char **argv)
{
	const struct cmd_entry *ce;
	struct cmd_args *a;
	enum conn_status st;
	bool command;
	int ret, used;

	if (strcmp(argv[0], CMD_COMPLETE) == 0)
		return cmd_complete(ctl, argc - 1, argv + 1);
	if ((ce = cmd_find(argc, argv, &used)) == NULL)
		return CTL_USAGE;
	/* run exec exits with its command's status: ours is kept apart */
	command = ce->exec == cmd_job_run &&
	          cmd_job_runs_exec(argc - used, argv + used);
	ctl->command_status = command;
	if ((a = malloc(sizeof(*a))) == NULL)
		err(command ? CTL_CMD_FAILED : CTL_CONNECT, "malloc");
	if (cmd_parse(ce, argc - used, argv + used, a, ctl) < 0) {
		cmd_usage(stderr, ce, false);
		cmd_args_clear(a);
		free(a);
		return command ? CTL_CMD_FAILED : CTL_USAGE;
	}
	if (a->seen & CMD_OPT_HELP) {
		cmd_usage(stdout, ce, true);
		cmd_args_clear(a);
		free(a);
		return CTL_OK;
	}
	ctl->bar = ctl->bar && !ctl->json && !ctl->quiet;
	if (ce->prepare != NULL && (ret = ce->prepare(ctl, a)) != CTL_OK) {
		cmd_args_clear(a);
		free(a);
		return ret;
	}
	if (ce->offline) {
		ret = ce->exec(ctl, a);
		cmd_args_clear(a);
		free(a);
		return ret;
	}
	st = conn_open(&ctl->conn, ctl->socket);
	if (st == CONN_OK) {
		ctl->conn.json = ctl->json;
		ret = ce->exec(ctl, a);
	} else {
		ret = cmd_conn_exit(ctl, st);
		if (command)
			ret = cmd_job_command_exit(ret);
	}
	conn_close(&ctl->conn);
	cmd_args_clear(a);
	free(a);
	return ret;
}

int
cmd_help(struct ctl *ctl, struct cmd_args *a)
{
	const struct cmd_entry *ce;
	int used;

	if (a->argc == 0) {
		cmd_usage_all(stdout, true);
		return CTL_OK;
	}
	if ((ce = cmd_find(a->argc, a->argv, &used)) == NULL)
		return CTL_USAGE;
	if (used < a->argc) {
		warnx("help: %s has no subcommand %s", ce->name, a->argv[used]);
		return CTL_USAGE;
	}
	cmd_usage(stdout, ce, true);
	return CTL_OK;
}

/* Report a connection problem; returns the exit status it means. */
int
cmd_conn_exit(struct ctl *ctl, enum conn_status st)
{
	switch (st) {
	case CONN_OK:
		return CTL_OK;
	case CONN_TIMEOUT:
		return CTL_TIMEOUT;
	case CONN_INTR:
		return CTL_INTERRUPTED;
	case CONN_CLOSED:
		warnx("daemon closed the connection");
		return CTL_CONNECT;
	case CONN_TOOBIG:
		warnx("%s", ctl->conn.cause);
		return CTL_USAGE;
	case CONN_ERROR:
		break;
	}
	warnx("%s", ctl->conn.cause);
	return CTL_CONNECT;
}

/* Report an error reply; returns CTL_REFUSED. */
int
cmd_refused(const struct proto_msg *m)
{
	char code[33], message[1025];
	size_t len;
	const char *s;
	int e;

	s = proto_str(m, PF_ERROR, &len);
	render_safe(code, sizeof(code), s, len);
	if ((s = proto_str(m, PF_MESSAGE, &len)) != NULL)
		render_safe(message, sizeof(message), s, len);
	else if ((e = proto_error_lookup(code, strlen(code))) >= 0)
		snprintf(message, sizeof(message), "%s", proto_errors[e].text);
	else
		snprintf(message, sizeof(message), "request refused");
	warnx("%s: %s", code, message);
	return CTL_REFUSED;
}

/*
 * Send one request and wait for its reply, which must be of type want.
 * Returns 0 with the reply in m, or an exit status after a message.
 */
int
cmd_call(struct ctl *ctl, struct proto_enc *e, uint64_t id,
         enum proto_type want, struct proto_msg *m)
{
	enum conn_status st;

	if ((st = conn_send(&ctl->conn, e)) != CONN_OK)
		return cmd_conn_exit(ctl, st);
	for (;;) {
		if ((st = conn_recv(&ctl->conn, m, -1)) != CONN_OK)
			return cmd_conn_exit(ctl, st);
		if (m->id != id)
			continue;
		if (m->type == PROTO_ERROR)
			return cmd_refused(m);
		if (m->type == want)
			return CTL_OK;
		if (m->type != PROTO_PROGRESS) {
			warnx("protocol error: %s instead of %s",
			      proto_types[m->type].name,
			      proto_types[want].name);
			return CTL_CONNECT;
		}
	}
}

/* Send the request e and keep a copy, in case the queue is full. */
enum conn_status
cmd_slot_send(struct ctl *ctl, struct cmd_slot *slot, struct proto_enc *e)
{
	struct conn *c = &ctl->conn;

	if (proto_enc_end(e) < 0) {
		c->wbuf.len = 0;
		snprintf(c->cause, sizeof(c->cause),
		         "request too large (more than %d bytes)",
		         PROTO_MAX_FRAME);
		return CONN_TOOBIG;
	}
	slot->frame.len = 0;
	pbuf_append(&slot->frame, c->wbuf.data, c->wbuf.len);
	slot->backoff = CMD_SLOT_FIRST;
	return conn_flush(c);
}

/*
 * An error reply to a request sent with cmd_slot_send.  When it is
 * queue_full and the command may wait for a slot, wait a while (10 ms,
 * doubling up to a second) and send the request again: returns -1, and
 * the caller reads on.  Otherwise report it: returns the exit status.
 */
int
cmd_slot_refused(struct ctl *ctl, struct cmd_slot *slot,
                 const struct proto_msg *m)
{
	struct conn *c = &ctl->conn;
	enum conn_status st;
	size_t len;
	const char *code = proto_str(m, PF_ERROR, &len);
	const char *full = proto_errors[PE_QUEUE_FULL].name;

	if (!slot->wait || code == NULL || len != strlen(full) ||
	    memcmp(code, full, len) != 0)
		return cmd_refused(m);
	if (!slot->told && !ctl->quiet) {
		warnx("queue full, waiting for a slot");
		slot->told = true;
	}
	if ((st = conn_pause(c, slot->backoff)) != CONN_OK)
		return cmd_conn_exit(ctl, st);
	slot->backoff *= 2;
	if (slot->backoff > CMD_SLOT_MAX)
		slot->backoff = CMD_SLOT_MAX;
	pbuf_append(&c->wbuf, slot->frame.data, slot->frame.len);
	if ((st = conn_flush(c)) != CONN_OK)
		return cmd_conn_exit(ctl, st);
	return -1;
}

void
cmd_slot_free(struct cmd_slot *slot)
{
	pbuf_free(&slot->frame);
}
