/*
 * concctl.h -- the command-line client of concd.
 *
 * main.c parses the global options and runs one command; cmd.c holds the
 * command table and the shared argument grammar; cmd_job.c, cmd_gather.c,
 * cmd_info.c, cmd_group.c and cmd_pool.c carry out the commands, cmd_ps.c
 * ps's columns; cmd_complete.c answers the shell completion scripts
 * (completion/); conn.c talks to the daemon; render.c turns replies into
 * text, tables, JSON, job output and progress bars.
 */
#ifndef CONCCTL_H
#define CONCCTL_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <msgpack.h>

#include "proto.h"

/* Exit statuses, documented in concctl(1) EXIT STATUS. */
enum ctl_exit {
	CTL_OK = 0,            /* success */
	CTL_FAILED = 1,        /* the job failed */
	CTL_USAGE = 2,         /* bad command line */
	CTL_CONNECT = 3,       /* cannot connect, connection lost, bad peer */
	CTL_REFUSED = 4,       /* the daemon answered with an error */
	CTL_CANCELLED = 5,     /* the job was cancelled */
	CTL_TIMEOUT = 6,       /* the job timed out, or so did the wait */
	CTL_OUTPUT = 7,        /* our standard output could not be written */
	CTL_INTERRUPTED = 130, /* SIGINT or SIGTERM */
	/*
	 * run exec, and wait for one exec job, exit with the command's own
	 * status (128 + N for signal N); their own outcomes then are these,
	 * as timeout(1) and docker run(1) give them, and 130.
	 */
	CTL_CMD_TIMEOUT = 124, /* the job timed out */
	CTL_CMD_FAILED = 125,  /* anything else: no status of the command's */
};

/*
 * Counts SIGINT, SIGTERM and SIGHUP, and a first SIGPIPE, which also sets
 * ctl_output_gone; main.c installs the handler.
 */
extern volatile sig_atomic_t ctl_interrupted;
extern volatile sig_atomic_t ctl_output_gone;
/*
 * render.c: fflush(stdout), keeping the errno of the first write to it
 * that failed, for main's message: stdio's error flag keeps no reason.
 * 0: none failed, or none said why.
 */
void ctl_flush_stdout(void);
int ctl_stdout_errno(void);

/* ---- conn.c: one connection to the daemon ---- */

enum conn_status {
	CONN_OK,
	CONN_TIMEOUT, /* the deadline passed */
	CONN_INTR,    /* a signal arrived */
	CONN_CLOSED,  /* the daemon closed the connection */
	CONN_ERROR,   /* I/O or protocol error; see cause */
	CONN_TOOBIG,  /* a request did not fit in a frame */
};

struct conn {
	int fd;
	const char *path;
	struct pbuf rbuf;
	struct pbuf wbuf;
	size_t roff;     /* rbuf's bytes before it are decoded */
	size_t consumed; /* the frame last returned, dropped on the next read */
	/*
	 * Replies read while a send waited for room in the socket (the
	 * daemon stops reading a peer that leaves them unread): appended to
	 * rbuf by the next conn_recv, once the frame it returned last is
	 * dropped.
	 */
	struct pbuf aside;
	msgpack_zone zone;
	uint64_t next_id;
	sig_atomic_t intr_seen; /* ctl_interrupted when last looked at */
	bool json;              /* print every reply as a JSON line on stdout */
	char server[129];
	uint64_t pid;
	char cause[1100];
	/*
	 * A job's standard input (conn_feed): while conn_recv waits it reads
	 * feed_fd and sends what it reads as input messages, and the end as
	 * eof, never more than CONN_FEED_AHEAD bytes ahead of the socket.
	 */
	int feed_fd; /* -1: none, or sent to its end */
	uint64_t feed_job;
};

enum conn_status conn_open(struct conn *, const char *path);
enum conn_status conn_open_until(struct conn *, const char *path,
                                 int64_t deadline);
void conn_close(struct conn *);
uint64_t conn_begin(struct conn *, struct proto_enc *, enum proto_type);
enum conn_status conn_send(struct conn *, struct proto_enc *);
enum conn_status conn_flush(struct conn *);
enum conn_status conn_pause(struct conn *, int64_t usec);
enum conn_status conn_recv(struct conn *, struct proto_msg *, int64_t deadline);
/* Stream fd to job's standard input while replies are awaited; -1: stop. */
void conn_feed(struct conn *, int fd, uint64_t job);
int64_t conn_now(void);

/* ---- cmd.c: the command table and argument grammar ---- */

/*
 * Options a command accepts besides its positional words: bits of a
 * uint64_t (cmd_entry.options, cmd_args.seen).
 */
#define CMD_OPT_HELP           (UINT64_C(1) << 0)
#define CMD_OPT_JSON           (UINT64_C(1) << 1)
#define CMD_OPT_QUIET          (UINT64_C(1) << 2)
#define CMD_OPT_ALL            (UINT64_C(1) << 3)
#define CMD_OPT_EXEC           (UINT64_C(1) << 4)
#define CMD_OPT_DAEMON         (UINT64_C(1) << 5)
#define CMD_OPT_FRESH          (UINT64_C(1) << 6)
#define CMD_OPT_TIMEOUT        (UINT64_C(1) << 7)
#define CMD_OPT_LIMIT          (UINT64_C(1) << 8)
#define CMD_OPT_CANCEL_PENDING (UINT64_C(1) << 9)
#define CMD_OPT_THREADS        (UINT64_C(1) << 10)
#define CMD_OPT_PROCESSES      (UINT64_C(1) << 11)
#define CMD_OPT_RETRIES        (UINT64_C(1) << 12)
#define CMD_OPT_RETRY_DELAY    (UINT64_C(1) << 13)
#define CMD_OPT_WAIT_SLOT      (UINT64_C(1) << 14)
#define CMD_OPT_AS_COMPLETED   (UINT64_C(1) << 15)
#define CMD_OPT_FAIL_FAST      (UINT64_C(1) << 16)
#define CMD_OPT_ANY            (UINT64_C(1) << 17)
#define CMD_OPT_STATE          (UINT64_C(1) << 18)
#define CMD_OPT_TASK           (UINT64_C(1) << 19)
#define CMD_OPT_USER           (UINT64_C(1) << 20)
#define CMD_OPT_SINCE          (UINT64_C(1) << 21)
#define CMD_OPT_UNTIL          (UINT64_C(1) << 22)
#define CMD_OPT_FOLLOW         (UINT64_C(1) << 23)
#define CMD_OPT_TAIL           (UINT64_C(1) << 24)
#define CMD_OPT_STDOUT         (UINT64_C(1) << 25)
#define CMD_OPT_STDERR         (UINT64_C(1) << 26)
#define CMD_OPT_ENV            (UINT64_C(1) << 27)
#define CMD_OPT_ENV_ALL        (UINT64_C(1) << 28)
#define CMD_OPT_CWD            (UINT64_C(1) << 29)
#define CMD_OPT_NO_STDIN       (UINT64_C(1) << 30)
#define CMD_OPT_GROUP          (UINT64_C(1) << 31)
#define CMD_OPT_PRIORITY       (UINT64_C(1) << 32)
#define CMD_OPT_CPUS           (UINT64_C(1) << 33)
#define CMD_OPT_LABEL          (UINT64_C(1) << 34)
#define CMD_OPT_AT             (UINT64_C(1) << 35)
#define CMD_OPT_IN             (UINT64_C(1) << 36)
#define CMD_OPT_HOLD           (UINT64_C(1) << 37)
#define CMD_OPT_PARALLEL       (UINT64_C(1) << 38)
#define CMD_OPT_AFTER          (UINT64_C(1) << 39)
#define CMD_OPT_AFTER_ANY      (UINT64_C(1) << 40)
#define CMD_OPT_BEFORE         (UINT64_C(1) << 41)
#define CMD_OPT_MEM            (UINT64_C(1) << 42)
#define CMD_OPT_PIDS           (UINT64_C(1) << 43)
#define CMD_OPT_OUTPUT         (UINT64_C(1) << 44)
#define CMD_OPT_SLURM          (UINT64_C(1) << 45)
#define CMD_OPT_PARTITION      (UINT64_C(1) << 46)
#define CMD_OPT_TIME           (UINT64_C(1) << 47)

/* The options of a job: run, submit and a line of gather. */
#define CMD_OPT_JOB                                                            \
	(CMD_OPT_EXEC | CMD_OPT_DAEMON | CMD_OPT_FRESH | CMD_OPT_TIMEOUT |     \
	 CMD_OPT_RETRIES | CMD_OPT_RETRY_DELAY | CMD_OPT_AFTER |               \
	 CMD_OPT_AFTER_ANY | CMD_OPT_QUEUE | CMD_OPT_MEM | CMD_OPT_PIDS |      \
	 CMD_OPT_ENV | CMD_OPT_ENV_ALL | CMD_OPT_CWD)
/* Where a job waits its turn: its group, priority, slots, start time. */
#define CMD_OPT_QUEUE                                                          \
	(CMD_OPT_GROUP | CMD_OPT_PRIORITY | CMD_OPT_CPUS | CMD_OPT_LABEL |     \
	 CMD_OPT_AT | CMD_OPT_IN | CMD_OPT_HOLD)

/* The jobs a job runs after (--after, --after-any): at most this many. */
#define CMD_MAX_AFTER 1024

/* One of them: a job id, or in a gather a line of the same input (@N). */
struct cmd_dep {
	uint64_t v;
	bool line; /* v is a line index (@N), not a job id */
};

/* What every command gets: the global settings and the connection. */
struct ctl {
	const char *socket;
	bool json;
	bool quiet;
	bool bar; /* draw a live progress bar on stderr */
	/* the exit status is a command's: run exec, wait for one exec job */
	bool command_status;
	struct conn conn;
};

/* What a command's positional words are, checked before connecting. */
enum cmd_words {
	CMD_WORDS_ANY,   /* free words */
	CMD_WORDS_JOBS,  /* job ids */
	CMD_WORDS_TASK,  /* a task name, then key=value arguments */
	CMD_WORDS_GROUP, /* a group's name, or none */
};

enum cmd_value {
	CMD_VALUE_INT,
	CMD_VALUE_BOOL,
	CMD_VALUE_STR,
};

/*
 * One task argument: key=value, or map.key=value for one entry of a map
 * argument (maplen > 0: the map's name is the first maplen bytes of key).
 */
struct cmd_kv {
	const char *key;
	size_t keylen;
	size_t maplen;
	enum cmd_value type;
	int64_t i;     /* CMD_VALUE_INT; CMD_VALUE_BOOL: 0 or 1 */
	const char *s; /* CMD_VALUE_STR */
	size_t slen;
	char *owned; /* s when read from a file (stdin=@FILE) */
	int pos;     /* its word's place on the command line */
};

/* One line of a gather: its job's fields, packed, and what it runs after. */
struct cmd_line {
	size_t off, len;  /* its fields in cmd_batch.fields, packed */
	uint32_t nfields; /* how many, without after */
	uint32_t dep;     /* its --after list: cmd_batch.deps[dep...] */
	uint32_t ndeps;
	unsigned lineno; /* its line in the input */
};

/* A run of lines sent as one gather request. */
struct cmd_frame {
	uint32_t first; /* its lines: cmd_batch.order[first...] */
	uint32_t n;
};

/*
 * What a command read before connecting: gather's jobs, one per line,
 * and the requests they go in.  Lines are sent in order; should one name
 * a later line (@N) and the gather need more than one request, the order
 * puts each line after the ones it names.
 */
struct cmd_batch {
	struct pbuf fields; /* every line's job fields, packed */
	struct cmd_line *line;
	uint32_t n;
	struct cmd_dep *deps; /* every line's after list */
	uint32_t ndeps, capdeps;
	uint32_t *order; /* the lines in the order they are sent */
	struct cmd_frame *frames;
	uint32_t nframes;
	const char *from; /* the input's name */
};

struct cmd_args {
	/*
	 * The arrays have room for every word of the command line, each
	 * allocated as the words are read (cmd_parse) and freed by
	 * cmd_args_clear.
	 */
	int argc; /* positional words */
	char **argv;
	int cmdstart;   /* CMD_WORDS_TASK: argv[cmdstart...] came after "--" */
	uint64_t *jobs; /* CMD_WORDS_JOBS: argv as ids */
	bool *done;     /* CMD_WORDS_JOBS: the job's reply has come */
	struct cmd_kv *kv; /* CMD_WORDS_TASK: argv[1...], by name */
	int nkv;
	uint64_t seen; /* CMD_OPT_* */
	enum proto_exec exec;
	uint64_t timeout_ms; /* 0: none */
	uint64_t limit;
	uint64_t tail;      /* CMD_OPT_TAIL: last lines */
	uint64_t threads;   /* CMD_OPT_THREADS */
	uint64_t processes; /* CMD_OPT_PROCESSES */
	uint64_t retries;
	uint64_t retry_delay_ms;
	uint64_t mem;           /* CMD_OPT_MEM: bytes */
	uint64_t pids;          /* CMD_OPT_PIDS */
	int state;              /* CMD_OPT_STATE: enum proto_state */
	const char *task;       /* CMD_OPT_TASK */
	uint64_t uid;           /* CMD_OPT_USER */
	uint64_t since;         /* CMD_OPT_SINCE: µs since the epoch */
	uint64_t until;         /* CMD_OPT_UNTIL */
	const char *output;     /* CMD_OPT_OUTPUT: ps's columns */
	const char *partition;  /* CMD_OPT_PARTITION */
	const char *time_limit; /* CMD_OPT_TIME: Slurm's --time */
	uint64_t before;        /* CMD_OPT_BEFORE: µs since the epoch */
	struct cmd_dep after[CMD_MAX_AFTER]; /* CMD_OPT_AFTER, _AFTER_ANY */
	uint32_t nafter;
	const char *group; /* CMD_OPT_GROUP */
	const char *label; /* CMD_OPT_LABEL */
	int64_t priority;  /* CMD_OPT_PRIORITY */
	uint64_t cpus;     /* CMD_OPT_CPUS */
	uint64_t at;       /* CMD_OPT_AT, CMD_OPT_IN: µs since the epoch */
	uint64_t parallel; /* CMD_OPT_PARALLEL */
	const char **env;  /* CMD_OPT_ENV: NAME or NAME=VALUE */
	int nenv;
	const char *cwd; /* CMD_OPT_CWD */
	struct cmd_batch batch;
};

/*
 * One command.  A subcommand is a row in its parent's subs table, named
 * by its whole path ("pool resize") and matched by the last word.
 */
struct cmd_entry {
	const char *name;
	const char *alias;
	const char *usage;
	const char *summary;
	int minargs;
	int maxargs; /* -1: no limit */
	enum cmd_words words;
	uint64_t options; /* CMD_OPT_* */
	uint64_t one_of;  /* options of which at least one must be given */
	bool offline;     /* needs no connection */
	bool bare;        /* not even the common options: a gather line */
	/* run before connecting, e.g. to read input; returns an exit status */
	int (*prepare)(struct ctl *, struct cmd_args *);
	int (*exec)(struct ctl *, struct cmd_args *);
	const struct cmd_entry *subs; /* the word after the name picks one */
	size_t nsubs;
};

/* One option: cmd.c's cmd_options[] has a row for each CMD_OPT_ bit. */
struct cmd_option_entry {
	uint64_t flag;
	char short_name; /* 0: long only */
	const char *long_name;
	const char *arg; /* NULL: a flag */
	const char *help;
};

const struct cmd_entry *cmd_find(int argc, char **argv, int *used);
const struct cmd_entry *cmd_commands(size_t *n);
const struct cmd_option_entry *cmd_option_rows(size_t *n);
uint64_t cmd_options_of(const struct cmd_entry *);
const char *cmd_task_name(int argc, char **argv);
int cmd_parse(const struct cmd_entry *, int argc, char **argv,
              struct cmd_args *, struct ctl *);
void cmd_args_clear(struct cmd_args *);
int cmd_split(char *line, char **words, int max, const char **cause);
int cmd_run(struct ctl *, int argc, char **argv);
void cmd_usage(FILE *, const struct cmd_entry *, bool full);
void cmd_usage_all(FILE *, bool full);
int cmd_conn_exit(struct ctl *, enum conn_status);
int cmd_refused(const struct proto_msg *);
int cmd_call(struct ctl *, struct proto_enc *, uint64_t id, enum proto_type,
             struct proto_msg *);
int cmd_help(struct ctl *, struct cmd_args *);

/*
 * A request that may meet a full queue: it is kept, so that with
 * --wait-for-slot it can be sent again after a backoff.
 */
struct cmd_slot {
	struct pbuf frame; /* the request as sent */
	int64_t backoff;   /* microseconds before the next try */
	bool wait;         /* --wait-for-slot */
	bool told;         /* "waiting for a slot" was said */
};

enum conn_status cmd_slot_send(struct ctl *, struct cmd_slot *,
                               struct proto_enc *);
int cmd_slot_refused(struct ctl *, struct cmd_slot *, const struct proto_msg *);
void cmd_slot_free(struct cmd_slot *);

/* ---- cmd_job.c: run, submit, watch, wait, result, cancel ---- */

size_t cmd_job_pack(msgpack_packer *, const struct cmd_args *);
void cmd_job_pack_after(msgpack_packer *, const struct cmd_dep *, uint32_t n);
int cmd_job_state(const struct proto_msg *);
int cmd_job_exit(int state);
bool cmd_job_runs_exec(int argc, char **argv);
int cmd_job_check_cwd(const char *cmd, const struct cmd_args *a);
int cmd_job_command_exit(int own);
int cmd_job_worse(int, int);
void cmd_job_retry_line(struct ctl *, const struct proto_msg *,
                        const char *prefix);

int cmd_job_run(struct ctl *, struct cmd_args *);
int cmd_job_submit(struct ctl *, struct cmd_args *);
int cmd_job_watch(struct ctl *, struct cmd_args *);
int cmd_job_log(struct ctl *, struct cmd_args *);
int cmd_job_wait(struct ctl *, struct cmd_args *);
int cmd_job_result(struct ctl *, struct cmd_args *);
int cmd_job_cancel(struct ctl *, struct cmd_args *);
int cmd_job_clean(struct ctl *, struct cmd_args *);
int cmd_job_restart(struct ctl *, struct cmd_args *);

/* ---- cmd_complete.c: what the shell completes a word to ---- */

/* The hidden command the completion scripts run. */
#define CMD_COMPLETE "__complete"

int cmd_complete(struct ctl *, int argc, char **argv);

/* ---- cmd_gather.c: gather ---- */

int cmd_gather_prepare(struct ctl *, struct cmd_args *);
int cmd_gather(struct ctl *, struct cmd_args *);

/* ---- cmd_info.c: status, ps, tasks, ping, shutdown ---- */

int cmd_info_status(struct ctl *, struct cmd_args *);
int cmd_info_ps_check(struct ctl *, struct cmd_args *);
int cmd_info_ps(struct ctl *, struct cmd_args *);
int cmd_info_tasks(struct ctl *, struct cmd_args *);
int cmd_info_ping(struct ctl *, struct cmd_args *);
int cmd_info_shutdown(struct ctl *, struct cmd_args *);

/* ---- cmd_group.c: group, pause, resume, wait --group ---- */

int cmd_group_list(struct ctl *, struct cmd_args *);
int cmd_group_add(struct ctl *, struct cmd_args *);
int cmd_group_set(struct ctl *, struct cmd_args *);
int cmd_group_pause(struct ctl *, struct cmd_args *);
int cmd_group_resume(struct ctl *, struct cmd_args *);
int cmd_group_remove(struct ctl *, struct cmd_args *);
int cmd_group_hold(struct ctl *, struct cmd_args *);
int cmd_group_release(struct ctl *, struct cmd_args *);
int cmd_group_wait_check(struct ctl *, struct cmd_args *);
int cmd_group_wait(struct ctl *, struct cmd_args *);

/* ---- cmd_ps.c: ps's columns, as a table or as JSON rows ---- */

#define CMD_PS_MAX_COLS 32

/* The columns -o names, in order: indexes into cmd_ps_columns. */
struct cmd_ps_cols {
	size_t n;
	uint8_t col[CMD_PS_MAX_COLS];
};

int cmd_ps_parse(const char *spec, struct cmd_ps_cols *, char *cause,
                 size_t size);
int cmd_ps_print(const struct cmd_ps_cols *, const msgpack_object_array *rows,
                 bool json, uint64_t now);
void cmd_ps_cell(size_t col, const struct proto_msg *row, uint64_t now,
                 char *buf, size_t size);
size_t cmd_ps_find(const char *name, size_t len);
const char *cmd_ps_name(size_t col);
size_t cmd_ps_count(void);
void cmd_ps_quote(char *buf, size_t size, const char *s, size_t len);

/* ---- cmd_pool.c: pool, pool resize ---- */

int cmd_pool_show(struct ctl *, struct cmd_args *);
int cmd_pool_resize(struct ctl *, struct cmd_args *);
int cmd_pool_add(struct ctl *, struct cmd_args *);
int cmd_pool_remove(struct ctl *, struct cmd_args *);

/* ---- render.c: text, tables, JSON and progress ---- */

/* A table of strings, columns padded to their widest cell. */
struct render_table {
	size_t cols;
	size_t rows;
	const char *const *titles;
	const bool *right; /* right-aligned columns */
	char **cell;       /* rows * cols */
	char **below;      /* a line under each row (or NULL entries) */
};

#define RENDER_TABLE_MAX_COLS 16

struct render_progress {
	const char *label; /* instead of "job N" */
	uint64_t job;
	uint64_t done;
	uint64_t total;
	char msg[257];
	int64_t start; /* conn_now() when following began */
	int64_t began; /* conn_now() clock: when the job started; 0: unknown */
	int64_t ahead; /* queued: jobs that start before it; -1: unknown */
	int64_t drawn; /* when the bar was last drawn */
	bool seen;     /* a progress event arrived */
	bool queued;   /* the job is known to wait for its turn */
	bool dirty;    /* news not drawn yet */
	bool visible;  /* a bar is on the screen */
};

const char *render_safe(char *, size_t, const char *, size_t);
const char *render_str(const struct proto_msg *, enum proto_field, char *,
                       size_t);
void render_worker(const struct proto_msg *, char *, size_t);
void render_table_init(struct render_table *, size_t cols, size_t rows,
                       const char *const *titles, const bool *right);
void render_table_set(struct render_table *, size_t row, size_t col,
                      const char *);
void render_table_below(struct render_table *, size_t row, const char *);
void render_table_print(const struct render_table *);
void render_table_free(struct render_table *);
void render_json_line(const msgpack_object *);
void render_value(FILE *, const msgpack_object *);
void render_progress_text(char *, size_t, uint64_t done, uint64_t total);
void render_progress_init(struct render_progress *, uint64_t job,
                          const char *label);
void render_progress_update(struct render_progress *, const struct proto_msg *);
void render_progress_record(struct render_progress *, const struct proto_msg *);
void render_progress_format(const struct render_progress *, int64_t now, char *,
                            size_t);
void render_progress_line(const struct render_progress *);
int64_t render_progress_due(const struct render_progress *);
void render_progress_draw(struct render_progress *);
void render_progress_clear(struct render_progress *);
void render_progress_reset(struct render_progress *);
int render_output(const struct proto_msg *, const char *prefix, bool bol[2]);
void render_line_value(char *, size_t, const msgpack_object *);
void render_time(char *, size_t, uint64_t usec);
void render_duration(char *, size_t, uint64_t usec);
void render_age(char *, size_t, uint64_t usec);

#endif
