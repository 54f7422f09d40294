/*
 * msg.c -- the tables behind proto.h: one row per message type, field,
 * error code, job state and executor.  concd-protocol(7) documents them.
 */
#include <pthread.h>
#include <string.h>

#include "proto.h"

#define B(f) PF_BIT(PF_##f)

const struct proto_type_info proto_types[PROTO_TYPE_COUNT] = {
    [PROTO_HELLO] = {"hello", true, B(VERSION),
                     "announce the client's protocol version"},
    [PROTO_PING] = {"ping", true, 0, "liveness check"},
    [PROTO_SUBMIT] = {"submit", true, B(TASK),
                      "queue a job; with watch, stream its events"},
    [PROTO_WATCH] = {"watch", true, B(JOB), "stream a job's events"},
    [PROTO_STATUS] = {"status", true, B(JOB), "one job's record"},
    [PROTO_PS] = {"ps", true, 0, "list jobs"},
    [PROTO_CANCEL] = {"cancel", true, B(JOB), "cancel a job"},
    [PROTO_RESULT] = {"result", true, B(JOB),
                      "the final event of a finished job"},
    [PROTO_TASKS] = {"tasks", true, 0, "list the tasks"},
    [PROTO_SHUTDOWN] = {"shutdown", true, 0, "stop the daemon (admins)"},
    [PROTO_POOL] = {"pool", true, 0, "list the workers and queues"},
    [PROTO_RESIZE] = {"resize", true, 0, "change the pool sizes (admins)"},
    [PROTO_GATHER] = {"gather", true, B(JOBS),
                      "submit many jobs at once and stream all their events"},
    [PROTO_LOG] = {"log", true, B(JOB), "a job's kept output"},
    [PROTO_INPUT] = {"input", true, B(JOB),
                     "bytes for a running job's standard input, or its end"},
    [PROTO_GROUP] = {"group", true, B(OP),
                     "list, add, change, pause, resume or remove groups"},
    [PROTO_HOLD] = {"hold", true, B(JOB), "hold a queued job back"},
    [PROTO_RELEASE] = {"release", true, B(JOB), "let a held job go on"},
    [PROTO_WAIT] = {"wait", true, B(GROUP),
                    "answer once a group has no queued or running job"},
    [PROTO_RESTART] = {"restart", true, B(JOB),
                       "run a finished job's request again, as a new job"},
    [PROTO_CLEAN] = {"clean", true, 0, "forget finished jobs and their logs"},
    [PROTO_REMOTE] = {"remote", true, B(OP),
                      "add or remove warm workers on Slurm's nodes (admins)"},
    [PROTO_WELCOME] = {"welcome", false, B(VERSION), "reply to hello"},
    [PROTO_PONG] = {"pong", false, 0, "reply to ping"},
    [PROTO_ACCEPTED] =
        {"accepted", false, 0,
         "a submitted job (job) or a gather's jobs (jobs) were queued"},
    [PROTO_PROGRESS] = {"progress", false, B(JOB), "a running job's progress"},
    [PROTO_END] = {"end", false, B(JOB) | B(STATE),
                   "a job reached a final state"},
    [PROTO_JOB] = {"job", false, B(JOB), "reply to status"},
    [PROTO_JOBS] = {"jobs", false, B(JOBS), "reply to ps"},
    [PROTO_TASKLIST] = {"tasklist", false, B(TASKS), "reply to tasks"},
    [PROTO_OK] = {"ok", false, 0, "a request succeeded"},
    [PROTO_ERROR] = {"error", false, B(ERROR), "a request failed"},
    [PROTO_POOLINFO] = {"poolinfo", false, B(WORKERS), "reply to pool"},
    [PROTO_OUTPUT] = {"output", false, B(JOB) | B(STREAM) | B(DATA),
                      "a running job's output"},
    [PROTO_RETRY] = {"retry", false, B(JOB) | B(ATTEMPT),
                     "a failed job is run again"},
    [PROTO_GROUPLIST] = {"grouplist", false, B(GROUPS), "reply to group list"},
    [PROTO_RUN] = {"run", false, B(JOB) | B(TASK),
                   "daemon to worker process: run a job"},
    [PROTO_STARTED] = {"started", false, B(JOB),
                       "worker process to daemon: a job started"},
    [PROTO_REVOKE] = {"revoke", false, B(JOB),
                      "daemon to worker process: give a job back unstarted"},
    [PROTO_RETURNED] = {"returned", false, B(JOB),
                        "worker process to daemon: a job given back"},
};
_Static_assert(sizeof(proto_types) / sizeof(proto_types[0]) == PROTO_TYPE_COUNT,
               "proto_types rows");

const struct proto_field_info proto_fields[PF_FIELD_COUNT] = {
    [PF_T] = {"t", PV_STR, 32},
    [PF_ID] = {"id", PV_UINT, 0},
    [PF_VERSION] = {"version", PV_UINT, 0},
    [PF_SERVER] = {"server", PV_STR, 128},
    [PF_PID] = {"pid", PV_UINT, 0},
    [PF_TASK] = {"task", PV_STR, 64},
    [PF_ARGS] = {"args", PV_MAP, 256},
    [PF_EXEC] = {"exec", PV_STR, 16},
    [PF_DAEMON] = {"daemon", PV_BOOL, 0},
    [PF_WATCH] = {"watch", PV_BOOL, 0},
    [PF_FRESH] = {"fresh", PV_BOOL, 0},
    [PF_TIMEOUT] = {"timeout", PV_UINT, 0},
    [PF_JOB] = {"job", PV_UINT, 0},
    [PF_STATE] = {"state", PV_STR, 16},
    [PF_REQUESTED] = {"requested", PV_STR, 16},
    [PF_UID] = {"uid", PV_UINT, 0},
    [PF_DONE] = {"done", PV_UINT, 0},
    [PF_TOTAL] = {"total", PV_UINT, 0},
    [PF_MSG] = {"msg", PV_STR, 256},
    [PF_RESULT] = {"result", PV_ANY, 0},
    [PF_ERROR] = {"error", PV_STR, 32},
    [PF_MESSAGE] = {"message", PV_STR, 1024},
    [PF_WORKER] = {"worker", PV_INT, 0},
    [PF_TID] = {"tid", PV_UINT, 0},
    [PF_SERVED] = {"served", PV_UINT, 0},
    [PF_SUBMITTED] = {"submitted", PV_UINT, 0},
    [PF_STARTED] = {"started", PV_UINT, 0},
    [PF_FINISHED] = {"finished", PV_UINT, 0},
    [PF_ALL] = {"all", PV_BOOL, 0},
    [PF_LIMIT] = {"limit", PV_UINT, 0},
    [PF_JOBS] = {"jobs", PV_ARRAY, 0},
    [PF_COUNTS] = {"counts", PV_MAP, 0},
    [PF_TASKS] = {"tasks", PV_ARRAY, 0},
    [PF_NAME] = {"name", PV_STR, 64},
    [PF_SUMMARY] = {"summary", PV_STR, 256},
    [PF_USAGE] = {"usage", PV_STR, 256},
    [PF_TRAITS] = {"traits", PV_ARRAY, 8},
    [PF_EXECUTORS] = {"executors", PV_ARRAY, 8},
    [PF_DEFAULT] = {"default", PV_STR, 16},
    [PF_CANCEL_PENDING] = {"cancel_pending", PV_BOOL, 0},
    [PF_WORKERS] = {"workers", PV_ARRAY, 0},
    [PF_QUEUES] = {"queues", PV_MAP, 0},
    [PF_THREADS] = {"threads", PV_UINT, 0},
    [PF_PROCESSES] = {"processes", PV_UINT, 0},
    [PF_UPTIME] = {"uptime", PV_UINT, 0},
    [PF_STREAM] = {"stream", PV_STR, 16},
    [PF_DATA] = {"data", PV_ANY, 0},
    [PF_INDEX] = {"index", PV_UINT, 0},
    [PF_ATTEMPT] = {"attempt", PV_UINT, 0},
    [PF_RETRIES] = {"retries", PV_UINT, 0},
    [PF_RETRY_DELAY] = {"retry_delay", PV_UINT, 0},
    [PF_FAIL_FAST] = {"fail_fast", PV_BOOL, 0},
    [PF_DROPPED] = {"dropped", PV_UINT, 0},
    [PF_RESULT_OMITTED] = {"result_omitted", PV_UINT, 0},
    [PF_OFFSET] = {"offset", PV_UINT, 0},
    [PF_LENGTH] = {"length", PV_UINT, 0},
    [PF_TAIL] = {"tail", PV_UINT, 0},
    [PF_FOLLOW] = {"follow", PV_BOOL, 0},
    [PF_SKIPPED] = {"skipped", PV_UINT, 0},
    [PF_SINCE] = {"since", PV_UINT, 0},
    [PF_UNTIL] = {"until", PV_UINT, 0},
    [PF_CWD] = {"cwd", PV_STR, 4096},
    [PF_ENV] = {"env", PV_MAP, 4096},
    [PF_STDIN] = {"stdin", PV_STR, 16},
    [PF_EOF] = {"eof", PV_BOOL, 0},
    [PF_EXIT] = {"exit", PV_UINT, 0},
    [PF_SIGNAL] = {"signal", PV_UINT, 0},
    [PF_COMMAND] = {"command", PV_STR, 4096},
    [PF_GROUP] = {"group", PV_STR, 64},
    [PF_PRIORITY] = {"priority", PV_INT, 0},
    [PF_CPUS] = {"cpus", PV_UINT, 0},
    [PF_LABEL] = {"label", PV_STR, 128},
    [PF_AT] = {"at", PV_UINT, 0},
    [PF_HELD] = {"held", PV_BOOL, 0},
    [PF_PARALLEL] = {"parallel", PV_UINT, 0},
    [PF_PAUSED] = {"paused", PV_BOOL, 0},
    [PF_GROUPS] = {"groups", PV_ARRAY, 0},
    [PF_AHEAD] = {"ahead", PV_UINT, 0},
    [PF_OP] = {"op", PV_STR, 16},
    [PF_AFTER] = {"after", PV_ARRAY, 1024},
    [PF_AFTER_ANY] = {"after_any", PV_BOOL, 0},
    [PF_CAUSE] = {"cause", PV_UINT, 0},
    [PF_RESTART_OF] = {"restart_of", PV_UINT, 0},
    [PF_BEFORE] = {"before", PV_UINT, 0},
    [PF_FORGOTTEN] = {"forgotten", PV_UINT, 0},
    [PF_MEM] = {"mem", PV_UINT, 0},
    [PF_PIDS] = {"pids", PV_UINT, 0},
    [PF_LIMITS] = {"limits", PV_STR, 32},
    [PF_SLURM_JOB] = {"slurm_job", PV_UINT, 0},
    [PF_NODE] = {"node", PV_STR, 256},
    [PF_COUNT] = {"count", PV_UINT, 0},
    [PF_PARTITION] = {"partition", PV_STR, 128},
    [PF_TIME] = {"time", PV_STR, 32},
    [PF_RUNTIME] = {"runtime", PV_UINT, 0},
    [PF_UMASK] = {"umask", PV_UINT, 0},
    [PF_ALREADY] = {"already", PV_BOOL, 0},
};
_Static_assert(PF_GROUPS < 64, "required fields have bits in the first word");
_Static_assert(PF_FIELD_COUNT < 128 && PROTO_TYPE_COUNT < 128,
               "name index slots are int8_t");

const struct proto_error_info proto_errors[PE_COUNT] = {
    [PE_NONE] = {"none", "no error"},
    [PE_BAD_FRAME] = {"bad_frame", "malformed frame"},
    [PE_FRAME_TOO_LARGE] = {"frame_too_large", "frame too large"},
    [PE_VERSION] = {"version_mismatch", "protocol version mismatch"},
    [PE_UNKNOWN_MESSAGE] = {"unknown_message", "unknown message type"},
    [PE_BAD_FIELD] = {"bad_field", "missing or mistyped field"},
    [PE_UNKNOWN_TASK] = {"unknown_task", "no such task"},
    [PE_BAD_ARGS] = {"bad_args", "invalid task arguments"},
    [PE_BAD_EXECUTOR] = {"bad_executor", "executor not available"},
    [PE_NO_SUCH_JOB] = {"no_such_job", "no such job"},
    [PE_PERMISSION] = {"permission_denied", "permission denied"},
    [PE_NOT_FINISHED] = {"not_finished", "job has not finished"},
    [PE_SHUTTING_DOWN] = {"shutting_down", "daemon is shutting down"},
    [PE_QUEUE_FULL] = {"queue_full", "queue is full"},
    [PE_TASK_FAILED] = {"task_failed", "task failed"},
    [PE_CANCELLED] = {"cancelled", "job was cancelled"},
    [PE_TIMED_OUT] = {"timed_out", "job timed out"},
    [PE_WORKER_DIED] = {"worker_died", "worker died"},
    [PE_INTERNAL] = {"internal", "internal error"},
    [PE_INTERRUPTED] = {"interrupted", "the daemon stopped while it ran"},
    [PE_STORE] = {"store_failed", "the job store cannot be written"},
    [PE_NO_SUCH_GROUP] = {"no_such_group", "no such group"},
    [PE_DEPENDENCY] = {"dependency_failed",
                       "a job it depends on did not succeed"},
    [PE_OOM] = {"oom", "killed for exceeding its memory limit"},
    [PE_NODE_FAILED] = {"node_failed", "the node it ran on failed"},
    [PE_PREEMPTED] = {"preempted", "Slurm preempted it"},
};

const char *const proto_states[PS_COUNT] = {
    [PS_QUEUED] = "queued",       [PS_RUNNING] = "running",
    [PS_SUCCEEDED] = "succeeded", [PS_FAILED] = "failed",
    [PS_CANCELLED] = "cancelled", [PS_TIMED_OUT] = "timed_out",
};

const char *const proto_execs[PX_COUNT] = {
    [PX_AUTO] = "auto",       [PX_LOOP] = "loop",   [PX_THREAD] = "thread",
    [PX_PROCESS] = "process", [PX_SLURM] = "slurm", [PX_REMOTE] = "remote",
};

static int
lookup(const char *name, size_t len, const void *table, size_t rowsize,
       size_t rows)
{
	size_t i;

	for (i = 0; i < rows; i++) {
		const char *row =
		    *(const char *const *)((const char *)table + i * rowsize);
		if (row != NULL && strlen(row) == len &&
		    memcmp(row, name, len) == 0)
			return (int)i;
	}
	return -1;
}

#define LOOKUP(t, n, l) lookup(n, l, t, sizeof(t[0]), sizeof(t) / sizeof(t[0]))

/*
 * Field and type names are looked up for every key of every frame, so
 * they go through a small hash table built once.
 */
#define NAME_SLOTS 256

static struct name_index {
	pthread_once_t once;
	int8_t slot[NAME_SLOTS];
	uint8_t len[NAME_SLOTS]; /* of the name in the slot: no strlen */
} field_index = {.once = PTHREAD_ONCE_INIT},
  type_index = {.once = PTHREAD_ONCE_INIT};

static uint32_t
name_hash(const char *s, size_t len)
{
	uint32_t h = 2166136261u;

	while (len-- > 0)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h;
}

static void
index_build(struct name_index *ix, const void *table, size_t rowsize,
            size_t rows)
{
	size_t i;

	memset(ix->slot, -1, sizeof(ix->slot));
	for (i = 0; i < rows; i++) {
		const char *row =
		    *(const char *const *)((const char *)table + i * rowsize);
		uint32_t h;

		if (row == NULL)
			continue;
		h = name_hash(row, strlen(row)) % NAME_SLOTS;
		while (ix->slot[h] != -1)
			h = (h + 1) % NAME_SLOTS;
		ix->slot[h] = (int8_t)i;
		ix->len[h] = (uint8_t)strlen(row);
	}
}

static void
field_index_build(void)
{
	index_build(&field_index, proto_fields, sizeof(proto_fields[0]),
	            PF_FIELD_COUNT);
}

static void
type_index_build(void)
{
	index_build(&type_index, proto_types, sizeof(proto_types[0]),
	            PROTO_TYPE_COUNT);
}

static int
index_find(const struct name_index *ix, const void *table, size_t rowsize,
           const char *name, size_t len)
{
	uint32_t h = name_hash(name, len) % NAME_SLOTS;
	int i;

	while ((i = ix->slot[h]) != -1) {
		const char *row =
		    *(const char *const *)((const char *)table + i * rowsize);
		if (ix->len[h] == len && memcmp(row, name, len) == 0)
			return i;
		h = (h + 1) % NAME_SLOTS;
	}
	return -1;
}

int
proto_type_lookup(const char *name, size_t len)
{
	pthread_once(&type_index.once, type_index_build);
	return index_find(&type_index, proto_types, sizeof(proto_types[0]),
	                  name, len);
}

int
proto_field_lookup(const char *name, size_t len)
{
	pthread_once(&field_index.once, field_index_build);
	return index_find(&field_index, proto_fields, sizeof(proto_fields[0]),
	                  name, len);
}

int
proto_error_lookup(const char *name, size_t len)
{
	return LOOKUP(proto_errors, name, len);
}

int
proto_state_lookup(const char *name, size_t len)
{
	return LOOKUP(proto_states, name, len);
}

int
proto_exec_lookup(const char *name, size_t len)
{
	return LOOKUP(proto_execs, name, len);
}
