/*
 * checksum -- blocking file I/O: read a file 1 MiB per step with read(2)
 * and digest it with 64-bit FNV-1a, reporting bytes read so far.  The
 * digest is written out here (a few lines, no library).  The file is
 * read with the daemon's rights.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../task.h"

#define CHECKSUM_CHUNK (1024 * 1024) /* bytes per step */
#define CHECKSUM_SHOW  200           /* path bytes quoted in errors */

#define FNV1A64_OFFSET 0xcbf29ce484222325ULL
#define FNV1A64_PRIME  0x100000001b3ULL

enum { CHECKSUM_PATH };

static const struct task_arg checksum_args[] = {
    [CHECKSUM_PATH] = {"path", TASK_ARG_STR, true, 1, 4096, 0,
                       "the file to read"},
};

struct checksum_state {
	char *path; /* NUL-terminated copy */
	int fd;
	uint64_t size; /* from fstat, for progress */
	uint64_t done;
	uint64_t fnv;
	unsigned char *buf;
};

static uint64_t
checksum_fnv1a64(uint64_t h, const unsigned char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= p[i];
		h *= FNV1A64_PRIME;
	}
	return h;
}

/* The path as errors show it: long ones are cut short. */
static int
checksum_shown(const struct checksum_state *s)
{
	size_t len = strlen(s->path);

	return (int)(len > CHECKSUM_SHOW ? CHECKSUM_SHOW : len);
}

static const char *
checksum_ellipsis(const struct checksum_state *s)
{
	return strlen(s->path) > CHECKSUM_SHOW ? "..." : "";
}

static int
checksum_start(struct task_ctx *ctx, const union task_value *argv)
{
	struct checksum_state *s = task_state(ctx);
	const char *p = argv[CHECKSUM_PATH].s.ptr;
	size_t len = argv[CHECKSUM_PATH].s.len;
	const char *why;
	struct stat st;

	s->fd = -1;
	s->fnv = FNV1A64_OFFSET;
	if (memchr(p, '\0', len) != NULL) {
		task_fail(ctx, "checksum: path contains a NUL byte");
		return -1;
	}
	if ((s->path = malloc(len + 1)) == NULL)
		goto nomem;
	memcpy(s->path, p, len);
	s->path[len] = '\0';

	/* O_NONBLOCK: opening a FIFO must not hang the worker. */
	s->fd = task_open(ctx, s->path, O_RDONLY | O_NOCTTY | O_NONBLOCK, 0);
	if (s->fd < 0) {
		why = strerror(errno);
		goto bad;
	}
	if (fstat(s->fd, &st) < 0) {
		why = strerror(errno);
		goto bad;
	}
	if (S_ISDIR(st.st_mode)) {
		why = strerror(EISDIR);
		goto bad;
	}
	if (!S_ISREG(st.st_mode)) {
		why = "not a regular file";
		goto bad;
	}
	(void)fcntl(s->fd, F_SETFL, fcntl(s->fd, F_GETFL) & ~O_NONBLOCK);
	s->size = (uint64_t)st.st_size;
	if ((s->buf = malloc(CHECKSUM_CHUNK)) == NULL)
		goto nomem;
	return 0;

bad:
	task_fail(ctx, "checksum: cannot open %.*s%s: %s", checksum_shown(s),
	          s->path, checksum_ellipsis(s), why);
	goto out;
nomem:
	task_fail(ctx, "checksum: out of memory");
out:
	if (s->fd >= 0)
		close(s->fd);
	free(s->path);
	free(s->buf);
	return -1;
}

static enum task_step
checksum_step(struct task_ctx *ctx)
{
	struct checksum_state *s = task_state(ctx);
	msgpack_packer *pk;
	char hex[17];
	ssize_t n;

	if (task_cancelled(ctx))
		return TASK_FAILED;
	do
		n = read(s->fd, s->buf, CHECKSUM_CHUNK);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return task_fail(ctx, "checksum: cannot read %.*s%s: %s",
		                 checksum_shown(s), s->path,
		                 checksum_ellipsis(s), strerror(errno));
	if (n > 0) {
		s->fnv = checksum_fnv1a64(s->fnv, s->buf, (size_t)n);
		s->done += (uint64_t)n;
		/* The file may have grown since fstat. */
		task_progress(ctx, s->done,
		              s->done > s->size ? s->done : s->size, NULL);
		return TASK_YIELD;
	}

	snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)s->fnv);
	pk = task_result(ctx);
	msgpack_pack_map(pk, 3);
	msgpack_pack_str_with_body(pk, "path", 4);
	msgpack_pack_str_with_body(pk, s->path, strlen(s->path));
	msgpack_pack_str_with_body(pk, "size", 4);
	msgpack_pack_uint64(pk, s->done);
	msgpack_pack_str_with_body(pk, "fnv1a64", 7);
	msgpack_pack_str_with_body(pk, hex, 16);
	return TASK_DONE;
}

static void
checksum_stop(struct task_ctx *ctx)
{
	struct checksum_state *s = task_state(ctx);

	close(s->fd);
	free(s->path);
	free(s->buf);
}

const struct task task_checksum = {
    .abi = CONCD_TASK_ABI,
    .name = "checksum",
    .summary = "read a file and digest it (blocking I/O)",
    .traits = TASK_BLOCKING,
    .executors = TASK_ON_THREAD | TASK_ON_PROCESS,
    .state_size = sizeof(struct checksum_state),
    .args = checksum_args,
    .nargs = sizeof(checksum_args) / sizeof(checksum_args[0]),
    .start = checksum_start,
    .step = checksum_step,
    .stop = checksum_stop,
};
