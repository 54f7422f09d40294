/*
 * store.c -- the job store: one SQLite database in WAL mode, DIR/jobs.db,
 * with a journal in front of it, DIR/jobs.journal (journal.c).
 *
 * Rows are put into an open batch during a loop pass.  At its end the
 * batch is appended to the journal, and the replies that wait for it go
 * out (group commit).  The journaled batches wait in pending, and go to
 * the store's thread chained, to be written in one SQLite transaction
 * while the loop goes on.  One chain is written at a time, so the writing
 * connection is never used by two threads at once; the loop writes
 * itself only to make SQLite current for a read (store_sync) and at the
 * end.  Commits do not checkpoint: the thread does, once the WAL has
 * grown, after it has handed the chain it wrote back (about 50 ms for
 * 8,192 pages here); a chain that comes meanwhile waits for the thread.
 *
 * The loop reads committed rows through a connection of its own.
 */
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "journal.h"
#include "log.h"
#include "loop.h"
#include "proto.h"
#include "store.h"

#define STORE_APP_ID       0x636f6e63 /* "conc" */
#define STORE_SCHEMA       4
#define STORE_DELAY_US     300   /* a batch waits for new jobs to end */
#define STORE_LAZY_US      10000 /* a batch of ends alone waits for more */
#define STORE_LAZY_ROWS    512
#define STORE_LOCK_MS      2000      /* for a concd killed a moment ago */
#define STORE_SPARE_RECS   (1 << 18) /* a batch kept for the next: at most */
#define STORE_SPARE_BYTES  (1 << 20)
#define STORE_WAL_PAGES    8192  /* a checkpoint once the WAL is this long */
#define STORE_TRIM_EVERY   10    /* seconds between age sweeps */
#define STORE_TRIM_MAX     4096  /* rows a batch deletes, at most */
#define STORE_TRIM_GAP_US  50000 /* between batches that delete */
#define STORE_RESERVE      (4 << 20) /* bytes kept free: see store_reserve */
#define STORE_BUSY_MS      5000      /* the thread waits this long for a lock */
#define STORE_RETRY_MIN    100       /* ms after a failed commit */
#define STORE_RETRY_MAX    5000
#define STORE_FEED_US      10000 /* journaled batches wait for more */
#define STORE_FEED_ROWS    512   /* or go to SQLite once this many */
#define STORE_FEED_BATCHES 64
#define STORE_BACKLOG_ROWS 262144 /* journaled, SQLite behind: then wait */

/*
 * A row of a batch, as row_get reads it from the batch's records: its
 * strings and blobs are offsets into the batch's data.
 */
struct brow {
	struct store_row r;                      /* pointers unset */
	uint32_t task, args, error, msg, result; /* offsets; UINT32_MAX: none */
	uint32_t task_len, error_len, msg_len;
	uint32_t x; /* its struct bextra; UINT32_MAX: none */
};

/*
 * A job's extra in a batch: its values, and its strings as offsets.  The
 * journal holds it as it is, so its layout is its own, not struct
 * job_extra's, which may change: the one of schema 3, when it was that
 * struct (pointers unset) and offsets, kept so that a journal left by
 * that concd is read back.  A change here changes STORE_LAYOUT.
 */
struct bextra {
	uint64_t unset[6]; /* were cwd, env, command, group, label, after */
	uint32_t env_len, nafter;
	int64_t priority;
	uint64_t at, mem, pids, restart_of, cause;
	uint32_t cpus;
	int32_t exit, signal;
	uint64_t slurm_id;
	uint64_t unset_node;
	uint8_t stdin_mode;
	bool after_any, held;
	/* job_extra's umask; in a record of schema 3, garbage: see replay */
	int32_t umask;
	uint32_t cwd, env, command, group, label, after,
	    node;           /* or UINT32_MAX */
	uint32_t after_len; /* of after, a text of ids: "3,4" */
};
/*
 * The values struct bextra and struct job_extra share, by name, copied
 * one way into a batch and the other way out (umask, of its own type
 * here, apart).
 */
/* clang-format off */
#define BEXTRA_VALUES(X)                                                       \
	X(env_len) X(nafter) X(priority) X(at) X(mem) X(pids) X(restart_of)    \
	X(cause) X(cpus) X(exit) X(signal) X(slurm_id) X(stdin_mode)           \
	X(after_any) X(held)
/* clang-format on */
_Static_assert(sizeof(struct bextra) == 176 &&
                   offsetof(struct bextra, slurm_id) == 120 &&
                   offsetof(struct bextra, stdin_mode) == 136 &&
                   offsetof(struct bextra, cwd) == 144,
               "struct bextra is the journal's: its layout stays");

/* A change to a group in a batch. */
struct bgroup {
	struct store_group g; /* name unset */
	uint32_t name;
	bool del;
};

/* What a batch's transaction deletes for retention. */
struct trim_order {
	uint64_t excess;     /* this many of the oldest finished rows */
	uint64_t older_than; /* those finished before this time */
};

struct batch {
	uint64_t seq;
	struct trim_order trim;
	struct pbuf rows; /* n records: see row_put */
	size_t n;
	struct bgroup *groups;
	size_t ngroups, capgroups;
	struct pbuf data;
	uint64_t next_id; /* ids below it are given out or reserved */
	size_t finals;    /* rows that reach a final state */
	size_t inserts;   /* new rows */
	bool ok;
	bool reserve_used; /* the disk was full: the reserve let it through */
	char cause[160];
	/* ids the thread deleted for retention, for the forgotten hook */
	uint64_t *gone;
	size_t ngone;
	/* with a journal: in it, its replies gone; the next batch for SQLite */
	bool journaled;
	bool deletes; /* a journal's record of gone ids, replayed */
	struct batch *next;
};

enum {
	ST_INSERT,
	ST_UPDATE,
	ST_EXTRA, /* a job's extra, whole, after its row */
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_NEXT_ID,
	ST_SET_NEXT_ID,
	ST_GROUP_PUT,
	ST_GROUP_DEL,
	ST_INSERT_MANY,  /* STORE_MANY new rows without extras at once */
	ST_REPLACE_MANY, /* STORE_MANY rows of jobs written before, whole */
	ST_REPLACE,      /* a new row again, from the journal */
	ST_DELETE,       /* a row retention deleted, from the journal */
	ST_COUNT
};

/*
 * New rows go STORE_MANY to a statement: SQLite's work per row is then a
 * fifth smaller (1.05 against 1.33 µs here, rows of this table).  So do
 * the rows of jobs written before (a job that waited in a queue, then
 * ended), whole, replacing theirs: 1.3-1.6 against 1.9-2.1 µs a row for
 * an UPDATE each.  A replaced row keeps its extra: REPLACE fires no
 * delete trigger while recursive_triggers is off, as it is by default.
 */
#define STORE_MANY 16
#define STORE_COLS 27 /* the columns of jobs, ?1 to ?27 */

#define STORE_INSERT "INSERT" STORE_INSERT_INTO
#define STORE_INSERT_INTO                                                      \
	" INTO jobs(id, task, args, uid, requested, exec, daemon, "            \
	"fresh, timeout_ms, retries, retry_delay_ms, attempt, state, error, "  \
	"message, result, submitted, started, finished, worker, tid, served, " \
	"done, total, msg, dropped, runtime"
#define STORE_INSERT_VALUES                                                    \
	"?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, "   \
	"?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27"
#define STORE_UPDATE                                                           \
	"UPDATE jobs SET exec = ?6, fresh = ?8, attempt = ?12, state = ?13, "  \
	"error = ?14, message = ?15, result = ?16, started = ?18, "            \
	"finished = ?19, worker = ?20, tid = ?21, served = ?22, done = ?23, "  \
	"total = ?24, msg = ?25, dropped = ?26, runtime = ?27"

/* STORE_MANY rows of STORE_COLS values, numbered in order by SQLite */
#define STORE_ROW_Q "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
#define STORE_ROWS_4_Q                                                         \
	STORE_ROW_Q "," STORE_ROW_Q "," STORE_ROW_Q "," STORE_ROW_Q
#define STORE_ROWS_16_Q                                                        \
	STORE_ROWS_4_Q "," STORE_ROWS_4_Q "," STORE_ROWS_4_Q "," STORE_ROWS_4_Q

static const char *const store_sql[ST_COUNT] = {
    [ST_INSERT] = STORE_INSERT ") VALUES (" STORE_INSERT_VALUES ")",
    [ST_UPDATE] = STORE_UPDATE " WHERE id = ?1",
    [ST_EXTRA] =
        "INSERT OR REPLACE INTO extra(id, cwd, env, command, grp, label, "
        "after, priority, at, mem, pids, restart_of, cpus, stdin, after_any, "
        "held, cause, exit, signal, slurm, node, umask) VALUES (?1, ?27, "
        "?28, ?29, ?30, ?31, ?32, ?33, ?34, ?35, ?36, ?37, ?38, ?39, ?40, "
        "?41, ?42, ?43, ?44, ?45, ?46, ?47)",
    [ST_BEGIN] = "BEGIN",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_NEXT_ID] = "UPDATE meta SET value = max(value, ?1) "
                   "WHERE key = 'next_id'",
    [ST_SET_NEXT_ID] = "UPDATE meta SET value = ?1 WHERE key = 'next_id'",
    [ST_GROUP_PUT] = "INSERT OR REPLACE INTO groups(name, parallel, paused, "
                     "uid, mem, pids) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_GROUP_DEL] = "DELETE FROM groups WHERE name = ?1",
    [ST_INSERT_MANY] = STORE_INSERT ") VALUES " STORE_ROWS_16_Q,
    [ST_REPLACE_MANY] =
        "INSERT OR REPLACE" STORE_INSERT_INTO ") VALUES " STORE_ROWS_16_Q,
    [ST_REPLACE] = "INSERT OR REPLACE" STORE_INSERT_INTO
                   ") VALUES (" STORE_INSERT_VALUES ")",
    [ST_DELETE] = "DELETE FROM jobs WHERE id = ?1",
};

static struct {
	char *path;
	sqlite3 *db;  /* writes: the thread's, or the loop's (store_sync) */
	sqlite3 *rdb; /* reads, the loop's */
	sqlite3_stmt *st[ST_COUNT];
	sqlite3_stmt *get; /* the loop's: one row by id */
	uint64_t next_id;
	uint64_t reserved;  /* ids below it are committed as given out */
	uint64_t reserving; /* asked for, maybe not yet committed */
	char instance[40];
	uid_t self;
	int lock_fd;            /* flock'd: the directory is this concd's */
	bool memory;            /* no store: rows go to the audit trail only */
	char *reserve;          /* DIR/reserve */
	atomic_bool reserve_ok; /* it is there, to be given up */
	bool on;

	/*
	 * The journal (journal.c), if the store has one: the loop appends
	 * each batch to it, and the replies that wait for the batch go out;
	 * the batches wait in pending, oldest first, to be fed to SQLite.
	 */
	struct journal *journal;
	struct batch *pending, *pending_last;
	size_t npending, npending_rows;
	struct event *feed_ev;
	bool feed_due;    /* pending goes to the thread, however small */
	bool sql_blocked; /* SQLite failed pending: wait for the retry */
	bool replaying;   /* at the start: new rows may be there already */

	/* the loop's */
	struct batch *open; /* rows put in this pass */
	int nflight;        /* chains with the thread: 0 or 1 */
	size_t carried;     /* rows at the head of open from failed batches */
	uint64_t seq;       /* the open batch's */
	bool marked;
	struct event *commit_ev, *done_ev, *retry_ev;
	unsigned retry_ms;
	bool blocked; /* the last batch failed: wait for the retry */
	bool syncing; /* store_sync: commit on the loop, whatever the size */
	bool hurry;   /* store_behind: no commit delay, no lazy batch */
	uint64_t journaled, written; /* the last batches journaled, in SQLite */
	void (*written_hook)(uint64_t);
	bool want; /* a reply waits for the open batch (store_want) */
	char failing[200];
	size_t (*collect)(bool);
	enum { DELAY_NONE, DELAY_WAITING, DELAY_OVER } delay; /* see commit */
	struct event *delay_ev;
	struct event *lazy_ev; /* see store_lazy */
	bool lazy_over;
	void (*committed[2])(uint64_t, bool);
	void (*forgotten)(uint64_t);
	uint64_t (*next_hook)(void); /* the next id the loop gives out */

	/* retention, counted by the loop, done by the thread */
	size_t max_finished;
	uint64_t ttl_us;
	uint64_t finals;        /* final rows in the store, about */
	bool sweep_due;         /* the age sweep's time has come */
	bool trim_due;          /* a batch is owed to retention: see trim_cb */
	uint64_t trim_next;     /* no deletes before this (monotonic µs) */
	struct event *sweep_ev; /* every STORE_TRIM_EVERY seconds */
	struct event *trim_ev;  /* at trim_next, for what retention owes */

	/* the thread's, under lock */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct batch *todo, *done; /* a chain (its first batch), or NULL */
	bool quit, started;
	int wal_pages; /* from the WAL hook: the writing thread's */
	/* the thread checkpoints: the loop must not write meanwhile */
	atomic_bool checkpointing;
} store = {.self = (uid_t)-1, .lock_fd = -1};

bool
store_enabled(void)
{
	return store.on;
}

/* SQLite takes writes: it has not refused the last (locked, full). */
bool
store_writable(void)
{
	return store.on && !store.sql_blocked && !store.blocked;
}

/* Rows wanted: for the store, or (--state-dir none) the audit trail. */
bool
store_wanted(void)
{
	return store.on || store.memory;
}

uint64_t
store_next_id(void)
{
	return store.next_id;
}

const char *
store_path(void)
{
	return store.path;
}

const char *
store_instance(void)
{
	return store.instance;
}

uint64_t
store_seq(void)
{
	return store.seq;
}

const char *
store_failing(void)
{
	return store.failing[0] != '\0' ? store.failing : NULL;
}

/* ---- opening ---- */

/*
 * A statement of store_sql, prepared at its first use by whichever thread
 * writes (one at a time); NULL on an error, which sqlite3_errmsg says.
 */
static sqlite3_stmt *
store_stmt(int which)
{
	if (store.st[which] == NULL &&
	    sqlite3_prepare_v3(store.db, store_sql[which], -1,
	                       SQLITE_PREPARE_PERSISTENT, &store.st[which],
	                       NULL) != SQLITE_OK)
		store.st[which] = NULL;
	return store.st[which];
}

static int
store_exec(sqlite3 *db, const char *sql, char *cause, size_t len)
{
	char *err = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &err) == SQLITE_OK)
		return 0;
	snprintf(cause, len, "%s: %s", store.path,
	         err != NULL ? err : sqlite3_errmsg(db));
	sqlite3_free(err);
	return -1;
}

static int
store_int(sqlite3 *db, const char *sql, int64_t *v)
{
	sqlite3_stmt *s;
	int rc;

	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
		return -1;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

/*
 * The schema.  States are words, times µs since the epoch, so that
 * `sqlite3 jobs.db` answers questions without concd; the view history
 * gives the times as dates.  The indexes leave out the rows most queries
 * do not look for: succeeded jobs (the bulk, found by walking ids down),
 * and the daemon's own user's jobs.  Schema 2 added what a job asks
 * beyond its task (the caller's context, the queue's options) in a table
 * of its own, extra, with a row for the jobs that ask for any of it: a
 * plain job's row costs what it did.  And the queue's groups.  Schema 3
 * added where a job ran on Slurm; schema 4 how long a job ran, runtime,
 * in µs of the monotonic clock (finished - started is the wall clock's,
 * which a step of NTP or date -s moves in between), and the umask an exec
 * job's command is given.  A store of an older schema is brought up to
 * this one at start.
 */
#define STORE_EXTRA                                                            \
	"CREATE TABLE extra(id INTEGER PRIMARY KEY, cwd TEXT, env BLOB, "      \
	"command TEXT, grp TEXT, label TEXT, after TEXT, priority INTEGER, "   \
	"at INTEGER, mem INTEGER, pids INTEGER, restart_of INTEGER, "          \
	"cpus INTEGER, stdin TEXT, after_any INTEGER, held INTEGER, "          \
	"cause INTEGER, exit INTEGER, signal INTEGER, slurm INTEGER, "         \
	"node TEXT, umask INTEGER);"                                           \
	"CREATE TRIGGER extra_gone AFTER DELETE ON jobs BEGIN "                \
	"DELETE FROM extra WHERE id = old.id; END;"
#define STORE_GROUPS                                                           \
	"CREATE TABLE groups(name TEXT PRIMARY KEY, parallel INTEGER NOT "     \
	"NULL, paused INTEGER NOT NULL, uid INTEGER NOT NULL, mem INTEGER, "   \
	"pids INTEGER) WITHOUT ROWID;"
#define STORE_VIEW                                                             \
	"CREATE VIEW history AS SELECT id, task, uid, exec, state, error,"     \
	" message, attempt,"                                                   \
	" datetime(submitted / 1000000, 'unixepoch') AS submitted_at,"         \
	" datetime(started / 1000000, 'unixepoch') AS started_at,"             \
	" datetime(finished / 1000000, 'unixepoch') AS finished_at,"           \
	" coalesce(runtime, finished - started) / 1e6 AS seconds,"             \
	" coalesce(grp, 'default') AS group_name, label, command, cwd, exit,"  \
	" signal, cause, restart_of, slurm, node"                              \
	" FROM jobs LEFT JOIN extra USING (id);"

/* clang-format off */
static const char store_schema[] =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
    "CREATE TABLE jobs("
    " id INTEGER PRIMARY KEY, task TEXT NOT NULL, args BLOB,"
    " uid INTEGER NOT NULL, requested TEXT NOT NULL, exec TEXT NOT NULL,"
    " daemon INTEGER NOT NULL, fresh INTEGER NOT NULL,"
    " timeout_ms INTEGER NOT NULL, retries INTEGER NOT NULL,"
    " retry_delay_ms INTEGER NOT NULL, attempt INTEGER NOT NULL,"
    " state TEXT NOT NULL, error TEXT, message TEXT, result BLOB,"
    " submitted INTEGER NOT NULL, started INTEGER, finished INTEGER,"
    " worker INTEGER, tid INTEGER, served INTEGER, done INTEGER,"
    " total INTEGER, msg TEXT, dropped INTEGER, runtime INTEGER);"
    STORE_EXTRA
    STORE_GROUPS
    "CREATE INDEX jobs_state ON jobs(state, id)"
    " WHERE state <> 'succeeded';"
    STORE_VIEW;

/*
 * Schema 1, 2 or 3 to 4, in one transaction.  3 to 4: how long a job ran
 * by the monotonic clock, and the umask its command was given.
 */
#define STORE_TO_4                                                             \
    "ALTER TABLE jobs ADD COLUMN runtime INTEGER;"                             \
    "DROP VIEW IF EXISTS history;"                                             \
    STORE_VIEW                                                                 \
    "PRAGMA user_version = 4; COMMIT"
static const char store_migrate_1[] =
    "BEGIN IMMEDIATE;"
    STORE_EXTRA
    STORE_GROUPS
    STORE_TO_4;
/* 2 to 3: where a job ran on Slurm. */
static const char store_migrate_2[] =
    "BEGIN IMMEDIATE;"
    "ALTER TABLE extra ADD COLUMN slurm INTEGER;"
    "ALTER TABLE extra ADD COLUMN node TEXT;"
    "ALTER TABLE extra ADD COLUMN umask INTEGER;"
    STORE_TO_4;
static const char store_migrate_3[] =
    "BEGIN IMMEDIATE;"
    "ALTER TABLE extra ADD COLUMN umask INTEGER;"
    STORE_TO_4;
/* clang-format on */

static int
store_create(sqlite3 *db, char *cause, size_t len)
{
	char sql[512];

	if (store_exec(db, "BEGIN IMMEDIATE", cause, len) < 0)
		return -1;
	snprintf(sql, sizeof(sql),
	         "PRAGMA application_id = %d; PRAGMA user_version = %d;"
	         "CREATE INDEX jobs_uid ON jobs(uid, id) WHERE uid <> %u;"
	         "INSERT INTO meta VALUES ('next_id', 1),"
	         " ('instance', lower(hex(randomblob(16)))),"
	         " ('self_uid', %u);"
	         "COMMIT",
	         STORE_APP_ID, STORE_SCHEMA, (unsigned)store.self,
	         (unsigned)store.self);
	if (store_exec(db, store_schema, cause, len) < 0 ||
	    store_exec(db, sql, cause, len) < 0) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return 0;
}

/* An existing file: is it a store of ours, of this schema, whole? */
static int
store_check(sqlite3 *db, char *cause, size_t len)
{
	int64_t app = 0, version = 0, tables = 0;

	if (store_int(db, "PRAGMA application_id", &app) < 0 ||
	    store_int(db, "PRAGMA user_version", &version) < 0 ||
	    store_int(db, "SELECT count(*) FROM sqlite_master", &tables) < 0) {
		snprintf(cause, len,
		         "%s: not a concd job store, or a damaged one: %s "
		         "(move it away to start with an empty store)",
		         store.path, sqlite3_errmsg(db));
		return -1;
	}
	if (tables == 0 && app == 0)
		return 1; /* empty: make it */
	if (app != STORE_APP_ID) {
		snprintf(cause, len,
		         "%s: not a concd job store (application id %#llx); "
		         "move it away or choose another --state-dir",
		         store.path, (unsigned long long)app);
		return -1;
	}
	if (version >= 1 && version <= 3) {
		if (store_exec(db,
		               version == 1   ? store_migrate_1
		               : version == 2 ? store_migrate_2
		                              : store_migrate_3,
		               cause, len) < 0) {
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			return -1;
		}
		log_info("%s: job store brought from schema %lld to %d",
		         store.path, (long long)version, STORE_SCHEMA);
		version = STORE_SCHEMA;
	}
	if (version != STORE_SCHEMA) {
		snprintf(cause, len,
		         "%s: job store of schema %lld, this concd reads "
		         "schema %d",
		         store.path, (long long)version, STORE_SCHEMA);
		return -1;
	}
	return 0;
}

static int
store_wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
	(void)arg;
	(void)db;
	(void)name;
	store.wal_pages = pages;
	return SQLITE_OK;
}

static int
store_load_meta(char *cause, size_t len)
{
	sqlite3_stmt *s;
	int64_t v = 0;
	int rc;

	if (store_int(store.db, "SELECT value FROM meta WHERE key = 'next_id'",
	              &v) < 0 ||
	    v < 1) {
		snprintf(cause, len, "%s: damaged job store: no next id",
		         store.path);
		return -1;
	}
	store.next_id = store.reserved = store.reserving = (uint64_t)v;
	/* an id inserted but not counted (never, but cheap to be sure) */
	if (store_int(store.db, "SELECT coalesce(max(id), 0) FROM jobs", &v) ==
	        0 &&
	    (uint64_t)v >= store.next_id)
		store.next_id = (uint64_t)v + 1;
	if (sqlite3_prepare_v2(store.db,
	                       "SELECT value FROM meta WHERE key = 'instance'",
	                       -1, &s, NULL) != SQLITE_OK)
		return -1;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW && sqlite3_column_text(s, 0) != NULL)
		snprintf(store.instance, sizeof(store.instance), "%s",
		         (const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	if (store_int(store.db,
	              "SELECT count(*) FROM jobs WHERE state NOT IN "
	              "('queued', 'running')",
	              &v) == 0)
		store.finals = (uint64_t)v;
	return 0;
}

/*
 * A full disk.  concd keeps STORE_RESERVE bytes of the state directory
 * in a file of its own; when a commit finds the disk full, the file goes
 * and the commit is tried again in the room it leaves, so that a job
 * that was submitted is still accepted, and the jobs already accepted
 * go on being written.  New jobs are refused until the file can be made
 * again: the disk has room again.
 */
static int
store_reserve_make(void)
{
	int fd, rc;

	if ((fd = open(store.reserve, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) <
	    0)
		return -1;
	rc = posix_fallocate(fd, 0, STORE_RESERVE);
	if (close(fd) < 0 || rc != 0) {
		unlink(store.reserve);
		return -1;
	}
	atomic_store(&store.reserve_ok, true);
	return 0;
}

/*
 * One concd per state directory: a second one would run the first one's
 * queued jobs again and, at its start, kill its commands.  The lock is
 * held until concd exits; the file says by whom.
 */
static int
store_lock(const char *dir, char *cause, size_t len)
{
	const struct timespec tick = {0, 10 * 1000 * 1000};
	char path[PATH_MAX], pid[32] = "";
	int fd, waited;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/concd.lock", dir);
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
		snprintf(cause, len, "%s: %s", path, strerror(errno));
		return -1;
	}
	/*
	 * A concd killed a moment ago, or a command it was starting, may hold
	 * the lock a little longer than its socket: wait for it, bounded.
	 */
	for (waited = 0; flock(fd, LOCK_EX | LOCK_NB) < 0; waited += 10) {
		if (errno == EWOULDBLOCK && waited < STORE_LOCK_MS) {
			nanosleep(&tick, NULL);
			continue;
		}
		n = pread(fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		snprintf(cause, len,
		         "state directory %s is in use by another concd%s%s%s "
		         "(--state-dir)",
		         dir, pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "");
		close(fd);
		return -1;
	}
	n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n)
		log_warn("%s", path);
	store.lock_fd = fd;
	return 0;
}

static int store_replay(const char *dir, bool fsync, char *cause, size_t len);

int
store_open(const char *dir, bool fsync, char *cause, size_t len)
{
	char pragmas[256];
	int rc, i;

	if (dir == NULL)
		return 0;
	/* no allocation statistics: they take a global lock per malloc */
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	sqlite3_config(SQLITE_CONFIG_LOOKASIDE, 128, 64);
	sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0, 0);
	store.self = geteuid();
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(cause, len, "state directory %s: %s", dir,
		         strerror(errno));
		return -1;
	}
	if (store_lock(dir, cause, len) < 0)
		return -1;
	if (asprintf(&store.reserve, "%s/reserve", dir) < 0)
		fatal("asprintf");
	if (store_reserve_make() < 0)
		log_warnx("%s: cannot keep %d MiB in reserve: a full disk will "
		          "stop new jobs without notice",
		          store.reserve, STORE_RESERVE >> 20);
	if (asprintf(&store.path, "%s/jobs.db", dir) < 0)
		fatal("asprintf");
	rc = sqlite3_open_v2(store.path, &store.db,
	                     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
	                         SQLITE_OPEN_NOMUTEX,
	                     NULL);
	if (rc != SQLITE_OK) {
		snprintf(cause, len, "%s: %s", store.path,
		         store.db != NULL ? sqlite3_errmsg(store.db)
		                          : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_busy_timeout(store.db, STORE_BUSY_MS);
	/* the file is the daemon's: its users read jobs through concd */
	(void)chmod(store.path, 0600);
	if ((rc = store_check(store.db, cause, len)) < 0)
		goto fail;
	snprintf(pragmas, sizeof(pragmas),
	         "PRAGMA journal_mode = WAL; PRAGMA synchronous = %s;"
	         "PRAGMA wal_autocheckpoint = 0; PRAGMA cache_size = -2048;"
	         "PRAGMA foreign_keys = OFF",
	         fsync ? "FULL" : "NORMAL");
	if (store_exec(store.db, pragmas, cause, len) < 0)
		goto fail;
	if (rc == 1 && store_create(store.db, cause, len) < 0)
		goto fail;
	/* a store made just now has nothing to check */
	if ((rc != 1 &&
	     store_exec(store.db, "PRAGMA quick_check(1)", cause, len) < 0) ||
	    store_replay(dir, fsync, cause, len) < 0 ||
	    store_load_meta(cause, len) < 0)
		goto fail;
	/*
	 * Every statement is tried now, so that a store this concd cannot
	 * write is an error at start; each is made again at its first use, so
	 * that an idle concd does not keep them.
	 */
	for (i = 0; i < ST_COUNT; i++) {
		if (store_stmt(i) == NULL) {
			snprintf(cause, len, "%s: %s", store.path,
			         sqlite3_errmsg(store.db));
			goto fail;
		}
		sqlite3_finalize(store.st[i]);
		store.st[i] = NULL;
	}
	sqlite3_wal_hook(store.db, store_wal_hook, NULL);
	if (sqlite3_open_v2(store.path, &store.rdb,
	                    SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
	                    NULL) != SQLITE_OK) {
		snprintf(cause, len, "%s: %s", store.path,
		         sqlite3_errmsg(store.rdb));
		goto fail;
	}
	sqlite3_busy_timeout(store.rdb, 1000);
	/* the reader's queries are few and small: a small cache, no lookaside
	 */
	sqlite3_db_config(store.rdb, SQLITE_DBCONFIG_LOOKASIDE, NULL, 0, 0);
	(void)store_exec(store.rdb, "PRAGMA cache_size = -256", cause, len);
	/* the pages the checks read are not needed at rest */
	sqlite3_db_release_memory(store.db);
	sqlite3_db_release_memory(store.rdb);
	malloc_trim(0);
	store.on = true;
	store.seq = 1;
	return 0;
fail:
	journal_close(store.journal, false);
	store.journal = NULL;
	for (i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(store.st[i]);
	memset(store.st, 0, sizeof(store.st));
	sqlite3_close(store.db);
	sqlite3_close(store.rdb);
	store.db = store.rdb = NULL;
	free(store.path);
	store.path = NULL;
	close(store.lock_fd);
	store.lock_fd = -1;
	return -1;
}

/* ---- rows out of SQLite ---- */

#define STORE_JOB_COLUMNS                                                      \
	"jobs.id, task, args, uid, requested, exec, daemon, fresh, "           \
	"timeout_ms, retries, retry_delay_ms, attempt, state, error, "         \
	"message, result, submitted, started, finished, worker, tid, served, " \
	"done, total, msg, dropped, runtime"
#define STORE_EXTRA_COLUMNS                                                    \
	"cwd, env, command, grp, label, after, priority, at, mem, pids, "      \
	"restart_of, cpus, stdin, after_any, held, cause, exit, signal, "      \
	"slurm, node, umask"
static const char store_columns[] = STORE_JOB_COLUMNS ", " STORE_EXTRA_COLUMNS;
/* Where a row comes from: its job, and its extra if it has one. */
#define STORE_FROM " FROM jobs LEFT JOIN extra ON extra.id = jobs.id"

/* Where a read row's extra lives while its callback runs. */
struct row_room {
	struct job_extra x;
	uint64_t after[1024];
};

static int
store_word(const unsigned char *w, const char *const *table, int n)
{
	int i;

	for (i = 0; w != NULL && i < n; i++)
		if (strcmp((const char *)w, table[i]) == 0)
			return i;
	return 0;
}

static int
store_error_code(const unsigned char *w)
{
	int i;

	for (i = 0; w != NULL && i < PE_COUNT; i++)
		if (strcmp((const char *)w, proto_errors[i].name) == 0)
			return i;
	return w != NULL ? PE_INTERNAL : PE_NONE;
}

static char *
column_text(sqlite3_stmt *s, int i)
{
	return (char *)sqlite3_column_text(s, i);
}

/* The ids of an after text, "3,4" (the column, and a batch's copy). */
static uint32_t
store_after_ids(const char *text, uint64_t *ids, uint32_t max)
{
	uint32_t n = 0;
	char *end;

	while (text != NULL && *text != '\0' && n < max) {
		ids[n++] = strtoull(text, &end, 10);
		if (end == text || *end != ',')
			break;
		text = end + 1;
	}
	return n;
}

static int64_t
column_or(sqlite3_stmt *s, int i, int64_t none)
{
	return sqlite3_column_type(s, i) == SQLITE_NULL
	           ? none
	           : sqlite3_column_int64(s, i);
}

/*
 * A job's extra from columns k to k + 19 of s (those of store_extra):
 * NULL all of them for a job that asked none of it.
 */
static void
store_read_extra(sqlite3_stmt *s, int k, struct store_row *r,
                 struct row_room *room)
{
	struct job_extra *x = &room->x;
	const char *p;
	int i;

	for (i = k; i < k + 21; i++)
		if (sqlite3_column_type(s, i) != SQLITE_NULL)
			break;
	if (i == k + 21)
		return;
	memset(x, 0, sizeof(*x));
	x->cwd = column_text(s, k);
	if (sqlite3_column_type(s, k + 1) != SQLITE_NULL) {
		x->env = (char *)sqlite3_column_blob(s, k + 1);
		x->env_len = (uint32_t)sqlite3_column_bytes(s, k + 1);
	}
	x->command = column_text(s, k + 2);
	x->group = column_text(s, k + 3);
	x->label = column_text(s, k + 4);
	x->after = room->after;
	x->nafter = store_after_ids((const char *)sqlite3_column_text(s, k + 5),
	                            room->after, 1024);
	x->priority = column_or(s, k + 6, 0);
	x->at = (uint64_t)column_or(s, k + 7, 0);
	x->mem = (uint64_t)column_or(s, k + 8, 0);
	x->pids = (uint64_t)column_or(s, k + 9, 0);
	x->restart_of = (uint64_t)column_or(s, k + 10, 0);
	x->cpus = (uint32_t)column_or(s, k + 11, 0);
	p = (const char *)sqlite3_column_text(s, k + 12);
	x->stdin_mode = p != NULL && strcmp(p, "stream") == 0 ? JOB_STDIN_STREAM
	                                                      : JOB_STDIN_NULL;
	x->after_any = column_or(s, k + 13, 0) != 0;
	x->held = column_or(s, k + 14, 0) != 0;
	x->cause = (uint64_t)column_or(s, k + 15, 0);
	x->exit = (int32_t)column_or(s, k + 16, -1);
	x->signal = (int32_t)column_or(s, k + 17, -1);
	x->slurm_id = (uint64_t)column_or(s, k + 18, 0);
	x->node = column_text(s, k + 19);
	x->umask = (uint16_t)(column_or(s, k + 20, -1) + 1);
	r->x = x;
}

/* Columns 0 to 26 of s, a job's row: its pointers into s's memory. */
static void
store_read_job(sqlite3_stmt *s, struct store_row *r)
{
	memset(r, 0, sizeof(*r));
	r->id = (uint64_t)sqlite3_column_int64(s, 0);
	r->task = (const char *)sqlite3_column_text(s, 1);
	if (r->task == NULL)
		r->task = "";
	r->args = sqlite3_column_blob(s, 2);
	r->args_len = (uint32_t)sqlite3_column_bytes(s, 2);
	r->uid = (uid_t)sqlite3_column_int64(s, 3);
	r->requested = (uint8_t)store_word(sqlite3_column_text(s, 4),
	                                   proto_execs, PX_COUNT);
	r->exec = (uint8_t)store_word(sqlite3_column_text(s, 5), proto_execs,
	                              PX_COUNT);
	r->daemon = sqlite3_column_int(s, 6) != 0;
	r->fresh = sqlite3_column_int(s, 7) != 0;
	r->timeout_ms = (uint64_t)sqlite3_column_int64(s, 8);
	r->retries = (uint8_t)sqlite3_column_int(s, 9);
	r->retry_delay_ms = (uint32_t)sqlite3_column_int64(s, 10);
	r->attempt = (uint8_t)sqlite3_column_int(s, 11);
	r->state = (uint8_t)store_word(sqlite3_column_text(s, 12), proto_states,
	                               PS_COUNT);
	r->err = (uint8_t)store_error_code(sqlite3_column_text(s, 13));
	r->error = (const char *)sqlite3_column_text(s, 14);
	if (sqlite3_column_type(s, 15) != SQLITE_NULL) {
		r->result = sqlite3_column_blob(s, 15);
		r->result_len = (uint32_t)sqlite3_column_bytes(s, 15);
	}
	r->submitted = (uint64_t)sqlite3_column_int64(s, 16);
	r->started = (uint64_t)sqlite3_column_int64(s, 17);
	r->finished = (uint64_t)sqlite3_column_int64(s, 18);
	r->worker = (int32_t)sqlite3_column_int(s, 19);
	r->tid = (pid_t)sqlite3_column_int64(s, 20);
	r->served = (uint32_t)sqlite3_column_int64(s, 21);
	r->done = (uint64_t)sqlite3_column_int64(s, 22);
	r->total = (uint64_t)sqlite3_column_int64(s, 23);
	r->msg = (const char *)sqlite3_column_text(s, 24);
	r->dropped = (uint64_t)sqlite3_column_int64(s, 25);
	if (sqlite3_column_type(s, 26) != SQLITE_NULL)
		r->runtime = (uint64_t)sqlite3_column_int64(s, 26);
	else if (r->finished > r->started && r->started != 0)
		r->runtime =
		    r->finished - r->started; /* of schema 3 or before */
}

/* A row of store_columns, its pointers into s's memory and room. */
static void
store_read_row(sqlite3_stmt *s, struct store_row *r, struct row_room *room)
{
	store_read_job(s, r);
	store_read_extra(s, 27, r, room);
}

static int
store_walk(sqlite3 *db, sqlite3_stmt *s,
           void (*fn)(const struct store_row *, void *), void *arg)
{
	static struct row_room room;
	struct store_row r;
	int rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		store_read_row(s, &r, &room);
		fn(&r, arg);
	}
	if (rc != SQLITE_DONE)
		log_warnx("%s: reading: %s", store.path, sqlite3_errmsg(db));
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

/*
 * The live jobs at the start, in the order of their ids.  Their rows and
 * the extras of the few that have one are two walks, merged here: the
 * join would look up every job's extra (a fourth of the time a million
 * queued jobs take to be read).
 */
int
store_each_live(void (*fn)(const struct store_row *, void *), void *arg)
{
	static struct row_room room;
	sqlite3_stmt *s, *x;
	struct store_row r;
	int rc, xrc;

	if (!store.on)
		return 0;
	if (sqlite3_prepare_v2(store.db,
	                       "SELECT " STORE_JOB_COLUMNS
	                       " FROM jobs WHERE state IN ('queued', "
	                       "'running') ORDER BY id",
	                       -1, &s, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_prepare_v2(store.db,
	                       "SELECT extra.id, " STORE_EXTRA_COLUMNS
	                       " FROM extra JOIN jobs ON jobs.id = extra.id "
	                       "WHERE state IN ('queued', 'running') "
	                       "ORDER BY extra.id",
	                       -1, &x, NULL) != SQLITE_OK) {
		sqlite3_finalize(s);
		return -1;
	}
	xrc = sqlite3_step(x);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		store_read_job(s, &r);
		while (xrc == SQLITE_ROW &&
		       (uint64_t)sqlite3_column_int64(x, 0) < r.id)
			xrc = sqlite3_step(x);
		/*
		 * A job whose extras cannot be read is not handed on without
		 * them: a held job would run, one of a group run outside it
		 */
		if (xrc != SQLITE_ROW && xrc != SQLITE_DONE) {
			rc = xrc;
			break;
		}
		if (xrc == SQLITE_ROW &&
		    (uint64_t)sqlite3_column_int64(x, 0) == r.id)
			store_read_extra(x, 1, &r, &room);
		fn(&r, arg);
	}
	if (rc != SQLITE_DONE)
		log_warnx("%s: reading: %s", store.path,
		          sqlite3_errmsg(store.db));
	sqlite3_finalize(x);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

int
store_get(uint64_t id, void (*fn)(const struct store_row *, void *), void *arg)
{
	static struct row_room room;
	struct store_row r;
	sqlite3_stmt *s;
	char sql[1024];
	int rc;

	if (!store.on)
		return -1;
	if (store.get == NULL) {
		snprintf(sql, sizeof(sql),
		         "SELECT %s" STORE_FROM " WHERE jobs.id = ?1",
		         store_columns);
		if (sqlite3_prepare_v3(store.rdb, sql, -1,
		                       SQLITE_PREPARE_PERSISTENT, &store.get,
		                       NULL) != SQLITE_OK)
			return -1;
	}
	s = store.get;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)id);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		store_read_row(s, &r, &room);
		fn(&r, arg);
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? 0 : -1;
}

/*
 * The WHERE clause of a filter.  State and uid are written as literals
 * (they are numbers and words of ours) so that the partial indexes can
 * be used; the task is bound.
 */
static void
store_where(const struct store_filter *f, char *w, size_t len, bool counts)
{
	size_t n = 0;

	n += (size_t)snprintf(w + n, len - n, " WHERE 1");
	if (!counts && f->state >= 0 && f->state < PS_COUNT)
		n += (size_t)snprintf(w + n, len - n, " AND state = '%s'",
		                      proto_states[f->state]);
	else if (!counts && !f->all)
		n += (size_t)snprintf(w + n, len - n,
		                      " AND state IN ('queued', 'running')");
	if (f->uid >= 0) {
		n += (size_t)snprintf(w + n, len - n, " AND uid = %lld",
		                      (long long)f->uid);
		if ((uid_t)f->uid != store.self)
			n += (size_t)snprintf(w + n, len - n, " AND uid <> %u",
			                      (unsigned)store.self);
	}
	if (f->task != NULL)
		n += (size_t)snprintf(w + n, len - n, " AND task = ?1");
	if (f->since > 0)
		n += (size_t)snprintf(w + n, len - n, " AND submitted >= %llu",
		                      (unsigned long long)f->since);
	if (f->until > 0)
		n += (size_t)snprintf(w + n, len - n, " AND submitted < %llu",
		                      (unsigned long long)f->until);
	if (f->group != NULL)
		n += (size_t)snprintf(w + n, len - n,
		                      strcmp(f->group, "default") == 0
		                          ? " AND coalesce(grp, 'default') = ?3"
		                          : " AND grp = ?3");
	if (f->label != NULL)
		(void)snprintf(w + n, len - n, " AND label = ?4");
}

static void
store_bind_filter(sqlite3_stmt *s, const struct store_filter *f)
{
	if (f->task != NULL)
		sqlite3_bind_text(s, 1, f->task, -1, SQLITE_STATIC);
	if (f->group != NULL)
		sqlite3_bind_text(s, 3, f->group, -1, SQLITE_STATIC);
	if (f->label != NULL)
		sqlite3_bind_text(s, 4, f->label, -1, SQLITE_STATIC);
}

int
store_list(const struct store_filter *f,
           void (*fn)(const struct store_row *, void *), void *arg)
{
	char sql[1024], where[512];
	sqlite3_stmt *s;

	if (!store.on)
		return 0;
	store_where(f, where, sizeof(where), false);
	/* the newest that match, given oldest first */
	snprintf(sql, sizeof(sql),
	         "SELECT * FROM (SELECT %s" STORE_FROM
	         "%s ORDER BY jobs.id DESC%s) ORDER BY 1",
	         store_columns, where, f->limit > 0 ? " LIMIT ?2" : "");
	if (sqlite3_prepare_v2(store.rdb, sql, -1, &s, NULL) != SQLITE_OK) {
		log_warnx("%s: %s", store.path, sqlite3_errmsg(store.rdb));
		return -1;
	}
	store_bind_filter(s, f);
	if (f->limit > 0)
		sqlite3_bind_int64(s, 2, (sqlite3_int64)f->limit);
	return store_walk(store.rdb, s, fn, arg);
}

int
store_count(const struct store_filter *f, size_t counts[])
{
	char sql[1024], where[512];
	sqlite3_stmt *s;
	int rc;

	if (!store.on)
		return 0;
	store_where(f, where, sizeof(where), true);
	snprintf(sql, sizeof(sql), "SELECT state, count(*)%s%s GROUP BY state",
	         f->group != NULL || f->label != NULL ? STORE_FROM
	                                              : " FROM jobs",
	         where);
	if (sqlite3_prepare_v2(store.rdb, sql, -1, &s, NULL) != SQLITE_OK)
		return -1;
	store_bind_filter(s, f);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		counts[store_word(sqlite3_column_text(s, 0), proto_states,
		                  PS_COUNT)] +=
		    (size_t)sqlite3_column_int64(s, 1);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

/*
 * Forget finished jobs (concctl clean): those in state (-1: any final
 * one), finished before before (0: whenever), of uid (-1: anyone's).  The
 * store is synced first, so the writer is the loop's and idle; each id
 * deleted goes to fn.  Returns how many, -1 on an error, logged, or -2
 * with nothing deleted while another program holds SQLite locked: the
 * loop does not wait for the lock (SQLite's busy timeout is 5 s).
 */
int
store_clean(int state, uint64_t before, int64_t uid,
            void (*fn)(uint64_t, void *), void *arg)
{
	char sql[512];
	size_t n = 0;
	sqlite3_stmt *s;
	int rc, count = 0;

	if (!store.on)
		return 0;
	store_sync();
	n += (size_t)snprintf(sql + n, sizeof(sql) - n,
	                      "DELETE FROM jobs WHERE state NOT IN "
	                      "('queued', 'running')");
	if (state >= 0 && state < PS_COUNT)
		n += (size_t)snprintf(sql + n, sizeof(sql) - n,
		                      " AND state = '%s'", proto_states[state]);
	if (before > 0)
		n += (size_t)snprintf(sql + n, sizeof(sql) - n,
		                      " AND finished < %llu",
		                      (unsigned long long)before);
	if (uid >= 0)
		n += (size_t)snprintf(sql + n, sizeof(sql) - n,
		                      " AND uid = %lld", (long long)uid);
	(void)snprintf(sql + n, sizeof(sql) - n, " RETURNING id");
	if (sqlite3_prepare_v2(store.db, sql, -1, &s, NULL) != SQLITE_OK) {
		log_warnx("%s: %s", store.path, sqlite3_errmsg(store.db));
		return -1;
	}
	sqlite3_busy_timeout(store.db, 0);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		fn((uint64_t)sqlite3_column_int64(s, 0), arg);
		count++;
	}
	sqlite3_busy_timeout(store.db, STORE_BUSY_MS);
	if (rc == SQLITE_BUSY) {
		log_warnx("%s: a clean found it locked by another program: "
		          "nothing was cleaned",
		          store.path);
		count = -2;
	} else if (rc != SQLITE_DONE) {
		log_warnx("%s: %s", store.path, sqlite3_errmsg(store.db));
		count = -1;
	}
	sqlite3_finalize(s);
	return count;
}

/* ---- batches ---- */

static struct batch *batch_take(void);

static struct batch *
batch_new(void)
{
	struct batch *b = calloc(1, sizeof(*b));

	if (b == NULL)
		fatal("store: batch");
	return b;
}

static void
batch_reset(struct batch *b)
{
	b->n = 0;
	b->rows.len = 0;
	b->ngroups = 0;
	b->data.len = 0;
	b->next_id = 0;
	b->finals = 0;
	b->inserts = 0;
	b->ngone = 0;
	b->ok = false;
	b->reserve_used = false;
	b->journaled = false;
	b->deletes = false;
	b->next = NULL;
	b->cause[0] = '\0';
	memset(&b->trim, 0, sizeof(b->trim));
}

static void
batch_free(struct batch *b)
{
	if (b == NULL)
		return;
	pbuf_free(&b->rows);
	free(b->groups);
	pbuf_free(&b->data);
	free(b->gone);
	free(b);
}

static uint32_t
batch_bytes(struct batch *b, const void *p, size_t n)
{
	uint32_t off = (uint32_t)b->data.len;

	if (p == NULL)
		return UINT32_MAX;
	pbuf_append(&b->data, p, n);
	return off;
}

/* A string, with its NUL: it is one again when carried over. */
static uint32_t
batch_str(struct batch *b, const char *s, uint32_t *len)
{
	*len = s != NULL ? (uint32_t)strlen(s) : 0;
	return batch_bytes(b, s, *len + 1);
}

/* After a struct, at an offset it can be read from in place. */
static uint32_t
batch_align(struct batch *b)
{
	static const char zero[8];

	if (b->data.len % 8 != 0)
		pbuf_append(&b->data, zero, 8 - b->data.len % 8);
	return (uint32_t)b->data.len;
}

static uint32_t
batch_extra(struct batch *b, const struct job_extra *x)
{
	struct bextra be;
	uint32_t off, i;
	char id[24];

	memset(&be, 0, sizeof(be)); /* no stray bytes in the journal */
#define COPY(f) be.f = x->f;
	BEXTRA_VALUES(COPY)
#undef COPY
	be.umask = x->umask;
	be.cwd = batch_str(b, x->cwd, &i);
	be.command = batch_str(b, x->command, &i);
	be.group = batch_str(b, x->group, &i);
	be.label = batch_str(b, x->label, &i);
	be.node = batch_str(b, x->node, &i);
	be.env = batch_bytes(b, x->env, x->env_len);
	be.after = x->nafter > 0 ? (uint32_t)b->data.len : UINT32_MAX;
	for (i = 0; i < x->nafter; i++) {
		int n = snprintf(id, sizeof(id), i > 0 ? ",%llu" : "%llu",
		                 (unsigned long long)x->after[i]);

		pbuf_append(&b->data, id, (size_t)n);
	}
	if (x->nafter > 0) {
		be.after_len = (uint32_t)b->data.len - be.after;
		pbuf_append(&b->data, "", 1); /* ends the text for strtoull */
	}
	off = batch_align(b);
	pbuf_append(&b->data, &be, sizeof(be));
	return off;
}

/*
 * A batch's rows are records of a few bytes, not structs: a sleeping
 * job's new row takes about 30 bytes where its struct brow took 192, and
 * a burst of 10,000 jobs holds 0.3 MB of them, not 1.9 MB.  A record is a
 * varint of the fields present (ROW_*: those that are not zero, the
 * strings and blobs that are not NULL), the id, and each field present,
 * in the order of the bits, a varint (a string or blob: its offset in
 * the batch's data, then its length).  Flags are bits alone.
 */
enum {
	ROW_TASK,
	ROW_ARGS,
	ROW_ERROR,
	ROW_MSG,
	ROW_RESULT,
	ROW_X,
	ROW_SUBMITTED,
	ROW_STARTED,
	ROW_FINISHED,
	ROW_TIMEOUT,
	ROW_DONE,
	ROW_TOTAL,
	ROW_DROPPED,
	ROW_RETRY_DELAY,
	ROW_SERVED,
	ROW_WORKER,
	ROW_TID,
	ROW_UID,
	ROW_STATE,
	ROW_REQUESTED,
	ROW_EXEC,
	ROW_ERR,
	ROW_ATTEMPT,
	ROW_RETRIES,
	ROW_DAEMON, /* the flags: no value follows */
	ROW_FRESH,
	ROW_INSERT,
	ROW_RUNTIME, /* added in schema 4: a value again */
};
/* the most a record's values take: 172 bytes */
#define ROW_MAX 256
/* a field added to store_row is added to the records too */
_Static_assert(sizeof(struct store_row) == 160,
               "store_row changed: row_put and row_get must follow");

static unsigned char *
varint_put(unsigned char *q, uint64_t v)
{
	while (v > 0x7f) {
		*q++ = (unsigned char)(v | 0x80);
		v >>= 7;
	}
	*q++ = (unsigned char)v;
	return q;
}

static uint64_t
varint_get(const unsigned char **p)
{
	const unsigned char *q = *p;
	uint64_t v = 0;
	int shift = 0;

	do
		v |= (uint64_t)(*q & 0x7f) << shift;
	while ((*q++ & 0x80) != 0 && (shift += 7) < 64);
	*p = q;
	return v;
}

/* A record of row w at the end of b->rows. */
static void
row_put(struct batch *b, const struct brow *w)
{
	const struct store_row *r = &w->r;
	unsigned char v[ROW_MAX], *q = v, *out;
	uint32_t bits = 0;

#define ROW_STR(bit, off, len)                                                 \
	if ((off) != UINT32_MAX) {                                             \
		bits |= 1u << (bit);                                           \
		q = varint_put(q, off);                                        \
		q = varint_put(q, len);                                        \
	}
#define ROW_NUM(bit, val)                                                      \
	if ((val) != 0) {                                                      \
		bits |= 1u << (bit);                                           \
		q = varint_put(q, val);                                        \
	}
#define ROW_FLAG(bit, val) bits |= (val) ? 1u << (bit) : 0
	ROW_STR(ROW_TASK, w->task, w->task_len);
	ROW_STR(ROW_ARGS, w->args, r->args_len);
	ROW_STR(ROW_ERROR, w->error, w->error_len);
	ROW_STR(ROW_MSG, w->msg, w->msg_len);
	ROW_STR(ROW_RESULT, w->result, r->result_len);
	if (w->x != UINT32_MAX) {
		bits |= 1u << ROW_X;
		q = varint_put(q, w->x);
	}
	ROW_NUM(ROW_SUBMITTED, r->submitted);
	ROW_NUM(ROW_STARTED, r->started);
	ROW_NUM(ROW_FINISHED, r->finished);
	ROW_NUM(ROW_TIMEOUT, r->timeout_ms);
	ROW_NUM(ROW_DONE, r->done);
	ROW_NUM(ROW_TOTAL, r->total);
	ROW_NUM(ROW_DROPPED, r->dropped);
	ROW_NUM(ROW_RETRY_DELAY, r->retry_delay_ms);
	ROW_NUM(ROW_SERVED, r->served);
	ROW_NUM(ROW_WORKER, (uint32_t)r->worker);
	ROW_NUM(ROW_TID, (uint32_t)r->tid);
	ROW_NUM(ROW_UID, (uint32_t)r->uid);
	ROW_NUM(ROW_STATE, r->state);
	ROW_NUM(ROW_REQUESTED, r->requested);
	ROW_NUM(ROW_EXEC, r->exec);
	ROW_NUM(ROW_ERR, r->err);
	ROW_NUM(ROW_ATTEMPT, r->attempt);
	ROW_NUM(ROW_RETRIES, r->retries);
	ROW_FLAG(ROW_DAEMON, r->daemon);
	ROW_FLAG(ROW_FRESH, r->fresh);
	ROW_FLAG(ROW_INSERT, r->insert);
	ROW_NUM(ROW_RUNTIME, r->runtime);
#undef ROW_STR
#undef ROW_NUM
#undef ROW_FLAG
	pbuf_reserve(&b->rows, 5 + 10 + (size_t)(q - v));
	out = (unsigned char *)b->rows.data + b->rows.len;
	out = varint_put(out, bits);
	out = varint_put(out, r->id);
	memcpy(out, v, (size_t)(q - v));
	out += q - v;
	b->rows.len = (size_t)(out - (unsigned char *)b->rows.data);
}

/* The record at p into w; where the next one begins. */
static const unsigned char *
row_get(const unsigned char *p, struct brow *w)
{
	struct store_row *r = &w->r;
	uint32_t bits;

	memset(w, 0, sizeof(*w));
	bits = (uint32_t)varint_get(&p);
	r->id = varint_get(&p);
#define ROW_STR(bit, off, len)                                                 \
	if (bits & (1u << (bit))) {                                            \
		off = (uint32_t)varint_get(&p);                                \
		len = (uint32_t)varint_get(&p);                                \
	} else                                                                 \
		off = UINT32_MAX
#define ROW_NUM(bit, type, val)                                                \
	if (bits & (1u << (bit)))                                              \
	val = (type)(uint32_t)varint_get(&p)
#define ROW_NUM64(bit, val)                                                    \
	if (bits & (1u << (bit)))                                              \
	val = varint_get(&p)
	ROW_STR(ROW_TASK, w->task, w->task_len);
	ROW_STR(ROW_ARGS, w->args, r->args_len);
	ROW_STR(ROW_ERROR, w->error, w->error_len);
	ROW_STR(ROW_MSG, w->msg, w->msg_len);
	ROW_STR(ROW_RESULT, w->result, r->result_len);
	w->x = bits & (1u << ROW_X) ? (uint32_t)varint_get(&p) : UINT32_MAX;
	ROW_NUM64(ROW_SUBMITTED, r->submitted);
	ROW_NUM64(ROW_STARTED, r->started);
	ROW_NUM64(ROW_FINISHED, r->finished);
	ROW_NUM64(ROW_TIMEOUT, r->timeout_ms);
	ROW_NUM64(ROW_DONE, r->done);
	ROW_NUM64(ROW_TOTAL, r->total);
	ROW_NUM64(ROW_DROPPED, r->dropped);
	ROW_NUM(ROW_RETRY_DELAY, uint32_t, r->retry_delay_ms);
	ROW_NUM(ROW_SERVED, uint32_t, r->served);
	ROW_NUM(ROW_WORKER, int32_t, r->worker);
	ROW_NUM(ROW_TID, pid_t, r->tid);
	ROW_NUM(ROW_UID, uid_t, r->uid);
	ROW_NUM(ROW_STATE, uint8_t, r->state);
	ROW_NUM(ROW_REQUESTED, uint8_t, r->requested);
	ROW_NUM(ROW_EXEC, uint8_t, r->exec);
	ROW_NUM(ROW_ERR, uint8_t, r->err);
	ROW_NUM(ROW_ATTEMPT, uint8_t, r->attempt);
	ROW_NUM(ROW_RETRIES, uint8_t, r->retries);
	ROW_NUM64(ROW_RUNTIME, r->runtime);
#undef ROW_STR
#undef ROW_NUM
#undef ROW_NUM64
	r->daemon = (bits & (1u << ROW_DAEMON)) != 0;
	r->fresh = (bits & (1u << ROW_FRESH)) != 0;
	r->insert = (bits & (1u << ROW_INSERT)) != 0;
	return p;
}

/* The fields whose value is two varints (offset, length), and one. */
#define ROW_TWO                                                                \
	((1u << ROW_TASK) | (1u << ROW_ARGS) | (1u << ROW_ERROR) |             \
	 (1u << ROW_MSG) | (1u << ROW_RESULT))
#define ROW_ONE                                                                \
	((((1u << (ROW_RETRIES + 1)) - 1) & ~((1u << ROW_X) - 1)) |            \
	 (1u << ROW_RUNTIME))

/*
 * The id of the record at p and whether it is a new row, read without
 * its values; where the next one begins.
 */
static const unsigned char *
row_peek(const unsigned char *p, uint64_t *id, bool *insert)
{
	uint32_t bits = (uint32_t)varint_get(&p);
	int n = 2 * __builtin_popcount(bits & ROW_TWO) +
	        __builtin_popcount(bits & ROW_ONE);

	*id = varint_get(&p);
	*insert = (bits & (1u << ROW_INSERT)) != 0;
	while (n > 0)
		if ((*p++ & 0x80) == 0)
			n--;
	return p;
}

/* b's first record, for row_get */
static const unsigned char *
batch_rows(const struct batch *b)
{
	return (const unsigned char *)b->rows.data;
}

static void
batch_add(struct batch *b, const struct store_row *r)
{
	struct brow w = {.r = *r};

	w.task = batch_str(b, r->task, &w.task_len);
	w.args = batch_bytes(b, r->args, r->args_len);
	w.error = batch_str(b, r->error, &w.error_len);
	w.msg = batch_str(b, r->msg, &w.msg_len);
	w.result = batch_bytes(b, r->result, r->result_len);
	w.x = r->x != NULL ? batch_extra(b, r->x) : UINT32_MAX;
	row_put(b, &w);
	b->n++;
	if (PROTO_STATE_FINAL(r->state))
		b->finals++;
	if (r->insert)
		b->inserts++;
}

/* A batch's copy of a row's extra, its pointers made again. */
static const struct bextra *
batch_get_extra(const struct batch *b, const struct brow *w,
                struct job_extra *x)
{
	const char *d = b->data.data;
	const struct bextra *be;

	if (w->x == UINT32_MAX)
		return NULL;
	be = (const struct bextra *)(const void *)(d + w->x);
	memset(x, 0, sizeof(*x));
#define COPY(f) x->f = be->f;
	BEXTRA_VALUES(COPY)
#undef COPY
	x->umask = (uint16_t)be->umask;
	x->cwd = be->cwd != UINT32_MAX ? (char *)d + be->cwd : NULL;
	x->command = be->command != UINT32_MAX ? (char *)d + be->command : NULL;
	x->group = be->group != UINT32_MAX ? (char *)d + be->group : NULL;
	x->label = be->label != UINT32_MAX ? (char *)d + be->label : NULL;
	x->node = be->node != UINT32_MAX ? (char *)d + be->node : NULL;
	x->env = be->env != UINT32_MAX ? (char *)d + be->env : NULL;
	x->after = NULL; /* only as text: bextra.after */
	return be;
}

/* A new change to a group at the end of b's, for the caller to fill. */
static struct bgroup *
batch_group_slot(struct batch *b)
{
	struct bgroup *p;
	size_t n;

	if (b->ngroups == b->capgroups) {
		n = b->capgroups ? b->capgroups * 2 : 8;
		if ((p = realloc(b->groups, n * sizeof(*p))) == NULL)
			fatal("store: batch");
		b->groups = p;
		b->capgroups = n;
	}
	return &b->groups[b->ngroups++];
}

static void
batch_group(struct batch *b, const struct store_group *g, bool del)
{
	struct bgroup *p = batch_group_slot(b);
	uint32_t len;

	p->g = *g;
	p->del = del;
	p->name = batch_str(b, g->name, &len);
}

void
store_put_group(const struct store_group *g)
{
	if (!store.on)
		return;
	if (store.open == NULL)
		store.open = batch_take();
	batch_group(store.open, g, false);
	store_mark();
}

void
store_delete_group(const char *name)
{
	struct store_group g = {.name = name};

	if (!store.on)
		return;
	if (store.open == NULL)
		store.open = batch_take();
	batch_group(store.open, &g, true);
	store_mark();
}

int
store_groups(void (*fn)(const struct store_group *, void *), void *arg)
{
	struct store_group g;
	sqlite3_stmt *s;
	int rc;

	if (!store.on)
		return 0;
	/*
	 * At the start, before any batch: on the writer's connection, as the
	 * restart reads the live jobs, so that an idle concd has not yet
	 * made its reader read the schema.
	 */
	if (sqlite3_prepare_v2(store.nflight == 0 ? store.db : store.rdb,
	                       "SELECT name, parallel, paused, uid, mem, pids "
	                       "FROM groups ORDER BY name",
	                       -1, &s, NULL) != SQLITE_OK)
		return -1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		memset(&g, 0, sizeof(g));
		g.name = (const char *)sqlite3_column_text(s, 0);
		if (g.name == NULL)
			continue;
		g.parallel = (uint64_t)sqlite3_column_int64(s, 1);
		g.paused = sqlite3_column_int(s, 2) != 0;
		g.uid = (uid_t)sqlite3_column_int64(s, 3);
		g.mem = (uint64_t)column_or(s, 4, 0);
		g.pids = (uint64_t)column_or(s, 5, 0);
		fn(&g, arg);
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

void
store_put(const struct store_row *r)
{
	if (!store.on && !store.memory)
		return;
	if (store.open == NULL)
		store.open = batch_take();
	batch_add(store.open, r);
}

/* ---- writing (the thread's commits, or the loop's in store_sync) ---- */

static void
bind_text(sqlite3_stmt *s, int i, const struct batch *b, uint32_t off,
          uint32_t len)
{
	if (off == UINT32_MAX)
		sqlite3_bind_null(s, i);
	else
		sqlite3_bind_text(s, i, b->data.data + off, (int)len,
		                  SQLITE_STATIC);
}

static void
bind_blob(sqlite3_stmt *s, int i, const struct batch *b, uint32_t off,
          uint32_t len)
{
	if (off == UINT32_MAX)
		sqlite3_bind_null(s, i);
	else
		sqlite3_bind_blob(s, i, b->data.data + off, (int)len,
		                  SQLITE_STATIC);
}

static void
bind_time(sqlite3_stmt *s, int i, uint64_t t)
{
	if (t == 0)
		sqlite3_bind_null(s, i);
	else
		sqlite3_bind_int64(s, i, (sqlite3_int64)t);
}

static void
bind_int_or_null(sqlite3_stmt *s, int i, int64_t v, int64_t none)
{
	if (v == none)
		sqlite3_bind_null(s, i);
	else
		sqlite3_bind_int64(s, i, (sqlite3_int64)v);
}

/* A job's extra, whole, each time its row is written. */
static int
write_extra(const struct batch *b, const struct brow *w)
{
	sqlite3_stmt *s = store_stmt(ST_EXTRA);
	const struct bextra *be;
	struct job_extra x;
	int rc;

	if (s == NULL)
		return -1;
	be = batch_get_extra(b, w, &x);
	sqlite3_bind_int64(s, 1, (sqlite3_int64)w->r.id);
	bind_text(s, 27, b, be->cwd, x.cwd ? (uint32_t)strlen(x.cwd) : 0);
	bind_blob(s, 28, b, be->env, x.env_len);
	bind_text(s, 29, b, be->command,
	          x.command ? (uint32_t)strlen(x.command) : 0);
	bind_text(s, 30, b, be->group, x.group ? (uint32_t)strlen(x.group) : 0);
	bind_text(s, 31, b, be->label, x.label ? (uint32_t)strlen(x.label) : 0);
	bind_text(s, 32, b, be->after, be->after_len);
	bind_int_or_null(s, 33, x.priority, 0);
	bind_int_or_null(s, 34, (int64_t)x.at, 0);
	bind_int_or_null(s, 35, (int64_t)x.mem, 0);
	bind_int_or_null(s, 36, (int64_t)x.pids, 0);
	bind_int_or_null(s, 37, (int64_t)x.restart_of, 0);
	bind_int_or_null(s, 38, x.cpus, 0);
	if (x.stdin_mode == JOB_STDIN_STREAM)
		sqlite3_bind_text(s, 39, "stream", -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, 39);
	bind_int_or_null(s, 40, x.after_any, 0);
	bind_int_or_null(s, 41, x.held, 0);
	bind_int_or_null(s, 42, (int64_t)x.cause, 0);
	bind_int_or_null(s, 43, x.exit, -1);
	bind_int_or_null(s, 44, x.signal, -1);
	bind_int_or_null(s, 45, (int64_t)x.slurm_id, 0);
	bind_text(s, 46, b, be->node, x.node ? (uint32_t)strlen(x.node) : 0);
	bind_int_or_null(s, 47, (int64_t)x.umask - 1, -1);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

static int
write_group(const struct batch *b, const struct bgroup *p)
{
	sqlite3_stmt *s = store_stmt(p->del ? ST_GROUP_DEL : ST_GROUP_PUT);
	int rc;

	if (s == NULL)
		return -1;
	sqlite3_bind_text(s, 1, b->data.data + p->name, -1, SQLITE_STATIC);
	if (!p->del) {
		sqlite3_bind_int64(s, 2, (sqlite3_int64)p->g.parallel);
		sqlite3_bind_int(s, 3, p->g.paused);
		sqlite3_bind_int64(s, 4, (sqlite3_int64)p->g.uid);
		bind_int_or_null(s, 5, (int64_t)p->g.mem, 0);
		bind_int_or_null(s, 6, (int64_t)p->g.pids, 0);
	}
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

/*
 * Bind a row's values to ?k+1 ... ?k+27 of s: whole, or (an UPDATE's)
 * only those a job's life changes.
 */
static void
bind_row(sqlite3_stmt *s, int k, const struct batch *b, const struct brow *w,
         bool whole)
{
	const struct store_row *r = &w->r;
	bool final = PROTO_STATE_FINAL(r->state);

	sqlite3_bind_int64(s, k + 1, (sqlite3_int64)r->id);
	if (whole) {
		bind_text(s, k + 2, b, w->task, w->task_len);
		bind_blob(s, k + 3, b, w->args, r->args_len);
		sqlite3_bind_int64(s, k + 4, (sqlite3_int64)r->uid);
		sqlite3_bind_text(s, k + 5, proto_execs[r->requested], -1,
		                  SQLITE_STATIC);
		sqlite3_bind_int(s, k + 7, r->daemon);
		sqlite3_bind_int64(s, k + 9, (sqlite3_int64)r->timeout_ms);
		sqlite3_bind_int(s, k + 10, r->retries);
		sqlite3_bind_int64(s, k + 11, r->retry_delay_ms);
		sqlite3_bind_int64(s, k + 17, (sqlite3_int64)r->submitted);
	}
	sqlite3_bind_text(s, k + 6, proto_execs[r->exec], -1, SQLITE_STATIC);
	sqlite3_bind_int(s, k + 8, r->fresh);
	sqlite3_bind_int(s, k + 12, r->attempt);
	sqlite3_bind_text(s, k + 13, proto_states[r->state], -1, SQLITE_STATIC);
	if (final && r->err != PE_NONE) {
		sqlite3_bind_text(s, k + 14, proto_errors[r->err].name, -1,
		                  SQLITE_STATIC);
		if (w->error != UINT32_MAX)
			bind_text(s, k + 15, b, w->error, w->error_len);
		else
			sqlite3_bind_text(s, k + 15, proto_errors[r->err].text,
			                  -1, SQLITE_STATIC);
	} else {
		sqlite3_bind_null(s, k + 14);
		sqlite3_bind_null(s, k + 15);
	}
	if (final && r->state == PS_SUCCEEDED)
		bind_blob(s, k + 16, b, w->result, r->result_len);
	else
		sqlite3_bind_null(s, k + 16);
	bind_time(s, k + 18, r->started);
	bind_time(s, k + 19, r->finished);
	if (r->tid != 0) {
		sqlite3_bind_int(s, k + 20, r->worker);
		sqlite3_bind_int64(s, k + 21, r->tid);
		sqlite3_bind_int64(s, k + 22, r->served);
	} else {
		sqlite3_bind_null(s, k + 20);
		sqlite3_bind_null(s, k + 21);
		sqlite3_bind_null(s, k + 22);
	}
	sqlite3_bind_int64(s, k + 23, (sqlite3_int64)r->done);
	sqlite3_bind_int64(s, k + 24, (sqlite3_int64)r->total);
	bind_text(s, k + 25, b, w->msg, w->msg_len);
	sqlite3_bind_int64(s, k + 26, (sqlite3_int64)r->dropped);
	if (final)
		sqlite3_bind_int64(s, k + 27, (sqlite3_int64)r->runtime);
	else
		sqlite3_bind_null(s, k + 27);
}

static int
write_row(const struct batch *b, const struct brow *w)
{
	sqlite3_stmt *s = store_stmt(!w->r.insert      ? ST_UPDATE
	                             : store.replaying ? ST_REPLACE
	                                               : ST_INSERT);
	int rc;

	if (s == NULL)
		return -1;
	bind_row(s, 0, b, w, w->r.insert);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return -1;
	return w->x != UINT32_MAX ? write_extra(b, w) : 0;
}

/*
 * STORE_MANY rows without extras in one statement: new rows, inserted,
 * or rows of jobs written before, replaced.
 */
static int
write_many(const struct batch *b, const struct brow *rows, bool insert)
{
	sqlite3_stmt *s = store_stmt(
	    insert && !store.replaying ? ST_INSERT_MANY : ST_REPLACE_MANY);
	int i, rc;

	if (s == NULL)
		return -1;
	for (i = 0; i < STORE_MANY; i++)
		bind_row(s, i * STORE_COLS, b, &rows[i], true);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

/*
 * A job's row is whole, so of the rows a chain holds for one job only
 * the newest is written: a job accepted, started and ended while its
 * chain waited costs SQLite one row, inserted, not a row, its index
 * entry as a queued job and their replacement.  Rows are numbered across
 * the chain's batches in order; the newest of each job is found in a
 * ring of slots indexed by id, which holds the chain's newest ids (at
 * least twice as many as it has rows): a job older than those (a long
 * one that ended) is not mapped, and all its rows are written, in order.
 * The writer's alone: the thread's, or the loop's while no chain is out.
 */
struct newest_slot {
	uint64_t id;   /* 0: a free slot */
	uint32_t last; /* the number of the job's newest row */
	bool insert;   /* the chain holds the job's new row */
};

static struct {
	struct newest_slot *slot;
	size_t cap;  /* slots allocated */
	size_t mask; /* slots in use - 1; 0: no map, every row is written */
	uint64_t lo; /* the oldest id mapped */
} newest;

static void
newest_free(void)
{
	free(newest.slot);
	newest.slot = NULL;
	newest.cap = newest.mask = 0;
}

/* Job id's slot, or NULL if it has none. */
static struct newest_slot *
newest_get(uint64_t id)
{
	struct newest_slot *s;

	if (newest.mask == 0 || id < newest.lo)
		return NULL;
	s = &newest.slot[id & newest.mask];
	return s->id == id ? s : NULL;
}

/* Map the jobs of chain to their newest rows; no map if memory fails. */
static void
newest_map(const struct batch *chain)
{
	const struct batch *c;
	const unsigned char *p;
	struct newest_slot *s;
	size_t rows = 0, size = 64, i;
	uint64_t id, hi = 0;
	uint32_t ord = 0;
	bool insert;

	newest.mask = 0;
	for (c = chain; c != NULL; c = c->next)
		for (i = 0, p = batch_rows(c); i < c->n; i++, rows++) {
			p = row_peek(p, &id, &insert);
			hi = id > hi ? id : hi;
		}
	if (rows < 2 || rows > UINT32_MAX / 2)
		return;
	while (size < 2 * rows)
		size *= 2;
	if (size > newest.cap || size * 16 < newest.cap) {
		newest_free();
		if ((newest.slot = malloc(size * sizeof(*s))) == NULL)
			return;
		newest.cap = size;
	}
	memset(newest.slot, 0, size * sizeof(*s));
	newest.mask = size - 1;
	newest.lo = hi >= size ? hi - size + 1 : 0;
	for (c = chain; c != NULL; c = c->next)
		for (i = 0, p = batch_rows(c); i < c->n; i++, ord++) {
			p = row_peek(p, &id, &insert);
			if (id < newest.lo)
				continue;
			s = &newest.slot[id & newest.mask];
			if (s->id != id)
				*s = (struct newest_slot){id, ord, insert};
			s->last = ord;
			s->insert |= insert;
		}
}

/*
 * A batch's new rows (insert) or its other rows: those without extras
 * STORE_MANY to a statement, the rest one by one; its first row is the
 * chain's ord'th.  A job may have two rows in a batch (changed again
 * while the batch was open, or carried from one that failed): with no
 * map of the newest rows, its newer row is written last.
 */
static int
write_rows(const struct batch *b, bool insert, uint32_t ord)
{
	const unsigned char *p = batch_rows(b);
	struct brow many[STORE_MANY], row, *w = &row;
	const struct newest_slot *s;
	size_t i, k, n = 0;

	for (i = 0; i < b->n; i++) {
		p = row_get(p, w);
		if ((s = newest_get(w->r.id)) != NULL) {
			if (s->last != ord + i)
				continue; /* a newer row follows */
			w->r.insert = s->insert;
		}
		if (w->r.insert != insert)
			continue;
		if (w->x == UINT32_MAX) {
			many[n++] = *w;
			if (n == STORE_MANY) {
				if (write_many(b, many, insert) < 0)
					return -1;
				n = 0;
			}
			continue;
		}
		for (k = 0; k < n && many[k].r.id != w->r.id; k++)
			;
		if (k < n) { /* its older row waits: it goes first */
			for (k = 0; k < n; k++)
				if (write_row(b, &many[k]) < 0)
					return -1;
			n = 0;
		}
		if (write_row(b, w) < 0)
			return -1;
	}
	for (k = 0; k < n; k++)
		if (write_row(b, &many[k]) < 0)
			return -1;
	return 0;
}

static int
store_step(int which)
{
	sqlite3_stmt *s = store_stmt(which);
	int rc;

	if (s == NULL)
		return -1;
	rc = sqlite3_step(s);

	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

/*
 * Retention: the oldest finished rows past max_finished, and those older
 * than the time to live, go in the batch's transaction; their ids go back
 * to the loop, whose forgotten hook removes what else they left (logs).
 */
static void
write_trim(struct batch *b, uint64_t excess, uint64_t older_than)
{
	const char *which = excess > 0 ? "1" : "finished < ?2";
	char sql[256];
	sqlite3_stmt *s;
	size_t cap = 0; /* b->gone is empty: a batch trims once a write */
	uint64_t *p;
	int rc;

	/* the ids of the oldest finished rows, as many as asked */
	snprintf(sql, sizeof(sql),
	         "SELECT id FROM jobs WHERE state NOT IN ('queued', 'running') "
	         "AND (%s) ORDER BY id LIMIT ?1",
	         which);
	if (sqlite3_prepare_v2(store.db, sql, -1, &s, NULL) != SQLITE_OK)
		return;
	sqlite3_bind_int64(s, 1,
	                   excess > 0 ? (sqlite3_int64)excess : STORE_TRIM_MAX);
	if (excess == 0)
		sqlite3_bind_int64(s, 2, (sqlite3_int64)older_than);
	while (sqlite3_step(s) == SQLITE_ROW) {
		if (b->ngone == cap) {
			cap = cap ? cap * 2 : 256;
			if ((p = realloc(b->gone, cap * sizeof(*p))) == NULL)
				break;
			b->gone = p;
		}
		b->gone[b->ngone++] = (uint64_t)sqlite3_column_int64(s, 0);
	}
	sqlite3_finalize(s);
	if (b->ngone == 0)
		return;
	/*
	 * Then those rows, as the same test over their range of ids: 0.55 µs
	 * a row here, where a DELETE of the ids a subquery chose, returning
	 * them, took 1.8-2.6 µs.
	 */
	snprintf(sql, sizeof(sql),
	         "DELETE FROM jobs WHERE id BETWEEN ?3 AND ?4 AND state NOT IN "
	         "('queued', 'running') AND (%s)",
	         which);
	if (sqlite3_prepare_v2(store.db, sql, -1, &s, NULL) != SQLITE_OK) {
		b->ngone = 0;
		return;
	}
	if (excess == 0)
		sqlite3_bind_int64(s, 2, (sqlite3_int64)older_than);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)b->gone[0]);
	sqlite3_bind_int64(s, 4, (sqlite3_int64)b->gone[b->ngone - 1]);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		b->ngone = 0; /* nothing went */
}

static void write_batch_once(struct batch *);
static void store_audit(const struct batch *);

/*
 * The disk is full: the reserve goes, for b's write to be tried again in
 * the room it leaves; false if it went before.  The loop's and the
 * thread's.
 */
static bool
store_give_reserve(struct batch *b)
{
	if (!atomic_exchange(&store.reserve_ok, false))
		return false;
	unlink(store.reserve);
	b->reserve_used = true;
	return true;
}

/*
 * A full disk, and no room for the reserve: the WAL may hold much of the
 * state directory, since commits leave it to grow up to STORE_WAL_PAGES,
 * and the rows of the jobs accepted before go on into it in the room the
 * reserve left, pages written again and again.  Once it holds half a
 * reserve or more, a checkpoint that truncates it gives back all but the
 * pages it moves into jobs.db (without it, an 8 MiB disk stayed with a
 * 4.4 MB WAL and 3.7 MB free after the file that had filled it went, and
 * new jobs were refused for good).  On the loop, with no chain out and
 * the thread not checkpointing; it never waits for another program's
 * lock (a reader's: it is tried again at the next retry), and a disk too
 * full for it leaves the WAL as it was.  True if it did.
 */
static bool
store_shrink_wal(void)
{
	char wal[PATH_MAX];
	struct stat st;
	int rc;

	if ((size_t)snprintf(wal, sizeof(wal), "%s-wal", store.path) >=
	        sizeof(wal) ||
	    stat(wal, &st) < 0 || st.st_size < STORE_RESERVE / 2)
		return false;
	sqlite3_busy_timeout(store.db, 0);
	rc = sqlite3_wal_checkpoint_v2(store.db, NULL,
	                               SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	sqlite3_busy_timeout(store.db, STORE_BUSY_MS);
	if (rc != SQLITE_OK)
		return false;
	store.wal_pages = 0;
	return true;
}

static void
write_batch(struct batch *b)
{
	write_batch_once(b);
	if (b->ok ||
	    (sqlite3_errcode(store.db) != SQLITE_FULL &&
	     strstr(b->cause, "full") == NULL) ||
	    !store_give_reserve(b))
		return;
	write_batch_once(b);
}

/* The ids of a journal's record of rows retention deleted. */
static int
write_deletes(const struct batch *b)
{
	size_t i;

	for (i = 0; i < b->ngone; i++) {
		if (store_stmt(ST_DELETE) == NULL)
			return -1;
		sqlite3_bind_int64(store.st[ST_DELETE], 1,
		                   (sqlite3_int64)b->gone[i]);
		if (store_step(ST_DELETE) < 0)
			return -1;
	}
	return 0;
}

static int
write_one(struct batch *b, uint32_t ord)
{
	size_t i;

	if (b->deletes)
		return write_deletes(b);
	for (i = 0; i < b->ngroups; i++)
		if (write_group(b, &b->groups[i]) < 0)
			return -1;
	/* a job's new row comes before any other of its rows */
	if (write_rows(b, true, ord) < 0 || write_rows(b, false, ord) < 0)
		return -1;
	/*
	 * The ids given out and those reserved ahead (store_reserve_ids),
	 * before retention deletes what may be the newest rows.
	 */
	if (b->next_id > 0) {
		if (store_stmt(ST_NEXT_ID) == NULL)
			return -1;
		sqlite3_bind_int64(store.st[ST_NEXT_ID], 1,
		                   (sqlite3_int64)b->next_id);
		if (store_step(ST_NEXT_ID) < 0)
			return -1;
	}
	if (b->trim.excess > 0 || b->trim.older_than > 0)
		write_trim(b, b->trim.excess, b->trim.older_than);
	return 0;
}

/* b and the batches chained after it (journaled ones), in one commit. */
static void
write_batch_once(struct batch *b)
{
	struct batch *c;
	uint32_t ord = 0;

	b->ok = false;
	newest_map(b);
	if (store_step(ST_BEGIN) < 0)
		goto fail;
	for (c = b; c != NULL; ord += (uint32_t)c->n, c = c->next)
		if (write_one(c, ord) < 0)
			goto fail;
	if (store_step(ST_COMMIT) < 0)
		goto fail;
	b->ok = true;
	return;
fail:
	snprintf(b->cause, sizeof(b->cause), "%s", sqlite3_errmsg(store.db));
	store_step(ST_ROLLBACK);
	for (c = b; c != NULL; c = c->next)
		c->ngone = 0;
}

/*
 * The audit trail of a written batch and those chained after it: a line
 * (or a journal record) for each job accepted and each job finished, in
 * chunks.
 */
#define AUDIT_CHUNK 64

struct audit {
	struct log_job ev[AUDIT_CHUNK];
	char cmd[AUDIT_CHUNK][256];
	size_t n;
};

static void
audit_batch(struct audit *a, const struct batch *b)
{
	const char *d = b->data.data;
	const unsigned char *p = batch_rows(b);
	struct brow row, *w = &row;
	size_t i;

	for (i = 0; i < b->n; i++) {
		const struct store_row *r = &w->r;
		struct log_job j;

		p = row_get(p, w);
		j = (struct log_job){
		    .id = r->id,
		    .task = w->task != UINT32_MAX ? d + w->task : "",
		    .uid = r->uid,
		    .state = proto_states[r->state],
		};

		if (a->n + 2 > AUDIT_CHUNK) {
			log_jobs(a->ev, a->n);
			a->n = 0;
		}
		if (r->insert) {
			j.event = "accepted";
			if (w->args != UINT32_MAX &&
			    strcmp(j.task, "exec") == 0 &&
			    log_command(a->cmd[a->n], sizeof(a->cmd[a->n]),
			                d + w->args, r->args_len) > 0)
				j.command = a->cmd[a->n];
			a->ev[a->n++] = j;
			j.command = NULL;
		}
		if (PROTO_STATE_FINAL(r->state)) {
			j.event = "finished";
			j.error = r->err != PE_NONE ? proto_errors[r->err].name
			                            : NULL;
			a->ev[a->n++] = j;
		}
	}
}

static void
store_audit(const struct batch *chain)
{
	struct audit a;
	const struct batch *b;

	a.n = 0;
	for (b = chain; b != NULL; b = b->next)
		audit_batch(&a, b);
	if (a.n > 0)
		log_jobs(a.ev, a.n);
}

static void *
store_thread(void *arg)
{
	struct batch *b;
	bool ckpt;

	(void)arg;
	pthread_mutex_lock(&store.lock);
	for (;;) {
		while (store.todo == NULL && !store.quit)
			pthread_cond_wait(&store.cond, &store.lock);
		if ((b = store.todo) == NULL)
			break;
		store.todo = NULL;
		pthread_mutex_unlock(&store.lock);
		write_batch(b);
		ckpt = store.wal_pages >= STORE_WAL_PAGES;
		pthread_mutex_lock(&store.lock);
		/* before the batch is back: the loop then writes no more */
		if (ckpt)
			atomic_store(&store.checkpointing, true);
		store.done = b;
		pthread_cond_broadcast(&store.cond); /* store_sync waits */
		event_active(store.done_ev, EV_READ, 1);
		if (ckpt) {
			pthread_mutex_unlock(&store.lock);
			sqlite3_wal_checkpoint_v2(store.db, NULL,
			                          SQLITE_CHECKPOINT_PASSIVE,
			                          NULL, NULL);
			store.wal_pages = 0;
			pthread_mutex_lock(&store.lock);
			atomic_store(&store.checkpointing, false);
			pthread_cond_broadcast(&store.cond);
		}
	}
	pthread_mutex_unlock(&store.lock);
	return NULL;
}

/* ---- the loop's side ---- */

/*
 * Spare batches, so that a busy store does not allocate per pass: one of
 * any size up to STORE_SPARE_RECS records and STORE_SPARE_BYTES, and up
 * to STORE_FEED_BATCHES small ones (a journaled batch waits a while for
 * SQLite, and others are sealed meanwhile).
 */
#define STORE_SPARE_SMALL 4096
static struct batch *store_spare;
static size_t store_nspare;

static struct batch *
batch_take(void)
{
	struct batch *b = store_spare;

	if (b == NULL)
		return batch_new();
	store_spare = b->next;
	b->next = NULL;
	store_nspare--;
	return b;
}

static void
batch_free_spares(void)
{
	struct batch *b;

	while ((b = store_spare) != NULL) {
		store_spare = b->next;
		batch_free(b);
	}
	store_nspare = 0;
}

void
store_hook_collect(size_t (*fn)(bool))
{
	store.collect = fn;
}

void
store_hook_written(void (*fn)(uint64_t))
{
	store.written_hook = fn;
}

int
store_hook_committed(void (*fn)(uint64_t, bool))
{
	size_t i;

	for (i = 0; i < 2; i++)
		if (store.committed[i] == NULL || store.committed[i] == fn) {
			store.committed[i] = fn;
			return 0;
		}
	return -1;
}

void
store_hook_forgotten(void (*fn)(uint64_t))
{
	store.forgotten = fn;
}

void
store_hook_next_id(uint64_t (*fn)(void))
{
	store.next_hook = fn;
}

void
store_set_retention(size_t max_finished, uint64_t finished_ttl_s)
{
	store.max_finished = max_finished;
	store.ttl_us = finished_ttl_s * 1000000;
}

/*
 * Ids: the job table gives them out; the store keeps a reservation of
 * them ahead, so that no id a client may have seen (in ps, before its
 * job was committed) is given out again after a crash: a restart goes on
 * from the reservation.  A clean stop writes down the exact next id.
 */
void
store_reserve_ids(uint64_t upto)
{
	if (!store.on || upto <= store.reserving)
		return;
	store.reserving = upto;
	if (store.open == NULL) {
		store.open = batch_take();
	}
	if (upto > store.open->next_id)
		store.open->next_id = upto;
	store_want();
}

uint64_t
store_ids_reserved(void)
{
	return store.reserved;
}

static void store_journal(struct batch *);
static void store_feed(void);

/* The open batch, sealed with its seq: the rows put next go in another. */
static struct batch *
store_take_open(void)
{
	struct batch *b = store.open;

	store.want = false;
	store.open = NULL;
	store.carried = 0;
	b->seq = store.seq++;
	return b;
}

/*
 * The open batch goes to the journal now, with the ids it reserves ahead
 * (job_reserve_id gives one out next): a reservation waits neither for
 * the store's thread nor for SQLite, which another process may hold
 * locked.  What the journal cannot take waits for a commit, as before.
 */
void
store_seal(void)
{
	if (!store.on || store.open == NULL || store.blocked) {
		store_sync();
		return;
	}
	store_journal(store_take_open());
	store_feed();
}

/* A reply waits for the open batch, which may have nothing to write. */
void
store_want(void)
{
	store.want = true;
	store_mark();
}

void
store_mark(void)
{
	if (store.marked || (!store.on && !store.memory))
		return;
	store.marked = true;
	if (store.commit_ev != NULL)
		event_active(store.commit_ev, 0, 1);
}

static void
store_recycle(struct batch *b)
{
	bool small = b->rows.cap <= STORE_SPARE_SMALL &&
	             b->data.cap <= STORE_SPARE_SMALL;

	/* a big batch's room goes back: a burst does not stay resident */
	if ((store_nspare == 0 && b->rows.cap <= STORE_SPARE_RECS &&
	     b->data.cap <= STORE_SPARE_BYTES) ||
	    (small && store_nspare < STORE_FEED_BATCHES)) {
		batch_reset(b);
		b->next = store_spare;
		store_spare = b;
		store_nspare++;
	} else
		batch_free(b);
}

/* Copy n rows of batch from, from its row first on, into to. */
static void
batch_copy(struct batch *to, const struct batch *from, size_t first, size_t n)
{
	const char *d = from->data.data;
	const unsigned char *p = batch_rows(from);
	static uint64_t after[1024];
	const struct bextra *be;
	struct brow row, *w = &row;
	struct job_extra x;
	struct store_row r;
	size_t i;

	for (i = 0; i < first + n && i < from->n; i++) {
		p = row_get(p, w);
		if (i < first)
			continue;
		r = w->r;
		r.task = w->task != UINT32_MAX ? d + w->task : NULL;
		r.args = w->args != UINT32_MAX ? d + w->args : NULL;
		r.error = w->error != UINT32_MAX ? d + w->error : NULL;
		r.msg = w->msg != UINT32_MAX ? d + w->msg : NULL;
		r.result = w->result != UINT32_MAX ? d + w->result : NULL;
		r.x = NULL;
		if ((be = batch_get_extra(from, w, &x)) != NULL) {
			/* the ids again, from their text */
			x.after = after;
			x.nafter = store_after_ids(
			    be->after != UINT32_MAX ? d + be->after : NULL,
			    after, 1024);
			r.x = &x;
		}
		batch_add(to, &r);
	}
}

static void
batch_copy_groups(struct batch *to, const struct batch *from)
{
	size_t i;

	for (i = 0; i < from->ngroups; i++) {
		struct store_group g = from->groups[i].g;

		g.name = from->data.data + from->groups[i].name;
		batch_group(to, &g, from->groups[i].del);
	}
}

/*
 * A failed batch is written again with the next one, before the rows put
 * since (which are newer); the replies that wait for it wait on.
 */
static void
store_carry(struct batch *failed)
{
	struct batch *next = batch_take();
	struct batch *open = store.open;
	size_t carried = store.carried;

	/* after what earlier failed batches left, before the newer rows */
	if (open != NULL)
		batch_copy(next, open, 0, carried);
	batch_copy(next, failed, 0, failed->n);
	next->next_id = failed->next_id;
	store.carried = next->n;
	if (open != NULL) {
		batch_copy(next, open, carried, open->n - carried);
		if (open->next_id > next->next_id)
			next->next_id = open->next_id;
	}
	batch_copy_groups(next, failed);
	if (open != NULL) {
		batch_copy_groups(next, open);
		batch_free(open);
	}
	store.open = next;
}

/* The reserve let a write through: new jobs are refused until room. */
static void
store_full(void)
{
	log_warnx("%s: the disk is full; the jobs accepted are written in the "
	          "room kept in reserve, new jobs are refused until there is "
	          "room again",
	          store.path);
	snprintf(store.failing, sizeof(store.failing),
	         "the disk of the job store (%s) is full", store.path);
	if (!evtimer_pending(store.retry_ev, NULL))
		loop_retry_later(store.retry_ev, &store.retry_ms,
		                 STORE_RETRY_MIN, STORE_RETRY_MAX);
}

/* A write failed: new jobs are refused, and it is tried again later. */
static void
store_cannot_write(const char *cause)
{
	if (store.failing[0] == '\0')
		log_warnx("%s: cannot write: %s; new jobs are refused until it "
		          "can",
		          store.path, cause);
	snprintf(store.failing, sizeof(store.failing),
	         "the job store cannot be written (%s)", cause);
	loop_retry_later(store.retry_ev, &store.retry_ms, STORE_RETRY_MIN,
	                 STORE_RETRY_MAX);
}

static void
store_finish(struct batch *b)
{
	size_t i;

	/* a journaled batch's replies went when it was journaled */
	if (!b->journaled)
		store.blocked = !b->ok;
	if (b->ok && b->reserve_used)
		store_full();
	if (store.failing[0] != '\0' && b->ok &&
	    !evtimer_pending(store.retry_ev, NULL))
		loop_retry_later(store.retry_ev, &store.retry_ms,
		                 STORE_RETRY_MIN, STORE_RETRY_MAX);
	if (b->ok) {
		/* on the loop, which has time while the thread writes; a
		 * journaled batch's with its chain's */
		if (!b->journaled)
			store_audit(b);
		if (b->next_id > store.reserved)
			store.reserved = b->next_id;
		store.finals += b->finals;
		store.finals -=
		    b->ngone < store.finals ? b->ngone : store.finals;
		/* an age sweep that deleted all it may: more may be due */
		if (b->trim.older_than > 0 && b->ngone >= STORE_TRIM_MAX) {
			store.sweep_due = true;
			store_mark();
		}
		/*
		 * and a backlog past max_finished goes on without new jobs,
		 * while each batch deletes all it was asked to (finals is a
		 * count kept by the loop, which must not send it round)
		 */
		if (b->trim.excess > 0 && b->ngone >= b->trim.excess &&
		    store.finals >
		        store.max_finished + store.max_finished / 64) {
			store.trim_due = true;
			store_mark();
		}
		for (i = 0; i < b->ngone && store.forgotten != NULL; i++)
			store.forgotten(b->gone[i]);
	} else {
		store_cannot_write(b->cause);
		store_carry(b);
	}
	for (i = 0; i < 2 && store.committed[i] != NULL && !b->journaled; i++)
		store.committed[i](b->seq, b->ok);
}

/* ---- the journal's side ---- */

/* A record of the journal: a batch's rows, or the ids of deleted rows. */
#define JREC_BATCH 1
#define JREC_GONE  2
struct jbatch {
	uint32_t kind;
	uint32_t layout; /* STORE_LAYOUT */
	uint64_t next_id;
	uint64_t n; /* rows, or ids */
	uint64_t rows_len, data_len, ngroups;
};

struct jgroup {
	uint64_t parallel, mem, pids;
	uint32_t name, uid;
	uint8_t paused, del, pad[6];
};

/*
 * A record of another build's batches is not read as this one's.  One of
 * schema 3 is: its rows lack only runtime, which is a record's last
 * field, and its extras and groups have these layouts.
 */
#define STORE_LAYOUT_OF(schema)                                                \
	((uint32_t)((schema) << 24 | sizeof(struct bextra) << 8 |              \
	            sizeof(struct jgroup)))
#define STORE_LAYOUT STORE_LAYOUT_OF(STORE_SCHEMA)

static int
journal_try(struct batch *b, const struct iovec *v, int n)
{
	if (journal_append(store.journal, b->seq, v, n) == 0)
		return 0;
	if ((errno != ENOSPC && errno != EDQUOT) || !store_give_reserve(b))
		return -1;
	return journal_append(store.journal, b->seq, v, n);
}

/* b in the journal; -1 with b->cause. */
static int
journal_put(struct batch *b)
{
	struct jbatch h = {
	    .kind = JREC_BATCH,
	    .layout = STORE_LAYOUT,
	    .next_id = b->next_id,
	    .n = b->n,
	    .rows_len = b->rows.len,
	    .data_len = b->data.len,
	    .ngroups = b->ngroups,
	};
	struct jgroup *g = NULL;
	struct iovec v[4];
	size_t i;
	int rc;

	if (b->ngroups > 0 && (g = calloc(b->ngroups, sizeof(*g))) == NULL) {
		snprintf(b->cause, sizeof(b->cause), "%s", strerror(errno));
		return -1;
	}
	for (i = 0; i < b->ngroups; i++) {
		const struct bgroup *p = &b->groups[i];

		g[i] = (struct jgroup){
		    .parallel = p->g.parallel,
		    .mem = p->g.mem,
		    .pids = p->g.pids,
		    .name = p->name,
		    .uid = (uint32_t)p->g.uid,
		    .paused = p->g.paused,
		    .del = p->del,
		};
	}
	v[0] = (struct iovec){&h, sizeof(h)};
	v[1] = (struct iovec){b->rows.data, b->rows.len};
	v[2] = (struct iovec){b->data.data, b->data.len};
	v[3] = (struct iovec){g, b->ngroups * sizeof(*g)};
	rc = journal_try(b, v, 4);
	if (rc < 0)
		snprintf(b->cause, sizeof(b->cause), "%s: %s", store.path,
		         strerror(errno));
	free(g);
	return rc;
}

/*
 * The rows retention deleted while the journal holds rows that SQLite
 * has not: a record of their ids, so that a replay does not bring them
 * back.  (A crash between the delete and this record brings back a few
 * finished jobs, which retention deletes again.)
 */
static void
journal_gone(const struct batch *b)
{
	struct jbatch h = {.kind = JREC_GONE, .layout = STORE_LAYOUT};
	struct iovec v[2];
	uint64_t last = journal_last(store.journal);

	if (b->ngone == 0 || last <= b->seq)
		return;
	h.n = b->ngone;
	v[0] = (struct iovec){&h, sizeof(h)};
	v[1] = (struct iovec){b->gone, b->ngone * sizeof(*b->gone)};
	if (journal_append(store.journal, last, v, 2) < 0)
		log_warn("%s: journal", store.path);
}

/*
 * A sealed batch goes to the journal, and the replies that wait for it
 * go out; it waits in pending for SQLite.  If it cannot be journaled it
 * fails as a commit does: carried to the next, its replies waiting.
 */
static void
store_journal(struct batch *b)
{
	size_t i;

	if (journal_put(b) < 0) {
		b->ok = false;
		store_finish(b);
		store_recycle(b);
		return;
	}
	b->ok = b->journaled = true;
	if (b->reserve_used) {
		store_full();
		/* told now: not again when SQLite has the batch */
		b->reserve_used = false;
	}
	if (b->next_id > store.reserved)
		store.reserved = b->next_id;
	for (i = 0; i < 2 && store.committed[i] != NULL; i++)
		store.committed[i](b->seq, true);
	b->next = NULL;
	if (store.pending_last != NULL)
		store.pending_last->next = b;
	else
		store.pending = b;
	store.pending_last = b;
	store.npending++;
	store.npending_rows += b->n + b->ngroups;
	store.journaled = b->seq;
}

/* ---- the journal read back, at the start ---- */

/* A string at off of a batch's data: NUL-terminated within it. */
static bool
valid_str(const struct batch *b, uint32_t off)
{
	return off == UINT32_MAX ||
	       (off < b->data.len &&
	        memchr(b->data.data + off, '\0', b->data.len - off) != NULL);
}

static bool
valid_blob(const struct batch *b, uint32_t off, uint32_t len)
{
	return off == UINT32_MAX ||
	       (off <= b->data.len && len <= b->data.len - off);
}

/* The rows of a batch read back: within its bytes, with sane values. */
static bool
batch_valid(const struct batch *b)
{
	const unsigned char *p = batch_rows(b), *end = p + b->rows.len;
	struct brow row, *w = &row;
	size_t i;

	if (b->n > b->rows.len / 2)
		return false;
	for (i = 0; i < b->n; i++) {
		const struct bextra *be;

		p = row_get(p, w);
		if (p > end || w->r.state >= PS_COUNT || w->r.err >= PE_COUNT ||
		    w->r.exec >= PX_COUNT || w->r.requested >= PX_COUNT ||
		    !valid_str(b, w->task) || !valid_str(b, w->error) ||
		    !valid_str(b, w->msg) ||
		    !valid_blob(b, w->args, w->r.args_len) ||
		    !valid_blob(b, w->result, w->r.result_len))
			return false;
		if (w->x == UINT32_MAX)
			continue;
		if (w->x % 8 != 0 || w->x > b->data.len ||
		    b->data.len - w->x < sizeof(struct bextra))
			return false;
		be = (const struct bextra *)(const void *)(b->data.data + w->x);
		if (!valid_str(b, be->cwd) || !valid_str(b, be->command) ||
		    !valid_str(b, be->group) || !valid_str(b, be->label) ||
		    !valid_str(b, be->node) || !valid_str(b, be->after) ||
		    !valid_blob(b, be->env, be->env_len))
			return false;
	}
	for (i = 0; i < b->ngroups; i++)
		if (!valid_str(b, b->groups[i].name))
			return false;
	return p == end;
}

/*
 * A record of schema 3 had no umask: in its place, what its struct
 * job_extra had there, which is not one.
 */
static void
batch_forget_umasks(struct batch *b)
{
	const unsigned char *p = batch_rows(b);
	struct brow row;
	struct bextra *be;
	size_t i;

	for (i = 0; i < b->n; i++) {
		p = row_get(p, &row);
		if (row.x == UINT32_MAX)
			continue;
		be = (struct bextra *)(void *)(b->data.data + row.x);
		be->umask = 0;
	}
}

struct replay {
	struct batch *first, *last;
	char why[200]; /* a record refused: why, if known */
};

/* A record of the journal into a batch at the end of the chain. */
static int
store_replay_record(uint64_t seq, const void *p, size_t len, void *arg)
{
	struct replay *r = arg;
	const char *q = (const char *)p + sizeof(struct jbatch);
	struct jbatch h;
	struct batch *b;
	size_t i, left;

	(void)seq;
	if (len < sizeof(h))
		return -1;
	memcpy(&h, p, sizeof(h));
	left = len - sizeof(h);
	if (h.layout != STORE_LAYOUT && h.layout != STORE_LAYOUT_OF(3)) {
		snprintf(r->why, sizeof(r->why),
		         ": written by another build of concd (layout %#x; "
		         "this one reads %#x and %#x); start that build on it "
		         "once, or move the journal away",
		         h.layout, STORE_LAYOUT, STORE_LAYOUT_OF(3));
		return -1;
	}
	b = batch_new();
	if (r->last != NULL)
		r->last->next = b;
	else
		r->first = b;
	r->last = b;
	if (h.kind == JREC_GONE) {
		if (h.n != left / sizeof(uint64_t) || left % sizeof(uint64_t))
			return -1;
		b->deletes = true;
		if (h.n > 0 && (b->gone = malloc(left)) == NULL)
			return -1;
		if (h.n > 0)
			memcpy(b->gone, q, left);
		b->ngone = h.n;
		return 0;
	}
	if (h.kind != JREC_BATCH || h.rows_len > left || h.data_len > left ||
	    h.ngroups > left / sizeof(struct jgroup) ||
	    h.rows_len + h.data_len + h.ngroups * sizeof(struct jgroup) !=
	        left ||
	    h.data_len >= UINT32_MAX)
		return -1;
	/* row_get may read a record's most past the end: zeros */
	pbuf_append(&b->rows, q, h.rows_len);
	pbuf_reserve(&b->rows, ROW_MAX + 16);
	memset(b->rows.data + b->rows.len, 0, ROW_MAX + 16);
	pbuf_append(&b->data, q + h.rows_len, h.data_len);
	b->n = h.n;
	b->next_id = h.next_id;
	q += h.rows_len + h.data_len;
	for (i = 0; i < h.ngroups; i++) {
		struct jgroup g;

		memcpy(&g, q + i * sizeof(g), sizeof(g));
		*batch_group_slot(b) = (struct bgroup){
		    .g = {.parallel = g.parallel,
		          .mem = g.mem,
		          .pids = g.pids,
		          .uid = (uid_t)g.uid,
		          .paused = g.paused != 0},
		    .name = g.name,
		    .del = g.del != 0,
		};
	}
	if (!batch_valid(b))
		return -1;
	if (h.layout == STORE_LAYOUT_OF(3))
		batch_forget_umasks(b);
	return 0;
}

/*
 * At the start: what the journal holds goes into SQLite, in one commit,
 * before the jobs are read; then the journal begins anew.  A record may
 * be there already: new rows replace theirs, and the rows that follow
 * bring each job to its last state.
 */
static int
store_replay(const char *dir, bool fsync, char *cause, size_t len)
{
	struct replay r = {.first = NULL};
	struct batch *b;
	size_t k;
	int n, rc = 0;

	if ((n = journal_replay(dir, store_replay_record, &r, cause, len)) <
	    0) {
		if ((k = strlen(cause)) < len)
			snprintf(cause + k, len - k, "%s", r.why);
		rc = -1;
	} else if (r.first != NULL) {
		store.replaying = true;
		write_batch_once(r.first);
		store.replaying = false;
		newest_free(); /* the whole journal's: not kept */
		if (!r.first->ok) {
			snprintf(cause, len,
			         "%s: the jobs its journal holds cannot be "
			         "written: %s",
			         store.path, r.first->cause);
			rc = -1;
		} else
			log_info("%s: %d records of its journal written (concd "
			         "stopped before it wrote them)",
			         store.path, n);
	}
	while ((b = r.first) != NULL) {
		r.first = b->next;
		batch_free(b);
	}
	if (rc == 0 && journal_remove(dir, cause, len) < 0)
		rc = -1;
	if (rc == 0 &&
	    (store.journal = journal_open(dir, fsync, cause, len)) == NULL)
		rc = -1;
	return rc;
}

static void store_finish_chain(struct batch *);

/*
 * Journaled batches go to SQLite together: once there are enough, or
 * once the first has waited STORE_FEED_US; at once for store_sync.
 */
static void
store_feed(void)
{
	static const struct timeval later = {0, STORE_FEED_US};
	struct batch *chain;

	if (store.pending == NULL || store.sql_blocked || store.nflight > 0)
		return;
	if (!store.syncing && !store.feed_due &&
	    store.npending_rows < STORE_FEED_ROWS &&
	    store.npending < STORE_FEED_BATCHES) {
		if (!evtimer_pending(store.feed_ev, NULL)) {
			event_base_update_cache_time(loop_base);
			evtimer_add(store.feed_ev, &later);
		}
		return;
	}
	store.feed_due = false;
	evtimer_del(store.feed_ev);
	chain = store.pending;
	store.pending = store.pending_last = NULL;
	store.npending = store.npending_rows = 0;
	if (store.syncing) {
		write_batch(chain);
		store_finish_chain(chain);
		return;
	}
	store.nflight++;
	pthread_mutex_lock(&store.lock);
	store.todo = chain;
	pthread_cond_signal(&store.cond);
	pthread_mutex_unlock(&store.lock);
}

/*
 * SQLite has a chain of journaled batches, or failed them: then they go
 * back to the head of pending, in order, until the retry.
 */
static void
store_finish_chain(struct batch *chain)
{
	struct batch *b, *next, *last = chain;
	size_t n = 0, rows = 0;

	if (!chain->ok) {
		store_cannot_write(chain->cause);
		for (b = chain; b != NULL; b = b->next) {
			last = b;
			n++;
			rows += b->n + b->ngroups;
		}
		last->next = store.pending;
		if (store.pending == NULL)
			store.pending_last = last;
		store.pending = chain;
		store.npending += n;
		store.npending_rows += rows;
		store.sql_blocked = true;
		/* the reads that waited for SQLite read what it has */
		if (store.written_hook != NULL)
			store.written_hook(UINT64_MAX);
		return;
	}
	store_audit(chain);
	for (b = chain; b != NULL; b = next) {
		next = b->next;
		journal_gone(b);
		store_finish(b);
		if (next == NULL) {
			journal_written(store.journal, b->seq);
			store.written = b->seq;
		}
		store_recycle(b);
	}
	if (store.written_hook != NULL)
		store.written_hook(store.written);
}

/*
 * The time for what retention owes has come, and no batch may come to
 * take it: the burst of jobs that left it has ended.
 */
static void
store_trim_cb(evutil_socket_t fd, short what, void *arg)
{
	store.trim_due = true;
	store_mark();
}

/*
 * What retention asks of the next batch the thread writes.  The store
 * keeps up to max_finished finished jobs, and trims them once it holds
 * a 64th more, so that a busy store deletes in bulk, not at every batch.
 */
static bool
store_plan_trim(struct batch *b)
{
	uint64_t now = loop_now_us(), slack = store.max_finished / 64;
	uint64_t finals = store.finals + b->finals, mono = loop_mono_us();

	/* old jobs are looked for whenever a job finishes, as in memory */
	if (b->finals > 0 && store.ttl_us > 0)
		store.sweep_due = true;

	/*
	 * A few thousand rows at a time, at most every STORE_TRIM_GAP_US: a
	 * backlog (a lower --max-finished, a million jobs just ended) is
	 * worked off over many batches, not in one that stalls the others.
	 * What is owed meanwhile goes then, with a batch of its own if no
	 * other comes.
	 */
	if (!store.syncing && mono < store.trim_next) {
		if ((finals > store.max_finished + slack ||
		     (store.sweep_due && store.ttl_us > 0)) &&
		    !evtimer_pending(store.trim_ev, NULL)) {
			struct timeval tv = {
			    0, (suseconds_t)(store.trim_next - mono)};

			evtimer_add(store.trim_ev, &tv);
		}
		return false;
	}
	store.trim_due = false;
	if (finals > store.max_finished + slack)
		b->trim.excess = finals - store.max_finished < STORE_TRIM_MAX
		                     ? finals - store.max_finished
		                     : STORE_TRIM_MAX;
	else if (store.sweep_due && store.ttl_us > 0) {
		store.sweep_due = false;
		b->trim.older_than = now - store.ttl_us;
	}
	if (b->trim.excess == 0 && b->trim.older_than == 0)
		return false;
	store.trim_next = mono + STORE_TRIM_GAP_US;
	return true;
}

/*
 * A batch that only writes the ends (and other changes) of jobs already
 * committed, for which no reply waits, is not written at once: it waits
 * up to STORE_LAZY_US for more, so that commands ending one by one (a
 * gather of a thousand) are written a few dozen at a time, not each in a
 * commit of its own.  Their ends have gone to their watchers already; a
 * crash within that while leaves them running in the store, and they end
 * interrupted at the restart, as a job does that was running then.
 */
static bool
store_lazy(const struct batch *b)
{
	static const struct timeval lazy = {0, STORE_LAZY_US};

	if (store.syncing || store.hurry || store.want || store.sweep_due ||
	    store.trim_due || store.lazy_over || b->inserts > 0 ||
	    b->ngroups > 0 || b->next_id > 0 || b->n == 0 ||
	    b->n >= STORE_LAZY_ROWS)
		return false;
	if (!evtimer_pending(store.lazy_ev, NULL)) {
		event_base_update_cache_time(loop_base);
		evtimer_add(store.lazy_ev, &lazy);
	}
	return true;
}

void
store_commit(void)
{
	static const struct timeval delay = {0, STORE_DELAY_US};
	struct batch *b;
	size_t held;
	bool hold;

	store.marked = false;
	if (!store.on && !store.memory)
		return;
	if (store.memory) { /* the audit trail, and nothing kept */
		if (store.collect != NULL)
			store.collect(false);
		if (store.open != NULL) {
			store_audit(store.open);
			batch_reset(store.open);
		}
		return;
	}
	/*
	 * Commit delay: new jobs that have not ended are held back for up to
	 * STORE_DELAY_US, and the batch waits with them, so that a job that
	 * ends soon (a round trip on a worker) is written once; its reply
	 * waits for the batch in any case.  A job that ends later (a deep
	 * queue of worker jobs) is journaled twice, and written to SQLite
	 * once if both rows meet in a chain (newest_map).  Holding them on
	 * while the store's thread wrote, as concd did, kept every reply of
	 * a pipeline waiting for SQLite: pipelined process no-ops 199k-275k
	 * jobs/s without it against 162k-225k with it (four rounds).
	 */
	hold = !store.syncing && !store.hurry && store.delay != DELAY_OVER;
	held = store.collect != NULL ? store.collect(hold) : 0;
	if (store.blocked)
		goto feed;
	if (held > 0 && hold) {
		if (store.delay == DELAY_NONE) {
			store.delay = DELAY_WAITING;
			event_base_update_cache_time(loop_base);
			evtimer_add(store.delay_ev, &delay);
		}
		goto feed;
	}
	store.delay = DELAY_NONE;
	evtimer_del(store.delay_ev);
	/*
	 * SQLite is far behind the journal (locked by another program, or
	 * slower than the jobs come): the batch and its replies wait for the
	 * thread, so that a client that outpaces SQLite is held to its pace
	 * (its connection pauses once enough replies wait) and what SQLite
	 * has yet to get stays bounded.
	 */
	if (store.nflight > 0 && store.npending_rows >= STORE_BACKLOG_ROWS)
		goto feed;
	if (store.open != NULL && store_lazy(store.open))
		goto feed;
	store.lazy_over = false;
	evtimer_del(store.lazy_ev);
	if ((b = store.open) == NULL &&
	    (store.sweep_due || store.trim_due)) { /* no rows */
		b = store.open = batch_take();
	}
	if (b == NULL || (b->n == 0 && b->ngroups == 0 && b->next_id == 0 &&
	                  !store.sweep_due && !store.trim_due)) {
		/* a reply waits on a batch with nothing to write: it is */
		if (store.want) {
			store.want = false;
			b = batch_take();
			b->seq = store.seq++;
			b->ok = true;
			store_finish(b);
			store_recycle(b);
		}
		goto feed;
	}
	b = store_take_open();
	if (store_plan_trim(b) && store.next_hook != NULL &&
	    store.next_hook() > b->next_id)
		b->next_id = store.next_hook();
	store_journal(b);
feed:
	store_feed();
}

static void
store_commit_cb(evutil_socket_t fd, short what, void *arg)
{
	store_commit();
}

/* The commit delay is over: what was held back goes in now. */
static void
store_delay_cb(evutil_socket_t fd, short what, void *arg)
{
	store.delay = DELAY_OVER;
	store_commit();
}

static void
store_lazy_cb(evutil_socket_t fd, short what, void *arg)
{
	store.lazy_over = true;
	store_commit();
}

static void
store_feed_cb(evutil_socket_t fd, short what, void *arg)
{
	store.feed_due = true;
	store_feed();
}

static void
store_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct batch *done;

	pthread_mutex_lock(&store.lock);
	done = store.done;
	store.done = NULL;
	pthread_mutex_unlock(&store.lock);
	if (done == NULL)
		return;
	store.nflight--;
	store_finish_chain(done);
	if (!store.syncing)
		store_commit();
}

/*
 * Before a read that must agree with the job table, on the loop without
 * waiting: what the table holds now goes to the journal and at once on
 * to the thread; the seq of the batch SQLite must have for the read (the
 * written hook tells when), or 0 if it has it (or has refused a commit:
 * then the read takes what it has, as it would after waiting).
 */
uint64_t
store_behind(void)
{
	if (!store_writable())
		return 0;
	store.hurry = store.feed_due = true;
	store_commit();
	store.hurry = false;
	return store.journaled > store.written ? store.journaled : 0;
}

/*
 * Make the store what the job table is, on the loop, waiting for the
 * thread and for SQLite's locks: the batch with the thread, then what is
 * left, here.  For what writes to SQLite from the loop (clean);
 * a read waits with store_behind instead.
 */
void
store_sync(void)
{
	if (!store.on)
		return;
	store.syncing = true;
	while (store.nflight > 0) {
		pthread_mutex_lock(&store.lock);
		while (store.done == NULL)
			pthread_cond_wait(&store.cond, &store.lock);
		pthread_mutex_unlock(&store.lock);
		store_done_cb(-1, 0, NULL);
	}
	pthread_mutex_lock(&store.lock);
	while (atomic_load(&store.checkpointing))
		pthread_cond_wait(&store.cond, &store.lock);
	pthread_mutex_unlock(&store.lock);
	/* what it cannot journal, blocked, waits for the retry */
	store_commit();
	store.syncing = false;
}

/* Jobs finished longer ago than --finished-ttl go, at start and then. */
static void
store_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	static const struct timeval every = {STORE_TRIM_EVERY, 0};

	store.sweep_due = store.ttl_us > 0;
	evtimer_add(store.sweep_ev, &every);
	if (store.sweep_due)
		store_mark();
	/*
	 * A reserve that could not be made (a disk already full at the
	 * start) is tried again here; while the store fails, the retry does
	 */
	if (!atomic_load(&store.reserve_ok) && store.failing[0] == '\0' &&
	    store_reserve_make() == 0)
		log_info("%s: made: %d MiB kept in reserve for a full disk",
		         store.reserve, STORE_RESERVE >> 20);
}

/*
 * While the store fails: write what waits, and once the reserve can be
 * made again, take new jobs again.
 */
static void
store_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	if (!atomic_load(&store.reserve_ok) && store_reserve_make() < 0 &&
	    store.nflight == 0 && !atomic_load(&store.checkpointing) &&
	    store_shrink_wal())
		(void)store_reserve_make();
	if (store.nflight > 0) { /* the failed batch's followers first */
		loop_retry_later(store.retry_ev, &store.retry_ms,
		                 STORE_RETRY_MIN, STORE_RETRY_MAX);
		return;
	}
	store.blocked = false;
	store.sql_blocked = false;
	store.feed_due = true;
	store_commit();
	if (store.nflight > 0 || store.failing[0] == '\0')
		return;
	if (atomic_load(&store.reserve_ok) && store.pending == NULL &&
	    (store.open == NULL ||
	     (store.open->n == 0 && store.open->ngroups == 0))) {
		log_info("%s: there is room again; new jobs are accepted",
		         store.path);
		store.failing[0] = '\0';
		store.retry_ms = 0;
	} else if (!evtimer_pending(store.retry_ev, NULL))
		loop_retry_later(store.retry_ev, &store.retry_ms,
		                 STORE_RETRY_MIN, STORE_RETRY_MAX);
}

int
store_start(void)
{
	if (!store.on) { /* in memory: the audit trail only */
		store.commit_ev =
		    event_new(loop_base, -1, 0, store_commit_cb, NULL);
		store.memory = store.commit_ev != NULL;
		return store.memory ? 0 : -1;
	}
	store.commit_ev = event_new(loop_base, -1, 0, store_commit_cb, NULL);
	store.done_ev = event_new(loop_base, -1, 0, store_done_cb, NULL);
	store.retry_ev = evtimer_new(loop_base, store_retry_cb, NULL);
	store.delay_ev = evtimer_new(loop_base, store_delay_cb, NULL);
	store.lazy_ev = evtimer_new(loop_base, store_lazy_cb, NULL);
	store.sweep_ev = evtimer_new(loop_base, store_sweep_cb, NULL);
	store.trim_ev = evtimer_new(loop_base, store_trim_cb, NULL);
	store.feed_ev = evtimer_new(loop_base, store_feed_cb, NULL);
	if (store.commit_ev == NULL || store.done_ev == NULL ||
	    store.retry_ev == NULL || store.delay_ev == NULL ||
	    store.lazy_ev == NULL || store.sweep_ev == NULL ||
	    store.trim_ev == NULL || store.feed_ev == NULL)
		return -1;
	store_sweep_cb(-1, 0, NULL);
	pthread_mutex_init(&store.lock, NULL);
	pthread_cond_init(&store.cond, NULL);
	if (loop_thread_create(&store.thread, store_thread, NULL) != 0)
		return -1;
	store.started = true;
	return 0;
}

/*
 * At the end: the batch with the thread is waited for, what is left is
 * written here, and the WAL is folded into the database.
 */
void
store_close(void)
{
	struct batch *b;
	int i;

	if (store.memory) {
		store_commit();
		event_free(store.commit_ev);
		batch_free(store.open);
		batch_free_spares();
		memset(&store, 0, sizeof(store));
		store.lock_fd = -1;
		return;
	}
	if (!store.on)
		return;
	if (store.started) {
		pthread_mutex_lock(&store.lock);
		while (store.nflight > (store.done != NULL))
			pthread_cond_wait(&store.cond, &store.lock);
		store.quit = true;
		pthread_cond_signal(&store.cond);
		pthread_mutex_unlock(&store.lock);
		pthread_join(store.thread, NULL);
		/* from now on every batch is written here: none to the thread
		 */
		store.syncing = true;
		store_done_cb(-1, 0, NULL);
		store.blocked = false;
		/* what the journal holds and SQLite not yet */
		store.sql_blocked = false;
		store_feed();
	}
	if (store.collect != NULL)
		store.collect(false);
	/*
	 * The last rows, and one batch of what retention owes: a backlog of
	 * a million rows to delete is not worked off while the stop waits, but
	 * by the next concd, a few thousand at a time.
	 */
	for (i = 0; i < 1000 && !store.blocked; i++) {
		bool ok;

		if ((b = store.open) == NULL) {
			b = batch_take();
		}
		store.open = NULL;
		if (!(i == 0 && store_plan_trim(b)) && b->n == 0 &&
		    b->ngroups == 0) {
			store_recycle(b);
			break;
		}
		b->seq = store.seq++;
		write_batch(b);
		if (!(ok = b->ok))
			log_warnx("%s: the last changes are lost: %s",
			          store.path, b->cause);
		store_finish(b);
		store_recycle(b);
		if (!ok)
			break;
	}
	/* every id given out is in a row: a restart goes on from the next */
	if (store.next_hook != NULL && store.next_hook() > 0 &&
	    !store.blocked) {
		if (store_stmt(ST_SET_NEXT_ID) != NULL)
			sqlite3_bind_int64(store.st[ST_SET_NEXT_ID], 1,
			                   (sqlite3_int64)store.next_hook());
		if (store_step(ST_SET_NEXT_ID) < 0)
			log_warnx("%s: %s", store.path,
			          sqlite3_errmsg(store.db));
	}
	sqlite3_wal_checkpoint_v2(store.db, NULL, SQLITE_CHECKPOINT_TRUNCATE,
	                          NULL, NULL);
	/* SQLite has it all: the journal goes; else the next concd reads it */
	journal_close(store.journal, store.pending == NULL && !store.blocked);
	while ((b = store.pending) != NULL) {
		store.pending = b->next;
		batch_free(b);
	}
	for (i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(store.st[i]);
	sqlite3_finalize(store.get);
	sqlite3_close(store.rdb);
	sqlite3_close(store.db);
	newest_free();
	if (store.commit_ev != NULL)
		event_free(store.commit_ev);
	if (store.done_ev != NULL)
		event_free(store.done_ev);
	if (store.retry_ev != NULL)
		event_free(store.retry_ev);
	if (store.delay_ev != NULL)
		event_free(store.delay_ev);
	if (store.lazy_ev != NULL)
		event_free(store.lazy_ev);
	if (store.sweep_ev != NULL)
		event_free(store.sweep_ev);
	if (store.trim_ev != NULL)
		event_free(store.trim_ev);
	if (store.feed_ev != NULL)
		event_free(store.feed_ev);
	batch_free(store.open);
	batch_free_spares();
	free(store.path);
	free(store.reserve);
	if (store.lock_fd >= 0)
		close(store.lock_fd);
	memset(&store, 0, sizeof(store));
	store.lock_fd = -1;
}
