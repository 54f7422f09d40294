/*
 * clockshift.c -- an LD_PRELOAD library for the tests: a process's wall
 * clock (CLOCK_REALTIME through clock_gettime, gettimeofday and time)
 * runs as many seconds ahead of the machine's as the file named by
 * CONCD_CLOCKSHIFT_FILE holds (8 bytes, a native int64), a number the
 * test may change while the process runs: a clock set forward, without
 * setting the machine's.  The other clocks are left alone.
 */
#include <sys/mman.h>
#include <sys/time.h>

#include <dlfcn.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static const volatile int64_t *shift;
static int (*real_clock_gettime)(clockid_t, struct timespec *);

__attribute__((constructor)) static void
clockshift_init(void)
{
	const char *path = getenv("CONCD_CLOCKSHIFT_FILE");
	void *m;
	int fd;

	real_clock_gettime = dlsym(RTLD_NEXT, "clock_gettime");
	if (path == NULL || (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return;
	m = mmap(NULL, sizeof(int64_t), PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (m != MAP_FAILED)
		shift = m;
}

static int64_t
seconds_ahead(void)
{
	return shift != NULL ? *shift : 0;
}

int
clock_gettime(clockid_t id, struct timespec *ts)
{
	int rc;

	if (real_clock_gettime == NULL)
		real_clock_gettime = dlsym(RTLD_NEXT, "clock_gettime");
	rc = real_clock_gettime(id, ts);
	if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE))
		ts->tv_sec += (time_t)seconds_ahead();
	return rc;
}

int
gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
		return -1;
	tv->tv_sec = ts.tv_sec;
	tv->tv_usec = (suseconds_t)(ts.tv_nsec / 1000);
	return 0;
}

time_t
time(time_t *t)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (t != NULL)
		*t = ts.tv_sec;
	return ts.tv_sec;
}
