"""concurrent.futures on concd: ConcdExecutor.

    from concd.futures import ConcdExecutor
    with ConcdExecutor(executor="process") as ex:
        f = ex.submit(mymod.count_primes, 5_000_000)
        f.add_progress_callback(print)
        print(f.result())

A function runs as a job of concd's `python` task, which imports it by
name ("module:qualname") on a warm worker: it must be a module-level
function (or a class's), never a lambda, a closure or a local function;
its arguments and result travel as MessagePack (tuples come back as
lists).  Each executor has one connection, shared by its threads, and
sends its requests without waiting for replies.
"""
import _thread
import concurrent.futures as cf
import itertools
import os
import sys
import threading
import time
import types
import weakref

from . import Client, ConcdError, Cancelled, NoSuchJob, TaskFailed, \
    Watch, end_result, pack, packb, submit_fields, _done_gather, \
    _done_watch

__all__ = ["ConcdExecutor", "ConcdFuture", "callable_name", "EXECUTORS"]

EXECUTORS = ("process", "thread", "loop", "auto", "remote", "slurm")
OPTIONS = ("timeout", "retries", "retry_delay", "daemon", "group", "label",
           "priority", "cpus", "mem", "pids", "fresh", "executor", "umask")
# a gather request is cut at this many bytes (the frame limit is 1 MiB)
GATHER_BYTES = 768 * 1024
GATHER_JOBS = 10000
# map() without a chunksize cuts its calls into about this many jobs, of
# at most MAP_CHUNK calls each: few enough that a call costs little more
# than the function, enough to keep the workers busy to the end
MAP_JOBS = 64
MAP_CHUNK = 1000
SHUT_DOWN = "cannot schedule new futures after shutdown"


def callable_name(fn):
    """"module:qualname" for a function concd can import, or TypeError
    saying why fn cannot be sent."""
    owner = getattr(fn, "__self__", None)
    if owner is not None and not isinstance(owner, (type,
                                                     types.ModuleType)):
        raise TypeError("cannot send %r to concd: a method bound to an "
                        "instance (pass a module-level function)" % (fn,))
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not callable(fn) or module is None or qualname is None:
        raise TypeError("cannot send %r to concd: it has no module and "
                        "qualified name to import it by" % (fn,))
    if "<lambda>" in qualname:
        raise TypeError("cannot send %s to concd: a lambda cannot be "
                        "imported by name (define it with def at module "
                        "level)" % qualname)
    if "<locals>" in qualname:
        raise TypeError("cannot send %s to concd: a function defined "
                        "inside another cannot be imported by name (move "
                        "it to module level)" % qualname)
    if module == "__main__":
        main = sys.modules.get("__main__")
        spec = getattr(main, "__spec__", None)
        path = getattr(main, "__file__", None)
        if spec is not None and spec.name != "__main__":
            module = spec.name
        elif path and os.path.isfile(path):
            module = os.path.splitext(os.path.basename(path))[0]
        else:
            raise TypeError("cannot send %s to concd: it was defined in an "
                            "interactive session (put it in a module)"
                            % qualname)
        if path and qualname.split(".")[0] in _guarded(path):
            raise TypeError("cannot send %s to concd: it is defined under "
                            "if __name__ == \"__main__\": in %s, which a "
                            "worker importing the script does not run "
                            "(define it at the top level)" % (qualname, path))
    obj = sys.modules.get(getattr(fn, "__module__", ""))
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if obj is not fn and not (owner is not None and obj is not None):
        raise TypeError("cannot send %s.%s to concd: that name does not "
                        "lead back to this function (decorated or "
                        "replaced?)" % (module, qualname))
    return "%s:%s" % (module, qualname)


# _guarded()'s last answer: ((path, mtime, size), names)
_guarded_cache = (None, frozenset())


def _guarded(path):
    """The names the script at path defines only under `if __name__ ==
    "__main__":`, which a worker that imports it does not run; none when
    it cannot be read."""
    global _guarded_cache
    import ast  # only for functions of the main script
    try:
        st = os.stat(path)
        key = (path, st.st_mtime_ns, st.st_size)
        if _guarded_cache[0] == key:
            return _guarded_cache[1]
        with open(path, "rb") as f:
            tree = ast.parse(f.read(), path)
    except (OSError, SyntaxError, ValueError):
        return frozenset()
    inside, outside = set(), set()
    for node in tree.body:
        guard = (isinstance(node, ast.If)
                 and isinstance(node.test, ast.Compare)
                 and isinstance(node.test.left, ast.Name)
                 and node.test.left.id == "__name__"
                 and len(node.test.ops) == 1
                 and isinstance(node.test.ops[0], ast.Eq)
                 and isinstance(node.test.comparators[0], ast.Constant)
                 and node.test.comparators[0].value == "__main__")
        if guard:
            _defined(node.body, inside)
            _defined(node.orelse, outside)
        else:
            _defined([node], outside)
    names = frozenset(inside - outside)
    _guarded_cache = (key, names)
    return names


def _defined(nodes, names):
    """Add to names those the statements nodes bind in their scope (not in
    functions' and classes' bodies)."""
    import ast
    stack = list(nodes)
    while stack:
        n = stack.pop()
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef,
                          ast.ClassDef)):
            names.add(n.name)
            continue
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
            names.add(n.id)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0]
                         for a in n.names)
        stack.extend(ast.iter_child_nodes(n))


def _call_chunk(call, calls):
    """On a worker: the results of the function named call ("module:
    qualname") over the argument lists calls, for ConcdExecutor.map."""
    import importlib  # on the worker only
    module, _, qualname = call.partition(":")
    fn = importlib.import_module(module)
    for part in qualname.split("."):
        fn = getattr(fn, part)
    return [fn(*args) for args in calls]


CHUNK_CALL = "concd.futures:_call_chunk"
_NESTS = (list, tuple, dict)
# how deep lists and maps may nest in an item of map(): concd's limit of 8
# levels less those of a gather, its job, the job's args and the call's
# argument list; and in an item of a chunk, whose two levels come on top
ITEM_DEPTH = 3
CHUNK_ITEM_DEPTH = 1


def _depth(v, most):
    """How deep lists and maps nest in v (0: v is neither), counted up to
    most + 1."""
    if not isinstance(v, _NESTS):
        return 0
    items = v if not isinstance(v, dict) else \
        itertools.chain(v.keys(), v.values())
    d = 0
    for x in items:
        if isinstance(x, _NESTS):
            if most <= 1:
                return 2
            d = max(d, _depth(x, most - 1))
            if d >= most:
                break
    return 1 + d


def _call_depth(args):
    d = 0
    for a in args:
        if isinstance(a, _NESTS):
            d = max(d, _depth(a, ITEM_DEPTH))
    return d


def _chunks(calls, chunksize, chunk_job):
    """map()'s jobs: (calls, alone, lone) triples, in order.  At most
    chunksize calls a chunk, and no more than chunk_job(calls) encodes
    in GATHER_BYTES; a call too deep for a chunk goes alone, as a job of
    its own, and one too deep for any job lone, in a gather of its own:
    either succeeds or fails by itself."""
    out = []

    def add(chunk):
        if len(chunk) > 1 and len(packb(chunk_job(chunk))) > GATHER_BYTES:
            half = len(chunk) // 2
            add(chunk[:half])
            add(chunk[half:])
        elif chunk:
            out.append((chunk, len(chunk) == 1, False))

    chunk = []
    for args in calls:
        depth = _call_depth(args)
        if depth > CHUNK_ITEM_DEPTH:
            add(chunk)
            chunk = []
            out.append(([args], True, depth > ITEM_DEPTH))
            continue
        chunk.append(args)
        if len(chunk) == chunksize:
            add(chunk)
            chunk = []
    add(chunk)
    return out


# _path()'s last answer: (sys.path, cwd, when, dirs); a stat of every
# entry took a tenth of a call's round trip
_path_cache = (None, None, 0.0, None)
PATH_TTL = 1.0  # seconds: a directory made later is seen this late


def _path(cwd):
    """The caller's sys.path entries that are directories, absolute, for
    the working directory cwd (for the same sys.path and cwd, the answer
    of the last PATH_TTL seconds)."""
    global _path_cache
    key, now = tuple(sys.path), time.monotonic()
    k, c, when, dirs = _path_cache
    if k == key and c == cwd and now - when < PATH_TTL:
        return list(dirs)
    out = []
    for p in key:
        p = os.path.join(cwd, p) if p else cwd
        p = os.path.normpath(p)
        if os.path.isdir(p) and p not in out:
            out.append(p)
    _path_cache = (key, cwd, now, tuple(out))
    return out


def _umask():
    """The program's file mode creation mask, read without changing it:
    Linux's /proc/self/status has it; elsewhere it is set and put back,
    which a file another thread creates in between would get."""
    try:
        fd = os.open("/proc/self/status", os.O_RDONLY | os.O_CLOEXEC)
        try:
            status = os.read(fd, 65536)  # about 1.5 KB: one read
        finally:
            os.close(fd)
        at = status.index(b"\nUmask:") + 7
        return int(status[at:status.index(b"\n", at)], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o22)
    os.umask(mask)
    return mask


def _check_umask(mask):
    if isinstance(mask, bool) or not isinstance(mask, int) or \
            not 0 <= mask <= 0o777:
        raise ValueError("umask is a file mode creation mask, 0 to 0o777: "
                         "%r" % (mask,))
    return mask


class _Waiters(list):
    """A future's waiters (concurrent.futures.wait and as_completed put
    theirs here): once there is one, the future's messages are read at
    once, even while no thread waits in result()."""

    def __init__(self, future):
        super().__init__()
        self._future = future

    def append(self, waiter):
        super().append(waiter)
        self._future._eager()


class _Resent:
    """The result of a chunk of map() sent again one call a job: the
    futures of its calls."""

    def __init__(self, futures):
        self.futures = futures


class ConcdFuture(cf.Future):
    """A concurrent.futures.Future for a concd job.  `job` is its id once
    concd has accepted it; cancel() also cancels the job on concd, running
    or not.  A thread that waits for it (result(), exception()) reads the
    connection itself while no other thread does."""

    def __init__(self, executor):
        super().__init__()
        self._executor = executor
        self._waiters = _Waiters(self)
        self._p = None  # the request's _Pending, once sent
        self.job = None
        self._want_cancel = False
        self._progress = []
        self._on_output = None
        self._output = []
        self.end = None  # the job's end message
        # map()'s chunk: sends its calls again, one a job, when their
        # results together are too large for a frame: their futures
        self._resend = None

    def _finished(self):
        return self._state in ("FINISHED", "CANCELLED",
                               "CANCELLED_AND_NOTIFIED")

    def _eager(self):
        if self._p is not None:
            self._executor.client._mark_eager(self._p)

    def result(self, timeout=None):
        if not self._finished() and not self._executor.client._wait(
                self._finished, timeout):
            raise cf.TimeoutError()
        return super().result(timeout)

    def exception(self, timeout=None):
        if not self._finished() and not self._executor.client._wait(
                self._finished, timeout):
            raise cf.TimeoutError()
        return super().exception(timeout)

    def done(self):
        if not self._finished():
            self._executor.client._poll()
        return super().done()

    def add_done_callback(self, fn):
        super().add_done_callback(fn)
        self._eager()

    def add_progress_callback(self, fn):
        """fn(done, total, msg) for each progress event of the job, on the
        thread that reads the connection."""
        self._progress.append(fn)
        self._eager()

    def output(self, stream=None):
        """The output so far (all of it once done) of an exec job, or
        what a function printed: bytes of both streams in order, or of
        `stream` ("stdout", "stderr")."""
        return b"".join(d for s, d in list(self._output)
                        if stream is None or s == stream)

    def cancel(self):
        with self._condition:
            if self._state == "FINISHED":
                return False
            if self._state in ("CANCELLED", "CANCELLED_AND_NOTIFIED"):
                return True
            self._want_cancel = True
            job = self.job
        if job is not None:
            self._executor._cancel_job(job)
        if not super().cancel():
            return False
        with self._condition:
            # CANCELLED_AND_NOTIFIED, so that cf.wait and as_completed
            # see it
            if self._state == "CANCELLED":
                self.set_running_or_notify_cancel()
        return True

    # events, on the thread that reads the connection

    def _event(self, m):
        t = m["t"]
        if t == "accepted":
            with self._condition:
                self.job = m["job"] if "job" in m else self.job
                want = self._want_cancel
            if want:
                self._executor._cancel_job(self.job)
        elif t == "progress":
            for fn in self._progress:
                fn(m.get("done", 0), m.get("total", 0), m.get("msg"))
        elif t == "output":
            if self._on_output is not None:
                self._on_output(m.get("stream"), m.get("data", b""))
            else:
                self._output.append((m.get("stream"), m.get("data", b"")))
        elif t in ("end", "error"):
            self.end = m
            try:
                self._ended(m)
            finally:
                # after a resend, so that shutdown waits for its jobs
                self._executor._forget(self)

    def _ended(self, m):
        if self.cancelled():
            return
        try:
            value = end_result(m)
        except ConcdError as e:
            if isinstance(e, Cancelled) and self._want_cancel:
                # cancel() asked for it: the future ends here too, for
                # a thread that reads for it may read no more
                # otherwise (cancel() may not have got so far yet)
                if cf.Future.cancel(self):
                    with self._condition:
                        if self._state == "CANCELLED":
                            self.set_running_or_notify_cancel()
                return
            if (self._resend is None or self._want_cancel
                    or not isinstance(e, TaskFailed)
                    or "result is too large" not in e.message):
                self._set(exception=e)
                return
            try:
                value = _Resent(self._resend())
            except Exception as e2:  # noqa: B902 -- the future's error
                self._set(exception=e2)
                return
        self._set(result=self._executor._convert(self, value))

    def _set(self, result=None, exception=None):
        try:
            if exception is not None:
                self.set_exception(exception)
            else:
                self.set_result(result)
        except cf.InvalidStateError:
            pass  # cancelled meanwhile


class ConcdExecutor(cf.Executor):
    """An Executor whose calls are concd jobs.

    executor: the kind of worker ("process", the default, "thread",
    "loop", "auto", "remote", "slurm"); socket: concd's socket (default
    as concctl); timeout (seconds), retries, retry_delay (seconds),
    daemon, group, label, priority, cpus, mem, pids, fresh: options of
    every job; umask: the file mode creation mask of its python calls
    (on processes) and commands (default: the program's when the executor
    is made).  options(...) gives a view with other options on the same
    connection."""

    def __init__(self, executor="process", socket=None, client=None,
                 **options):
        if executor not in EXECUTORS:
            raise ValueError("unknown executor %r: one of %s"
                             % (executor, ", ".join(EXECUTORS)))
        unknown = set(options) - set(OPTIONS)
        if unknown:
            raise TypeError("unknown option(s) %s: options are %s"
                            % (", ".join(sorted(unknown)),
                               ", ".join(OPTIONS)))
        umask = options.pop("umask", None)
        self._umask = _umask() if umask is None else _check_umask(umask)
        self._opts = dict(options, executor=executor)
        if client is None:
            self._shared = _Shared(Client(socket))
        else:
            self._shared = _Shared(client, owned=False)
        # held by the executor, its views and so their futures: once none
        # is left, the connection closes when idle, as after
        # shutdown(wait=False).  On a thread of its own: the collector may
        # run this where the thread holds a lock the closing takes.
        self._held = _Held()
        done = weakref.finalize(self._held, _thread.start_new_thread,
                                self._shared.close_when_idle, ())
        done.atexit = False

    @property
    def client(self):
        return self._shared.client

    def options(self, **options):
        """A ConcdExecutor on the same connection with these options
        changed (per call: ex.options(timeout=5).submit(fn, x))."""
        unknown = set(options) - set(OPTIONS)
        if unknown:
            raise TypeError("unknown option(s) %s" % ", ".join(
                sorted(unknown)))
        if options.get("executor", "process") not in EXECUTORS:
            raise ValueError("unknown executor %r" % options["executor"])
        view = object.__new__(ConcdExecutor)
        umask = options.pop("umask", None)
        view._umask = self._umask if umask is None else _check_umask(umask)
        view._opts = dict(self._opts, **options)
        view._shared = self._shared
        view._held = self._held
        return view

    # submitting

    def _job(self, task, args, fields=None):
        opts = dict(self._opts)
        return submit_fields(task, args, **opts, **(fields or {}))

    def _python_args(self, fn, args, kwargs):
        cwd = os.getcwd()  # once: a getcwd costs a fifth of a submit
        return {"call": callable_name(fn), "args": list(args),
                "kwargs": dict(kwargs), "path": _path(cwd), "cwd": cwd,
                "umask": self._umask}

    def _submit(self, job, future=None):
        f = future or ConcdFuture(self)
        self._shared.add(f)
        try:
            _, f._p = self.client.send(
                "submit", done=_done_watch, callback=f._event,
                eager=f._on_output is not None, watch=True, **job)
        except BaseException:
            self._shared.discard(f)
            raise
        return f

    def submit(self, fn, /, *args, **kwargs):
        """Run fn(*args, **kwargs) as a `python` job: a ConcdFuture.
        TypeError at once for a function concd cannot import or
        arguments MessagePack cannot encode."""
        self._shared.check_open()
        return self._submit(self._job("python",
                                      self._python_args(fn, args, kwargs)))

    def submit_task(self, name, /, **args):
        """Run the concd task name with args: a ConcdFuture of its
        result."""
        self._shared.check_open()
        return self._submit(self._job(name, args))

    def submit_exec(self, argv, *, env=None, cwd=None, stdin=None,
                    grace=None, output=None):
        """Run a command (the `exec` task): a ConcdFuture whose result is
        the exit status, 0 (a non-zero status raises TaskFailed).  Its
        output is collected for f.output(), or handed to
        output(stream, data) as it comes."""
        self._shared.check_open()
        args = {"argv": [str(a) for a in argv]}
        if env is not None:
            args["env"] = dict(env)
        if stdin is not None:
            args["stdin"] = stdin if isinstance(stdin, str) else \
                stdin.decode()
        if grace is not None:
            args["grace"] = int(grace * 1000)
        opts = dict(self._opts)
        if opts.get("executor") in ("thread", "process"):
            opts["executor"] = "auto"  # exec runs on the loop
        job = submit_fields("exec", args, cwd=cwd or os.getcwd(),
                            umask=self._umask, **opts)
        f = ConcdFuture(self)
        f._on_output = output
        f._exec = True
        return self._submit(job, f)

    def _convert(self, f, value):
        if getattr(f, "_exec", False) and isinstance(value, dict):
            return value.get("status", 0)
        return value

    def map(self, fn, *iterables, timeout=None, chunksize=None):
        """fn over the iterables, results in order, like Executor.map.
        Each job makes chunksize calls, as ProcessPoolExecutor's does
        (None: about len/64 calls, at most 1000, at least 1); the jobs go
        at once, in `gather` requests.  A chunk whose results do not fit
        in a frame is sent again one call a job.  timeout counts from
        the call."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._shared.check_open()
        name = callable_name(fn)
        cwd = os.getcwd()
        path = _path(cwd)
        calls = [list(a) for a in zip(*iterables)]
        if chunksize is None:
            chunksize = min(MAP_CHUNK, max(1, -(-len(calls) // MAP_JOBS)))
        elif chunksize < 1:
            raise ValueError("chunksize must be >= 1")

        def job(call, args):
            return self._job("python", {"call": call, "args": args,
                                        "kwargs": {}, "path": path,
                                        "cwd": cwd, "umask": self._umask})
        if chunksize == 1:
            lone = {i for i, a in enumerate(calls)
                    if _call_depth(a) > ITEM_DEPTH}
            return self._results(self._gather(
                (job(name, a) for a in calls), None, lone), deadline)
        chunks = _chunks(calls, chunksize,
                         lambda c: job(CHUNK_CALL, [name, c]))

        def resend(chunk):
            # after shutdown() too: it waits for the chunk's future
            return lambda: self._gather((job(name, a) for a in chunk), None,
                                        check=False)
        fs = self._gather((job(name, c[0]) if alone else
                           job(CHUNK_CALL, [name, c])
                           for c, alone, _ in chunks), None,
                          {i for i, c in enumerate(chunks) if c[2]},
                          [None if alone else resend(c)
                           for c, alone, _ in chunks])
        return self._chunk_results(fs, chunks, deadline)

    def _chunk_results(self, fs, chunks, deadline):
        def left():
            return None if deadline is None else deadline - time.monotonic()

        def results():
            resent = []  # the futures of a chunk sent again, not yet read
            try:
                fs.reverse()
                chunks.reverse()
                while fs:
                    values = fs[-1].result(left())
                    alone = chunks[-1][1]
                    fs.pop()
                    chunks.pop()
                    if isinstance(values, _Resent):
                        resent = values.futures[::-1]
                        while resent:
                            value = resent[-1].result(left())
                            resent.pop()
                            yield value
                    elif alone:
                        yield values
                    else:
                        yield from values
            finally:
                for g in resent:
                    g.cancel()
                for f in fs:
                    _cancel_chunk(f)
        return results()

    def map_task(self, name, argmaps, timeout=None, chunksize=None):
        """The task name over the argument maps: results in order, as
        map() gives them."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._shared.check_open()
        return self._results(self.gather_tasks(
            ((name, a) for a in argmaps), chunksize), deadline)

    def _results(self, fs, deadline):
        def results():
            try:
                fs.reverse()
                while fs:
                    if deadline is None:
                        yield fs.pop().result()
                    else:
                        yield fs.pop().result(deadline - time.monotonic())
            finally:
                for f in fs:
                    f.cancel()
        return results()

    def gather_tasks(self, jobs, chunksize=None):
        """Submit many task jobs, each (name, args): their ConcdFutures,
        in order, sent in gather requests."""
        self._shared.check_open()
        return self._gather((self._job(n, a) for n, a in jobs), chunksize)

    def _gather(self, jobs, chunksize, lone=(), resends=None, check=True):
        """Futures of jobs, sent in gather requests; those whose index is
        in lone each in a gather of its own (concd refuses a request
        with a value over its limits whole).  resends: each job's
        future's _resend, in order; check: RuntimeError after shutdown."""
        limit = min(chunksize or GATHER_JOBS, GATHER_JOBS)
        out = []
        batch, size = [], 0
        for i, job in enumerate(jobs):
            n = len(pack(job))
            alone = i in lone
            if batch and (alone or len(batch) >= limit or
                          size + n > GATHER_BYTES):
                out += self._send_gather(batch, resends, len(out), check)
                batch, size = [], 0
            batch.append(job)
            size += n
            if alone:
                out += self._send_gather(batch, resends, len(out), check)
                batch, size = [], 0
        if batch:
            out += self._send_gather(batch, resends, len(out), check)
        return out

    def _send_gather(self, batch, resends=None, at=0, check=True):
        fs = [ConcdFuture(self) for _ in batch]
        for i, f in enumerate(fs):
            if resends is not None:
                f._resend = resends[at + i]
        self._shared.add(*fs, check=check)

        def event(m):
            if m["t"] == "accepted":
                for f, job in zip(fs, m.get("jobs", ())):
                    f._event({"t": "accepted", "job": job})
            elif m["t"] == "error":
                for f in fs:
                    f._event(m)
            elif "index" in m and 0 <= m["index"] < len(fs):
                fs[m["index"]]._event(m)
        try:
            _, p = self.client.send("gather", done=_done_gather,
                                    callback=event, eager=False, jobs=batch,
                                    fail_fast=False)
        except BaseException:
            for f in fs:
                self._shared.discard(f)
            raise
        for f in fs:
            f._p = p
        return fs

    def _cancel_job(self, job):
        try:
            self.client.send("cancel", callback=_quiet, eager=False, job=job)
        except ConcdError:
            pass  # the connection is gone; so is the watch

    def _forget(self, f):
        self._shared.discard(f)

    def shutdown(self, wait=True, *, cancel_futures=False):
        """No new calls; with cancel_futures, the jobs that are still
        queued on concd are cancelled; with wait, return once every job
        has ended (a cancelled one once concd has stopped it).  The
        connection closes once all have.  In a child forked after the
        executor was made, the jobs and the connection are the parent's:
        only the child's descriptor closes."""
        sh = self._shared
        if sh.client._in_child():
            sh.closed = True
            sh.close()
            return
        with sh.lock:
            sh.closed = True
            fs = list(sh.futures)
        error = None
        if cancel_futures and fs:
            error = self._cancel_queued(fs)
        if wait:
            # every job's end, cancelled ones' included: a cancel still
            # to be sent (the job not yet accepted) is not lost
            self.client._wait(lambda: not sh.futures)
            with sh.lock:
                while sh.futures:
                    sh.idle.wait()
            sh.close()
        else:
            sh.close_when_idle()
        if error is not None:
            raise error

    def _cancel_queued(self, fs):
        """Cancel the futures of fs whose jobs are queued on concd, or not
        yet accepted: the state of each job from a status request, all
        sent at once (one ps of every queued job can be too large for a
        reply).  The first error other than a job concd has forgotten,
        returned once all are done."""
        asked = []
        error = None
        for f in fs:
            if f.job is None:
                f.cancel()  # its job is cancelled once accepted
            elif not f.done():
                try:
                    asked.append((f, self.client.send("status",
                                                      job=f.job)[1]))
                except ConcdError as e:
                    error = error or e
                    break
        for f, p in asked:
            try:
                m = Watch(self.client, None, p).next()
            except NoSuchJob:
                continue  # forgotten: long finished
            except ConcdError as e:
                error = error or e
                continue
            if m is not None and m.get("state") == "queued":
                f.cancel()
        return error


class _Held:
    """What an executor and its views hold (ConcdExecutor._held)."""


class _Shared:
    """What an executor and its option views share: the connection and
    the futures not done."""

    def __init__(self, client, owned=True):
        self.client = client
        self.owned = owned
        self.lock = threading.Lock()
        self.idle = threading.Condition(self.lock)
        self.futures = set()
        self.closed = False
        self.close_pending = False

    def check_open(self):
        if self.closed:
            raise RuntimeError(SHUT_DOWN)

    def add(self, *fs, check=True):
        """The futures fs are in flight: shutdown() waits for them.  With
        check, RuntimeError once it has begun, tested under the lock it
        takes: a future added before is waited for, none after."""
        with self.lock:
            if check and self.closed:
                raise RuntimeError(SHUT_DOWN)
            self.futures.update(fs)

    def discard(self, f):
        with self.lock:
            self.futures.discard(f)
            if not self.futures:
                self.idle.notify_all()
            last = self.close_pending and not self.futures
        if last:
            threading.Thread(target=self.close, daemon=True).start()

    def close_when_idle(self):
        with self.lock:
            self.close_pending = True
            idle = not self.futures
        if idle:
            self.close()

    def close(self):
        with self.lock:
            owned, self.owned = self.owned, False
        if owned:
            self.client.close()


def _cancel_chunk(f):
    """Cancel a future of map(), and the calls of its chunk if it was sent
    again."""
    if f.cancel() or f.cancelled() or f.exception(0) is not None:
        return
    value = f.result(0)
    if isinstance(value, _Resent):
        for g in value.futures:
            g.cancel()


def _quiet(m):
    pass
