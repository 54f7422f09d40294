/*
 * python.c -- the `python` task, linked against libpython3 and loaded by
 * python_shim.c (python.so) at a worker's first python job:
 * calls module:function with msgpack arguments on a warm worker and
 * packs its return value as the result.
 *
 * The interpreter is started by the first python job a worker runs (the
 * task's init), never before, and stays for the worker's life, so the
 * modules a call imports stay imported for the next one.  A worker
 * process has an interpreter of its own; the threads of the thread pool
 * share one (the GIL), each call taking the GIL for its run.
 *
 * A call's cancel (or timeout) is an asynchronous exception in the
 * calling thread (_concd_task.Cancelled, a BaseException), raised at the
 * next bytecode by a watcher thread that looks at the running calls
 * every PY_WATCH_MS; a call blocked in C ends by the executor's grace and
 * kill.  Inside the function, `import _concd_task` gives progress(done,
 * total, msg=None) and cancelled().
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <sys/stat.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <concd/task.h>

#include "python.h"

#define PY_WATCH_MS  10
#define PY_MAX_CALLS 256  /* running at once in one process */
#define PY_OUT_MAX   4096 /* bytes of a call's output held for its line */
#define PY_MAX_DEPTH 64   /* of nested lists and maps, both ways */
/*
 * A result must fit in the job's end frame: PROTO_MAX_FRAME (1 MiB of
 * payload, concd-protocol(7)) less room for the frame's other fields.
 */
#define PY_MAX_RESULT (1024 * 1024 - 4096)
/*
 * And the protocol's other limits (PROTO_MAX_STR, PROTO_MAX_ITEMS,
 * PROTO_MAX_DEPTH, the frame's own map being one level).
 */
#define PY_MAX_STR   (256 * 1024)
#define PY_MAX_ITEMS 65536
#define PY_MAX_NEST  7

/* One running call, for the watcher. */
struct py_call {
	struct task_ctx *ctx;
	unsigned long thread_id;
	bool interrupted;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int users;             /* workers whose init ran */
	bool up;               /* Py_Initialize done, the GIL released */
	PyThreadState *main;   /* the thread state of Py_Initialize */
	pthread_t main_thread; /* the thread that called it */
	pthread_t watcher;
	bool watching, stop;
	bool starting;       /* a py_init brings it up: others wait */
	bool started;        /* py_main: its py_up is over */
	int start_rc;        /* and answered this */
	char start_err[256]; /* with this, if -1 */
	char broken[256];    /* it failed half up: every init says this */
	struct py_call *calls[PY_MAX_CALLS];
	PyObject *cancelled_exc; /* _concd_task.Cancelled */
} py = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .cond = PTHREAD_COND_INITIALIZER,
};

/* The job of the calling thread's current call, for _concd_task. */
static _Thread_local struct task_ctx *py_current;

/* ---- _concd_task: progress and cancel from inside the function ---- */

static PyObject *
py_mod_progress(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *names[] = {"done", "total", "msg", NULL};
	unsigned long long done, total;
	const char *msg = NULL;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "KK|z:progress", names,
	                                 &done, &total, &msg))
		return NULL;
	if (py_current != NULL)
		task_progress(py_current, done, total, msg);
	Py_RETURN_NONE;
}

static PyObject *
py_mod_cancelled(PyObject *self, PyObject *unused)
{
	return PyBool_FromLong(py_current != NULL &&
	                       task_cancelled(py_current));
}

/*
 * What the calling thread's call wrote and has not sent yet: output goes
 * out a line at a time (print sends each of its pieces), and at the end
 * of the call.
 */
static _Thread_local struct {
	char *data;
	size_t len;
	int stream;
} py_out;

/* Sends what py_out holds; without the GIL: task_output may wait. */
static void
py_out_flush(struct task_ctx *ctx)
{
	if (py_out.len > 0)
		task_output(ctx, py_out.stream, py_out.data, py_out.len);
	py_out.len = 0;
}

/*
 * data for stream: held until a line is in; sent at once past
 * PY_OUT_MAX (after what was held).
 */
static void
py_out_add(struct task_ctx *ctx, int stream, const char *data, size_t len)
{
	if (py_out.len > 0 &&
	    (py_out.stream != stream || py_out.len + len > PY_OUT_MAX)) {
		Py_BEGIN_ALLOW_THREADS;
		py_out_flush(ctx);
		Py_END_ALLOW_THREADS;
	}
	if (py_out.data == NULL)
		py_out.data = malloc(PY_OUT_MAX);
	if (len < PY_OUT_MAX && py_out.data != NULL) {
		memcpy(py_out.data + py_out.len, data, len);
		py_out.len += len;
		py_out.stream = stream;
		if (memchr(data, '\n', len) == NULL)
			return;
		len = 0; /* in py_out now */
	}
	Py_BEGIN_ALLOW_THREADS;
	py_out_flush(ctx);
	if (len > 0)
		task_output(ctx, stream, data, len);
	Py_END_ALLOW_THREADS;
}

/*
 * _write(stream, data): str or bytes the calling thread's call wrote to
 * sys.stdout (1) or sys.stderr (2), for its job's output; False outside
 * a call, where the stream's own file takes it (py_streams).
 */
static PyObject *
py_mod_write(PyObject *self, PyObject *args)
{
	struct task_ctx *ctx = py_current;
	PyObject *o, *bytes = NULL;
	Py_buffer b;
	int stream;

	if (!PyArg_ParseTuple(args, "iO:_write", &stream, &o))
		return NULL;
	if (ctx == NULL || (stream != 1 && stream != 2))
		Py_RETURN_FALSE;
	if (PyUnicode_Check(o)) {
		bytes =
		    PyUnicode_AsEncodedString(o, "utf-8", "backslashreplace");
		if (bytes == NULL)
			return NULL;
		o = bytes;
	}
	if (PyObject_GetBuffer(o, &b, PyBUF_SIMPLE) < 0) {
		Py_XDECREF(bytes);
		return NULL;
	}
	py_out_add(ctx, stream, b.buf, (size_t)b.len);
	PyBuffer_Release(&b);
	Py_XDECREF(bytes);
	Py_RETURN_TRUE;
}

static PyMethodDef py_mod_methods[] = {
    {"progress", (PyCFunction)(void (*)(void))py_mod_progress,
     METH_VARARGS | METH_KEYWORDS,
     "progress(done, total, msg=None): report the call's progress"},
    {"cancelled", py_mod_cancelled, METH_NOARGS,
     "cancelled(): whether the job is cancelled or timed out"},
    {"_write", py_mod_write, METH_VARARGS,
     "_write(stream, data): a call's output to its job; False outside one"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef py_mod_def = {
    PyModuleDef_HEAD_INIT,
    "_concd_task",
    "concd's side of a python job: progress and cancel",
    -1,
    py_mod_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

static PyObject *
py_mod_init(void)
{
	PyObject *m = PyModule_Create(&py_mod_def), *exc;

	if (m == NULL)
		return NULL;
	exc = PyErr_NewExceptionWithDoc(
	    "_concd_task.Cancelled",
	    "Raised in a python job's call when the job is cancelled or times "
	    "out.",
	    PyExc_BaseException, NULL);
	if (exc == NULL || PyModule_AddObject(m, "Cancelled", exc) < 0) {
		Py_XDECREF(exc);
		Py_DECREF(m);
		return NULL;
	}
	Py_INCREF(exc);
	py.cancelled_exc = exc;
	return m;
}

/* ---- the watcher: cancels become asynchronous exceptions ---- */

static void *
py_watch(void *arg)
{
	struct timespec ts;
	int i;

	pthread_mutex_lock(&py.lock);
	while (!py.stop) {
		for (i = 0; i < PY_MAX_CALLS; i++) {
			struct py_call *c = py.calls[i];
			PyGILState_STATE g;

			if (c == NULL || c->interrupted ||
			    !task_cancelled(c->ctx))
				continue;
			/*
			 * The GIL before the lock, as the calls take them:
			 * then the call is looked at again, still running.
			 */
			pthread_mutex_unlock(&py.lock);
			g = PyGILState_Ensure();
			pthread_mutex_lock(&py.lock);
			if (py.calls[i] == c && !c->interrupted) {
				c->interrupted = true;
				PyThreadState_SetAsyncExc(c->thread_id,
				                          py.cancelled_exc);
			}
			pthread_mutex_unlock(&py.lock);
			PyGILState_Release(g);
			pthread_mutex_lock(&py.lock);
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += PY_WATCH_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&py.cond, &py.lock, &ts);
	}
	pthread_mutex_unlock(&py.lock);
	return NULL;
}

static int
py_watch_add(struct py_call *c)
{
	int i;

	pthread_mutex_lock(&py.lock);
	for (i = 0; i < PY_MAX_CALLS && py.calls[i] != NULL; i++)
		;
	if (i < PY_MAX_CALLS)
		py.calls[i] = c;
	pthread_mutex_unlock(&py.lock);
	return i < PY_MAX_CALLS ? 0 : -1;
}

static void
py_watch_remove(struct py_call *c)
{
	int i;

	pthread_mutex_lock(&py.lock);
	for (i = 0; i < PY_MAX_CALLS; i++)
		if (py.calls[i] == c)
			py.calls[i] = NULL;
	pthread_mutex_unlock(&py.lock);
}

/* ---- the interpreter, once per process ---- */

/*
 * sys.stdout and sys.stderr: what a call prints or writes (text, or
 * bytes through .buffer) is its job's output, kept and sent to its
 * watchers as an exec job's is, never the daemon's log.  A thread a call
 * left running writes outside any call: to the stream's own file.
 */
static const char py_streams[] =
    "import io, sys, _concd_task\n"
    "class _Raw(io.RawIOBase):\n"
    "    def __init__(self, n, own):\n"
    "        self._n, self._own = n, own\n"
    "    def writable(self):\n"
    "        return True\n"
    "    def write(self, b):\n"
    "        if not _concd_task._write(self._n, b) and self._own:\n"
    "            self._own.write(b)\n"
    "            self._own.flush()\n"
    "        return len(b)\n"
    "    def fileno(self):\n"
    "        if not self._own:\n"
    "            raise io.UnsupportedOperation('fileno')\n"
    "        return self._own.fileno()\n"
    "class _Text(io.TextIOBase):\n"
    "    encoding, errors = 'utf-8', 'backslashreplace'\n"
    "    def __init__(self, n, own):\n"
    "        self._n, self._own = n, own\n"
    "        self.buffer = _Raw(n, getattr(own, 'buffer', None))\n"
    "    def writable(self):\n"
    "        return True\n"
    "    def write(self, s):\n"
    "        if not isinstance(s, str):\n"
    "            raise TypeError('write() argument must be str, not '\n"
    "                            + type(s).__name__)\n"
    "        if not _concd_task._write(self._n, s) and self._own:\n"
    "            self._own.write(s)\n"
    "        return len(s)\n"
    "    def flush(self):\n"
    "        if self._own:\n"
    "            self._own.flush()\n"
    "    def fileno(self):\n"
    "        return self.buffer.fileno()\n"
    "sys.stdout = _Text(1, sys.stdout)\n"
    "sys.stderr = _Text(2, sys.stderr)\n";

/* py_streams, in a namespace of its own: -1 on an exception. */
static int
py_run_streams(void)
{
	PyObject *g = PyDict_New(), *r = NULL;

	if (g != NULL &&
	    PyDict_SetItemString(g, "__builtins__", PyEval_GetBuiltins()) == 0)
		r = PyRun_String(py_streams, Py_file_input, g, g);
	Py_XDECREF(g);
	Py_XDECREF(r);
	return r != NULL ? 0 : -1;
}

/*
 * The interpreter, up on the calling thread, which is then Python's main
 * thread, with the GIL released; under py.lock.  -1 with err.
 */
static int
py_up(char *err, size_t errlen)
{
	if (PyImport_AppendInittab("_concd_task", py_mod_init) < 0) {
		snprintf(err, errlen, "cannot add module _concd_task");
		return -1;
	}
	/* no signal handlers: the worker's signals stay concd's */
	Py_InitializeEx(0);
	if (PyImport_ImportModule("_concd_task") == NULL) {
		PyErr_Clear();
		snprintf(err, errlen, "cannot import _concd_task");
		return -1;
	}
	if (py_run_streams() < 0) {
		PyErr_Clear();
		snprintf(err, errlen,
		         "cannot set up sys.stdout and sys.stderr");
		return -1;
	}
	py.main = PyEval_SaveThread(); /* the GIL, for the calls */
	py.main_thread = pthread_self();
	py.up = true;
	return 0;
}

/*
 * In the daemon the interpreter starts on a thread of its own, then the
 * watcher's, which runs no call.  Python lets only its main thread set
 * signal handlers (signal.signal, set_wakeup_fd): were a pool thread the
 * main one, a call there could take the daemon's SIGTERM, SIGINT or
 * SIGHUP, and concd would no longer stop or reload.  Now such a call
 * raises ValueError, as on a ThreadPoolExecutor's threads.
 */
static void *
py_main(void *arg)
{
	int rc;

	pthread_mutex_lock(&py.lock);
	rc = py.start_rc = py_up(py.start_err, sizeof(py.start_err));
	py.started = true;
	pthread_cond_broadcast(&py.cond);
	pthread_mutex_unlock(&py.lock);
	return rc == 0 ? py_watch(NULL) : NULL;
}

/*
 * A worker process's own thread, which runs its calls, starts the
 * interpreter: the main thread, as in ProcessPoolExecutor's workers.
 * Under py.lock.
 */
static int
py_up_here(char *err, size_t errlen)
{
	if (py_up(err, errlen) < 0)
		return -1;
	if (pthread_create(&py.watcher, NULL, py_watch, NULL) == 0)
		py.watching = true;
	return 0;
}

/* A thread of concd's pool has py_main start it.  Under py.lock. */
static int
py_up_apart(char *err, size_t errlen)
{
	py.started = false;
	if ((errno = pthread_create(&py.watcher, NULL, py_main, NULL)) != 0) {
		snprintf(err, errlen, "cannot start the interpreter: %s",
		         strerror(errno));
		return -1;
	}
	while (!py.started)
		pthread_cond_wait(&py.cond, &py.lock);
	if (py.start_rc < 0) {
		snprintf(err, errlen, "%s", py.start_err);
		pthread_join(py.watcher, NULL);
		return -1;
	}
	py.watching = true;
	return 0;
}

static int
py_init(void **worker_state, char *err, size_t errlen)
{
	int rc = 0;

	pthread_mutex_lock(&py.lock);
	/*
	 * One thread brings it up.  py_up_apart waits for py_main with the
	 * lock let go, and a thread that came meanwhile would start a second
	 * py_main, which found the interpreter up without a thread state of
	 * its own and crashed concd: it waits for the first instead.
	 */
	while (py.starting)
		pthread_cond_wait(&py.cond, &py.lock);
	if (py.broken[0] != '\0') {
		snprintf(err, errlen, "%s", py.broken);
		rc = -1;
	} else if (!py.up) {
		py.starting = true;
		rc = gettid() == getpid() ? py_up_here(err, errlen)
		                          : py_up_apart(err, errlen);
		py.starting = false;
		pthread_cond_broadcast(&py.cond);
		/* an interpreter up without _concd_task cannot start again */
		if (rc < 0 && Py_IsInitialized())
			snprintf(py.broken, sizeof(py.broken), "%s", err);
	}
	if (rc == 0)
		py.users++;
	pthread_mutex_unlock(&py.lock);
	/*
	 * Another thread than the interpreter's first keeps a thread state
	 * of its own for its calls: made and dropped by each call's
	 * PyGILState_Ensure and _Release, it cost more than the call.
	 */
	if (rc == 0 && !pthread_equal(py.main_thread, pthread_self())) {
		(void)PyGILState_Ensure();
		*worker_state = PyEval_SaveThread();
	}
	return rc;
}

static void
py_fini(void *worker_state)
{
	bool last;

	free(py_out.data); /* the thread's, if it ran a call */
	py_out.data = NULL;
	if (worker_state != NULL) { /* the thread's state of py_init */
		PyEval_RestoreThread(worker_state);
		PyGILState_Release(PyGILState_UNLOCKED);
	}
	pthread_mutex_lock(&py.lock);
	last = --py.users == 0;
	/*
	 * A thread of concd's pool leaves the interpreter up, even the last
	 * one that used it (py_main started it): another thread may
	 * begin a call at any moment, which must not meet an interpreter
	 * being ended (its calls then waited for the GIL for ever), and an
	 * ended interpreter does not come back whole.  It ends with concd.
	 * A worker process's own thread ends it: the process is exiting.
	 */
	if (!last || gettid() != getpid() ||
	    !pthread_equal(py.main_thread, pthread_self())) {
		pthread_mutex_unlock(&py.lock);
		return;
	}
	py.stop = true;
	pthread_cond_broadcast(&py.cond);
	pthread_mutex_unlock(&py.lock);
	if (py.watching)
		pthread_join(py.watcher, NULL);
	py.watching = false;
	PyEval_RestoreThread(py.main);
	Py_XDECREF(py.cancelled_exc);
	py.cancelled_exc = NULL;
	Py_FinalizeEx();
	py.up = false;
	py.stop = false;
}

/* ---- msgpack to Python and back ---- */

static PyObject *
py_from_msgpack(const msgpack_object *o, int depth)
{
	PyObject *r, *k, *v;
	uint32_t i;

	if (depth > PY_MAX_DEPTH) {
		PyErr_SetString(PyExc_ValueError, "arguments nested too deep");
		return NULL;
	}
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		Py_RETURN_NONE;
	case MSGPACK_OBJECT_BOOLEAN:
		return PyBool_FromLong(o->via.boolean);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		return PyLong_FromUnsignedLongLong(o->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return PyLong_FromLongLong(o->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return PyFloat_FromDouble(o->via.f64);
	case MSGPACK_OBJECT_STR:
		return PyUnicode_DecodeUTF8(o->via.str.ptr, o->via.str.size,
		                            "strict");
	case MSGPACK_OBJECT_BIN:
		return PyBytes_FromStringAndSize(o->via.bin.ptr,
		                                 o->via.bin.size);
	case MSGPACK_OBJECT_ARRAY:
		if ((r = PyList_New(o->via.array.size)) == NULL)
			return NULL;
		for (i = 0; i < o->via.array.size; i++) {
			v = py_from_msgpack(&o->via.array.ptr[i], depth + 1);
			if (v == NULL) {
				Py_DECREF(r);
				return NULL;
			}
			PyList_SET_ITEM(r, i, v);
		}
		return r;
	case MSGPACK_OBJECT_MAP:
		if ((r = PyDict_New()) == NULL)
			return NULL;
		for (i = 0; i < o->via.map.size; i++) {
			k = py_from_msgpack(&o->via.map.ptr[i].key, depth + 1);
			v = k == NULL ? NULL
			              : py_from_msgpack(&o->via.map.ptr[i].val,
			                                depth + 1);
			if (v == NULL || PyDict_SetItem(r, k, v) < 0) {
				Py_XDECREF(k);
				Py_XDECREF(v);
				Py_DECREF(r);
				return NULL;
			}
			Py_DECREF(k);
			Py_DECREF(v);
		}
		return r;
	default:
		PyErr_SetString(PyExc_ValueError,
		                "arguments hold a msgpack extension type");
		return NULL;
	}
}

/* Pack v; -1 with a Python error set (TypeError: cannot be encoded). */
static int
py_to_msgpack(msgpack_packer *pk, PyObject *v, int depth)
{
	Py_ssize_t n, i, pos = 0;
	PyObject *k, *e, *seq;
	const char *s;
	char *b;
	int overflow;
	long long ll;

	if (depth >= PY_MAX_NEST &&
	    (PyList_Check(v) || PyTuple_Check(v) || PyDict_Check(v))) {
		PyErr_Format(PyExc_ValueError,
		             "the result cannot be sent: lists and dicts "
		             "nested more than %d deep (concd-protocol(7))",
		             PY_MAX_NEST);
		return -1;
	}
	if (v == Py_None)
		return msgpack_pack_nil(pk), 0;
	if (PyBool_Check(v))
		return (v == Py_True ? msgpack_pack_true(pk)
		                     : msgpack_pack_false(pk)),
		       0;
	if (PyLong_Check(v)) {
		ll = PyLong_AsLongLongAndOverflow(v, &overflow);
		if (overflow > 0) {
			unsigned long long u = PyLong_AsUnsignedLongLong(v);
			if (PyErr_Occurred())
				goto big;
			return msgpack_pack_uint64(pk, u), 0;
		}
		if (overflow < 0)
			goto big;
		if (ll == -1 && PyErr_Occurred())
			return -1;
		return msgpack_pack_int64(pk, ll), 0;
	}
	if (PyFloat_Check(v))
		return msgpack_pack_double(pk, PyFloat_AS_DOUBLE(v)), 0;
	if (PyUnicode_Check(v)) {
		if ((s = PyUnicode_AsUTF8AndSize(v, &n)) == NULL)
			return -1;
		if (n > PY_MAX_STR)
			goto long_str;
		msgpack_pack_str(pk, (size_t)n);
		return msgpack_pack_str_body(pk, s, (size_t)n), 0;
	}
	if (PyBytes_Check(v) || PyByteArray_Check(v)) {
		if (PyBytes_Check(v))
			PyBytes_AsStringAndSize(v, &b, &n);
		else {
			b = PyByteArray_AS_STRING(v);
			n = PyByteArray_GET_SIZE(v);
		}
		if (n > PY_MAX_STR)
			goto long_str;
		msgpack_pack_bin(pk, (size_t)n);
		return msgpack_pack_bin_body(pk, b, (size_t)n), 0;
	}
	if (PyList_Check(v) || PyTuple_Check(v)) {
		if ((seq = PySequence_Fast(v, "")) == NULL)
			return -1;
		n = PySequence_Fast_GET_SIZE(seq);
		if (n > PY_MAX_ITEMS) {
			Py_DECREF(seq);
			goto many;
		}
		msgpack_pack_array(pk, (size_t)n);
		for (i = 0; i < n; i++)
			if (py_to_msgpack(pk, PySequence_Fast_GET_ITEM(seq, i),
			                  depth + 1) < 0) {
				Py_DECREF(seq);
				return -1;
			}
		Py_DECREF(seq);
		return 0;
	}
	if (PyDict_Check(v)) {
		if ((n = PyDict_Size(v)) > PY_MAX_ITEMS)
			goto many;
		msgpack_pack_map(pk, (size_t)PyDict_Size(v));
		while (PyDict_Next(v, &pos, &k, &e))
			if (py_to_msgpack(pk, k, depth + 1) < 0 ||
			    py_to_msgpack(pk, e, depth + 1) < 0)
				return -1;
		return 0;
	}
	PyErr_Format(PyExc_TypeError,
	             "the result cannot be encoded as msgpack: a %.100s "
	             "(None, bool, int, float, str, bytes, list, tuple and "
	             "dict can)",
	             Py_TYPE(v)->tp_name);
	return -1;
long_str:
	PyErr_Format(PyExc_ValueError,
	             "the result cannot be sent: a %.100s of %zd bytes, and "
	             "one string or bytes holds at most %d (concd-protocol(7))",
	             Py_TYPE(v)->tp_name, n, PY_MAX_STR);
	return -1;
many:
	PyErr_Format(PyExc_ValueError,
	             "the result cannot be sent: a %.100s of %zd items, and "
	             "one list or dict holds at most %d (concd-protocol(7))",
	             Py_TYPE(v)->tp_name, n, PY_MAX_ITEMS);
	return -1;
big:
	PyErr_Clear();
	PyErr_SetString(PyExc_OverflowError,
	                "the result holds an int outside msgpack's 64 bits");
	return -1;
}

/* ---- the job ---- */

/*
 * What start leaves for step, in the job's record.  A finished job keeps
 * its record (--max-finished of them), so it holds pointers, not room:
 * with the directory and an error's text in it (5 KiB), each python job
 * took 8 KiB of concd's heap, new pages at every submit.
 */
struct py_state {
	PyObject *fn, *args, *kwargs, *path; /* set by start, under the GIL */
	char *cwd;                           /* or NULL: where concd is */
	int umask;                           /* or -1: the worker's */
};

#define PY_ERR_MAX 1024 /* an error's text, its traceback's end kept */

/* The value of key in the job's arguments, or NULL. */
static const msgpack_object *
py_arg(const msgpack_object *map, const char *key)
{
	size_t klen = strlen(key);
	uint32_t i;

	if (map->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (i = 0; i < map->via.map.size; i++) {
		const msgpack_object *k = &map->via.map.ptr[i].key;
		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == klen &&
		    memcmp(k->via.str.ptr, key, klen) == 0)
			return &map->via.map.ptr[i].val;
	}
	return NULL;
}

/*
 * A string argument's JSON text (concctl's key=value form) as a Python
 * value, or a msgpack value as it is.
 */
static PyObject *
py_value(const msgpack_object *o, const char *what)
{
	PyObject *json, *r, *text;

	if (o->type != MSGPACK_OBJECT_STR)
		return py_from_msgpack(o, 0);
	if ((text = py_from_msgpack(o, 0)) == NULL)
		return NULL;
	if ((json = PyImport_ImportModule("json")) == NULL) {
		Py_DECREF(text);
		return NULL;
	}
	r = PyObject_CallMethod(json, "loads", "O", text);
	Py_DECREF(json);
	Py_DECREF(text);
	if (r == NULL && PyErr_ExceptionMatches(PyExc_ValueError)) {
		PyErr_Clear();
		PyErr_Format(PyExc_ValueError,
		             "%s given as a string is read as "
		             "JSON, and this is not JSON",
		             what);
	}
	return r;
}

/* Python's error as "Type: message\ntraceback", into err. */
static void
py_error(char *err, size_t errlen)
{
	PyObject *type, *value, *tb, *mod = NULL, *lines = NULL, *text = NULL;
	const char *s;

	PyErr_Fetch(&type, &value, &tb);
	PyErr_NormalizeException(&type, &value, &tb);
	if (type == NULL) {
		snprintf(err, errlen, "unknown error");
		return;
	}
	if (tb != NULL && value != NULL)
		PyException_SetTraceback(value, tb);
	if ((mod = PyImport_ImportModule("traceback")) != NULL)
		lines = PyObject_CallMethod(mod, "format_exception_only", "OO",
		                            type, value ? value : Py_None);
	if (lines != NULL) {
		PyObject *empty = PyUnicode_FromString(""), *tbl;

		text = empty ? PyUnicode_Join(empty, lines) : NULL;
		tbl =
		    tb ? PyObject_CallMethod(mod, "format_tb", "O", tb) : NULL;
		if (text != NULL && tbl != NULL) {
			PyObject *t2 = PyUnicode_Join(empty, tbl);
			PyObject *head = PyUnicode_FromString(
			    "Traceback (most recent call last):\n");
			if (t2 != NULL && head != NULL &&
			    PyList_Size(tbl) > 0) {
				PyObject *a = PyUnicode_Concat(text, head);
				PyObject *b =
				    a ? PyUnicode_Concat(a, t2) : NULL;
				Py_XDECREF(a);
				if (b != NULL) {
					Py_DECREF(text);
					text = b;
				}
			}
			Py_XDECREF(t2);
			Py_XDECREF(head);
		}
		Py_XDECREF(tbl);
		Py_XDECREF(empty);
	}
	if (text != NULL && (s = PyUnicode_AsUTF8(text)) != NULL) {
		size_t n;

		snprintf(err, errlen, "%s", s);
		n = strlen(err);
		while (n > 0 && err[n - 1] == '\n')
			err[--n] = '\0';
	} else
		snprintf(err, errlen, "%s", ((PyTypeObject *)type)->tp_name);
	PyErr_Clear();
	Py_XDECREF(text);
	Py_XDECREF(lines);
	Py_XDECREF(mod);
	Py_XDECREF(type);
	Py_XDECREF(value);
	Py_XDECREF(tb);
}

/* module:function, imported and resolved (attributes may be dotted). */
static PyObject *
py_resolve(const char *call)
{
	const char *colon = strchr(call, ':');
	PyObject *mod, *obj, *next;
	char name[512];
	char *part, *save;

	if (colon == NULL || colon == call || colon[1] == '\0' ||
	    (size_t)(colon - call) >= sizeof(name)) {
		PyErr_Format(PyExc_ValueError,
		             "call is module:function, not \"%.200s\"", call);
		return NULL;
	}
	memcpy(name, call, (size_t)(colon - call));
	name[colon - call] = '\0';
	if ((mod = PyImport_ImportModule(name)) == NULL)
		return NULL;
	snprintf(name, sizeof(name), "%s", colon + 1);
	obj = mod;
	for (part = strtok_r(name, ".", &save); part != NULL;
	     part = strtok_r(NULL, ".", &save)) {
		next = PyObject_GetAttrString(obj, part);
		Py_DECREF(obj);
		if ((obj = next) == NULL)
			return NULL;
	}
	if (!PyCallable_Check(obj)) {
		PyErr_Format(PyExc_TypeError, "%.200s is not callable", call);
		Py_DECREF(obj);
		return NULL;
	}
	return obj;
}

/* The job's arguments, read under the GIL; -1 with Python's error set. */
static int
py_prepare(struct task_ctx *ctx, struct py_state *s, const msgpack_object *a)
{
	const msgpack_object *o;
	PyObject *v;
	char call[1024];
	uint32_t i;

	s->umask = task_umask(ctx); /* the job's, unless its args say */
	o = py_arg(a, "call");
	if (o == NULL || o->type != MSGPACK_OBJECT_STR ||
	    o->via.str.size >= sizeof(call)) {
		PyErr_SetString(PyExc_ValueError,
		                "call=module:function is required");
		return -1;
	}
	memcpy(call, o->via.str.ptr, o->via.str.size);
	call[o->via.str.size] = '\0';

	/* path: a list of directories, or one string of them split by ':' */
	if ((s->path = PyList_New(0)) == NULL)
		return -1;
	if ((o = py_arg(a, "path")) != NULL) {
		if (o->type == MSGPACK_OBJECT_STR) {
			PyObject *str = py_from_msgpack(o, 0);
			PyObject *colon = PyUnicode_FromString(":");
			v = str && colon ? PyUnicode_Split(str, colon, -1)
			                 : NULL;
			Py_XDECREF(str);
			Py_XDECREF(colon);
		} else if (o->type == MSGPACK_OBJECT_ARRAY) {
			for (i = 0; i < o->via.array.size; i++)
				if (o->via.array.ptr[i].type !=
				    MSGPACK_OBJECT_STR) {
					PyErr_SetString(PyExc_ValueError,
					                "path is a list of "
					                "directories");
					return -1;
				}
			v = py_from_msgpack(o, 0);
		} else {
			PyErr_SetString(PyExc_ValueError,
			                "path is a list of directories");
			return -1;
		}
		if (v == NULL)
			return -1;
		Py_DECREF(s->path);
		s->path = v;
	}
	if ((o = py_arg(a, "cwd")) != NULL) {
		if (o->type != MSGPACK_OBJECT_STR ||
		    o->via.str.size >= PATH_MAX) {
			PyErr_SetString(PyExc_ValueError,
			                "cwd is a directory's path");
			return -1;
		}
		s->cwd = strndup(o->via.str.ptr, o->via.str.size);
	} else if (task_cwd(ctx) != NULL)
		s->cwd = strdup(task_cwd(ctx));
	if ((o != NULL || task_cwd(ctx) != NULL) && s->cwd == NULL) {
		PyErr_NoMemory();
		return -1;
	}

	if ((o = py_arg(a, "umask")) != NULL) {
		if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
		    o->via.u64 > 0777) {
			PyErr_SetString(PyExc_ValueError,
			                "umask is a file mode creation mask, "
			                "0 to 0o777");
			return -1;
		}
		s->umask = (int)o->via.u64;
	}

	if ((o = py_arg(a, "args")) == NULL)
		s->args = PyTuple_New(0);
	else if ((v = py_value(o, "args")) == NULL)
		return -1;
	else if (!PyList_Check(v)) {
		Py_DECREF(v);
		PyErr_SetString(PyExc_ValueError, "args is a list");
		return -1;
	} else {
		s->args = PyList_AsTuple(v);
		Py_DECREF(v);
	}
	if (s->args == NULL)
		return -1;
	if ((o = py_arg(a, "kwargs")) != NULL) {
		PyObject *k;
		Py_ssize_t pos = 0;

		if ((s->kwargs = py_value(o, "kwargs")) == NULL)
			return -1;
		if (!PyDict_Check(s->kwargs)) {
			PyErr_SetString(PyExc_ValueError,
			                "kwargs is a map of names to values");
			return -1;
		}
		while (PyDict_Next(s->kwargs, &pos, &k, &v))
			if (!PyUnicode_Check(k)) {
				PyErr_SetString(PyExc_ValueError,
				                "kwargs' keys are strings");
				return -1;
			}
	}
	/* the function itself is imported by step, with path in place */
	s->fn = PyUnicode_FromString(call);
	return s->fn != NULL ? 0 : -1;
}

static void
py_state_clear(struct py_state *s)
{
	Py_CLEAR(s->fn);
	Py_CLEAR(s->args);
	Py_CLEAR(s->kwargs);
	Py_CLEAR(s->path);
	free(s->cwd);
	s->cwd = NULL;
}

static int
py_start(struct task_ctx *ctx, const union task_value *argv)
{
	struct py_state *s = task_state(ctx);
	msgpack_unpacked u;
	const char *raw;
	char err[PY_ERR_MAX];
	size_t len;
	PyGILState_STATE g;
	int rc = 0;

	if (task_as_owner(ctx)) { /* refused at submission already */
		task_fail(ctx, "python: jobs of another user are refused");
		return -1;
	}
	raw = task_args_raw(ctx, &len);
	msgpack_unpacked_init(&u);
	g = PyGILState_Ensure();
	if (msgpack_unpack_next(&u, raw, len, NULL) != MSGPACK_UNPACK_SUCCESS) {
		PyErr_SetString(PyExc_ValueError, "arguments are not msgpack");
		rc = -1;
	} else
		rc = py_prepare(ctx, s, &u.data);
	if (rc < 0) {
		py_error(err, sizeof(err));
		py_state_clear(s);
	}
	PyGILState_Release(g);
	msgpack_unpacked_destroy(&u);
	if (rc < 0)
		task_fail(ctx, "%s", err);
	return rc;
}

/* Prepend path to sys.path; the old list, to put back, or NULL. */
static PyObject *
py_path_push(PyObject *path)
{
	PyObject *sys_path = PySys_GetObject("path"), *old, *now;

	if (sys_path == NULL || PyList_Size(path) == 0)
		return NULL;
	if ((old = PyList_GetSlice(sys_path, 0, PyList_Size(sys_path))) == NULL)
		return NULL;
	if ((now = PySequence_Concat(path, sys_path)) == NULL ||
	    PySys_SetObject("path", now) < 0) {
		PyErr_Clear();
		Py_XDECREF(now);
		Py_DECREF(old);
		return NULL;
	}
	Py_DECREF(now);
	return old;
}

static enum task_step
py_step(struct task_ctx *ctx)
{
	struct py_state *s = task_state(ctx);
	struct py_call call = {.ctx = ctx};
	PyObject *fn = NULL, *r = NULL, *old_path;
	msgpack_sbuffer sb;
	msgpack_packer pk, *rp;
	PyGILState_STATE g;
	char here[PATH_MAX] = "", err[PY_ERR_MAX];
	bool moved = false;
	int rc = -1, mask = -1;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	/* a thread shares concd's directory: the call runs where concd is */
	if (s->cwd != NULL && s->cwd[0] != '\0' && !task_on_thread(ctx)) {
		if (getcwd(here, sizeof(here)) == NULL || chdir(s->cwd) < 0) {
			msgpack_sbuffer_destroy(&sb);
			return task_fail(ctx, "python: cwd %s: %s", s->cwd,
			                 strerror(errno));
		}
		moved = true;
	}
	/* the umask too is the process's: a thread keeps concd's */
	if (s->umask >= 0 && !task_on_thread(ctx))
		mask = (int)umask((mode_t)s->umask);
	g = PyGILState_Ensure();
	py_current = ctx;
	call.thread_id = PyThread_get_thread_ident();
	old_path = py_path_push(s->path);
	if (py_watch_add(&call) < 0)
		PyErr_SetString(PyExc_RuntimeError, "too many python calls");
	else {
		if ((fn = py_resolve(PyUnicode_AsUTF8(s->fn))) != NULL)
			r = PyObject_Call(fn, s->args, s->kwargs);
		py_watch_remove(&call);
		/* a Cancelled raised after the call returned is dropped */
		if (call.interrupted)
			PyThreadState_SetAsyncExc(call.thread_id, NULL);
	}
	if (r != NULL)
		rc = py_to_msgpack(&pk, r, 0);
	if (rc < 0)
		py_error(err, sizeof(err));
	if (old_path != NULL) {
		PySys_SetObject("path", old_path);
		Py_DECREF(old_path);
	}
	Py_XDECREF(r);
	Py_XDECREF(fn);
	py_state_clear(s);
	py_current = NULL;
	PyGILState_Release(g);
	py_out_flush(ctx); /* the call's last output, before its end */
	if (moved && chdir(here) < 0)
		here[0] = '\0'; /* the worker's own directory is gone */
	if (mask >= 0)
		umask((mode_t)mask);
	if (task_cancelled(ctx)) {
		msgpack_sbuffer_destroy(&sb);
		return task_fail(ctx, "python: cancelled");
	}
	if (rc < 0) {
		msgpack_sbuffer_destroy(&sb);
		return task_fail(ctx, "%s", err);
	}
	if (sb.size > PY_MAX_RESULT) {
		size_t n = sb.size;

		msgpack_sbuffer_destroy(&sb);
		return task_fail(ctx,
		                 "python: the result is too large: %zu bytes "
		                 "of msgpack, and a result holds at most %d "
		                 "(one frame): return less, or write it to a "
		                 "file and return its name",
		                 n, PY_MAX_RESULT);
	}
	rp = task_result(ctx);
	rp->callback(rp->data, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	return TASK_DONE;
}

static void
py_stop(struct task_ctx *ctx)
{
	struct py_state *s = task_state(ctx);
	PyGILState_STATE g;

	if (s->fn != NULL || s->args != NULL || s->kwargs != NULL ||
	    s->path != NULL) {
		g = PyGILState_Ensure();
		py_state_clear(s);
		PyGILState_Release(g);
	}
	free(s->cwd); /* any left without Python objects */
	s->cwd = NULL;
}

_Static_assert(sizeof(struct py_state) <= PYTHON_STATE_SIZE,
               "python.h's PYTHON_STATE_SIZE is too small");

/*
 * What python_shim.c forwards to (PYTHON_IMPL_SYMBOL): the functions and
 * the state they need; the shim's own table names and describes the task.
 */
const struct task concd_python_task = {
    .abi = CONCD_TASK_ABI,
    .state_size = sizeof(struct py_state),
    .init = py_init,
    .fini = py_fini,
    .start = py_start,
    .step = py_step,
    .stop = py_stop,
};
