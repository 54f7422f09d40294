"""A client for concd, the job daemon, over concd-protocol(7).

    import concd
    with concd.Client() as c:                  # $CONCD_SOCKET or the default
        job = c.submit("primes", {"n": 10**6})
        print(c.wait(job)["result"])           # 78498

`Client` is blocking and thread-safe: any number of threads may send
requests on one connection at once (pipelining); a thread that waits for a
reply reads the connection itself while no other does, handing each reply
and event to the request it answers, by id, and a background thread reads
while none waits.  `concd.aio`
has the same over asyncio, `concd.futures` a concurrent.futures Executor.
Every error code of the protocol is an exception class named after it
(`bad_args` -> `BadArgs`), all subclasses of `ConcdError`.
"""
import _thread
import collections
import os
import struct
import threading
import time
import weakref

import msgpack

# The socket type itself: the socket module's Python layer (its enums and
# selectors) would be a quarter of a fresh program's import time.
from _socket import AF_UNIX, MSG_DONTWAIT, SHUT_RDWR, SOCK_STREAM
from _socket import socket as _unix_socket

__all__ = ["Client", "ConcdError", "Watch", "default_socket",
           "PROTO_VERSION", "FINAL_STATES"]

PROTO_VERSION = 4  # the version this library speaks (proto/proto.h)
MAX_FRAME = 1048576
SYSTEM_SOCKET = "/run/concd/concd.sock"
FINAL_STATES = ("succeeded", "failed", "cancelled", "timed_out")
_HEADER = struct.Struct(">I")
# replies nobody has read for this long are read by the background reader
STALE = 0.05
READ_SIZE = 1 << 18  # bytes a read of the connection takes at most
READ_FIRST = 1 << 14  # and its first reads: the buffer grows when filled
POLL_MAX_MS = (1 << 31) - 1  # a longer wait polls again
# this process's id, set again in a child forked from it: a client made
# before the fork is the parent's (a pid of its own for each connection
# would be a system call at every request)
_pid = os.getpid()


def _forked():
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


def default_socket():
    """The socket concctl would use: $CONCD_SOCKET; else the user daemon's
    socket if there is one; else the system daemon's."""
    s = os.environ.get("CONCD_SOCKET")
    if s:
        return s
    run = os.environ.get("XDG_RUNTIME_DIR")
    if run:
        path = os.path.join(run, "concd", "concd.sock")
        if os.path.exists(path):
            return path
    return SYSTEM_SOCKET


class ConcdError(Exception):
    """A request refused, or a job that did not succeed.  `code` is the
    protocol's error code, `message` its text; `index` the position of the
    refused job of a gather; `end` the job's end message and `job` its id
    when the error is how a job ended."""
    code = None

    def __init__(self, message="", code=None, index=None, end=None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.index = index
        self.end = end
        self.job = end.get("job") if end else None

    def __str__(self):
        where = "" if self.index is None else " (job %d of the gather)" % (
            self.index)
        return "%s: %s%s" % (self.code, self.message, where)


class ConnectionLost(ConcdError):
    """The connection closed while requests were in flight."""
    code = "connection_lost"


class Timeout(ConcdError, TimeoutError):
    """No reply within the client's timeout (the job goes on)."""
    code = "timeout"


class BadFrame(ConcdError):
    code = "bad_frame"


class FrameTooLarge(ConcdError):
    code = "frame_too_large"


class VersionMismatch(ConcdError):
    code = "version_mismatch"


class UnknownMessage(ConcdError):
    code = "unknown_message"


class BadField(ConcdError):
    code = "bad_field"


class UnknownTask(ConcdError):
    code = "unknown_task"


class BadArgs(ConcdError):
    code = "bad_args"


class BadExecutor(ConcdError):
    code = "bad_executor"


class NoSuchJob(ConcdError):
    code = "no_such_job"


class PermissionDenied(ConcdError):
    code = "permission_denied"


class NotFinished(ConcdError):
    code = "not_finished"


class ShuttingDown(ConcdError):
    code = "shutting_down"


class QueueFull(ConcdError):
    code = "queue_full"


TRACEBACK = "\nTraceback (most recent call last):\n"


def _type_name(name):
    """Whether name is an exception type's as Python writes it: "Name",
    or "module.name" for a type not built in (concd's own messages, such
    as "python: ...", are neither)."""
    parts = name.split(".")
    return all(p.isidentifier() for p in parts) and (
        len(parts) > 1 or name[:1].isupper())


class TaskFailed(ConcdError):
    """The task failed.  For a `python` job, `remote_type` is the name of
    the exception's type and `remote_traceback` its traceback."""
    code = "task_failed"

    def __init__(self, message="", code=None, index=None, end=None):
        super().__init__(message, code, index, end)
        # "Type: message" (over lines, perhaps), then the traceback if any
        _, tb, rest = message.rpartition(TRACEBACK)
        self.remote_traceback = tb[1:] + rest if tb else None
        name = message.partition("\n")[0].partition(": ")[0]
        self.remote_type = name if _type_name(name) else None


class Cancelled(ConcdError):
    code = "cancelled"


class TimedOut(ConcdError):
    code = "timed_out"


class WorkerDied(ConcdError):
    code = "worker_died"


class Internal(ConcdError):
    code = "internal"


class Interrupted(ConcdError):
    code = "interrupted"


class StoreFailed(ConcdError):
    code = "store_failed"


class NoSuchGroup(ConcdError):
    code = "no_such_group"


class DependencyFailed(ConcdError):
    code = "dependency_failed"


class Oom(ConcdError):
    code = "oom"


class NodeFailed(ConcdError):
    code = "node_failed"


class Preempted(ConcdError):
    code = "preempted"


ERRORS = {cls.code: cls for cls in ConcdError.__subclasses__()}
__all__ += [cls.__name__ for cls in ERRORS.values()]
__all__ += ["ERRORS", "error_from", "end_result"]


def error_from(msg, end=False):
    """The exception for an `error` reply, or for a job's `end` that is
    not `succeeded` (end=True)."""
    code = msg.get("error") or msg.get("state") or "internal"
    cls = ERRORS.get(code, ConcdError)
    return cls(msg.get("message", code), code=code, index=msg.get("index"),
               end=msg if end else None)


def end_result(end):
    """A job's result from its `end` message, or its error raised."""
    if end.get("t") == "error":
        raise error_from(end)
    if end.get("state") == "succeeded" and "error" not in end:
        return end.get("result")
    raise error_from(end, end=True)


def packb(value):
    """value in MessagePack; TypeError for what it cannot encode, an
    integer out of its range (-2**63 to 2**64-1) included."""
    try:
        return msgpack.packb(value, use_bin_type=True)
    except OverflowError as e:
        raise TypeError("cannot encode as MessagePack: an integer out of "
                        "its range, -2**63 to 2**64-1 (%s)" % e) from None


def pack(msg):
    """One frame: the length and the MessagePack map.  Raises TypeError
    for a value MessagePack cannot encode, ValueError for a frame over the
    protocol's limit."""
    body = packb(msg)
    if len(body) > MAX_FRAME:
        what = "a %s request" % msg["t"] if "t" in msg else "a job"
        raise ValueError("%s of %d bytes is over concd's frame limit of %d "
                         "bytes" % (what, len(body), MAX_FRAME))
    return _HEADER.pack(len(body)) + body


class Frames:
    """Splits bytes into messages: feed() them, then iterate."""

    def __init__(self):
        self.buf = bytearray()

    def feed(self, data):
        self.buf += data

    def __iter__(self):
        buf = self.buf
        pos = 0
        while len(buf) - pos >= 4:
            n = _HEADER.unpack_from(buf, pos)[0]
            if len(buf) - pos - 4 < n:
                break
            yield msgpack.unpackb(bytes(buf[pos + 4:pos + 4 + n]),
                                  raw=False, strict_map_key=False)
            pos += 4 + n
        del buf[:pos]


def _ms(seconds):
    return None if seconds is None else int(round(seconds * 1000))


def submit_fields(task, args=None, executor=None, timeout=None,
                  retries=None, retry_delay=None, **fields):
    """A submit (or gather job) map: Python's names and units (seconds)
    turned into the protocol's (exec, milliseconds); other fields (daemon,
    fresh, group, label, priority, cpus, mem, pids, after, cwd, env, ...)
    go as they are."""
    m = {"task": task, "args": args or {}}
    if executor is not None:
        m["exec"] = executor
    if timeout is not None:
        m["timeout"] = _ms(timeout)
    if retries is not None:
        m["retries"] = retries
    if retry_delay is not None:
        m["retry_delay"] = _ms(retry_delay)
    m.update((k, v) for k, v in fields.items() if v is not None)
    return m


def _done_single(msg, state):
    return True


def _done_watch(msg, state):
    return msg["t"] in ("end", "error")


def _done_log(msg, state):
    return msg["t"] in ("ok", "end", "error")


def _done_gather(msg, state):
    t = msg["t"]
    if t == "error":
        return True
    if t == "accepted":
        state["left"] = len(msg.get("jobs", ()))
    elif t == "end":
        state["left"] -= 1
    return state.get("left") == 0


class _Pending:
    """The messages of one request: queued for a waiting thread, or handed
    to a callback by the thread that reads the connection.  `eager` once
    they must be read even while no thread waits for them (a callback
    that must run); `gone` after the last."""

    def __init__(self, done, callback=None):
        self.done = done
        self.state = {}
        self.callback = callback
        self.msgs = collections.deque()
        self.error = None
        self.finished = False
        self.eager = False
        self.gone = False


def _watched(watch, m):
    """A watch's message m as its reader gets it: an `error` raised, the
    ids of an `accepted` kept in the watch (Watch, and concd.aio's)."""
    if m["t"] == "error":
        raise error_from(m)
    if m["t"] == "accepted":
        watch.job = m.get("job")
        watch.jobs = m.get("jobs")
    return m


class Watch:
    """The events of a watched job (submit with watch, `watch`), of a
    gather or of a log: iterate for the messages, or end() for the last.
    An `error` reply is raised as its exception."""

    def __init__(self, client, rid, pending):
        self.client = client
        self.id = rid
        self._p = pending
        self.job = None
        self.jobs = None

    def next(self, timeout=None):
        """The next message, or None once the request is complete."""
        if timeout is None:
            timeout = self.client.timeout
        return self._next(timeout, timeout)

    def _next(self, left, timeout):
        # left: the seconds this message may take, of timeout in all
        p, c = self._p, self.client
        c._wait(lambda: p.msgs or p.error is not None or p.finished, left)
        with c._lock:
            if p.msgs:
                m = p.msgs.popleft()
            elif p.error is not None:
                raise p.error
            elif p.finished:
                return None
            else:
                raise Timeout("no message within %ss" % timeout)
        return _watched(self, m)

    def __iter__(self):
        while True:
            m = self.next()
            if m is None:
                return
            yield m

    def end(self, timeout=None):
        """Read to the end: the last message (`end`, `ok` or `error`),
        within timeout seconds in all (the client's when None), however
        many messages come before it."""
        if timeout is None:
            timeout = self.client.timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        last = None
        while True:
            m = self._next(None if deadline is None else
                           deadline - time.monotonic(), timeout)
            if m is None:
                return last
            last = m


def _background(ref, bgcv, done):
    """A client's background reader (Client._start_background).  It holds
    the client only while it looks at the requests or reads: a client
    dropped unclosed is collected, and _collected wakes it to return."""
    me = _thread.get_ident()
    seen = None  # the read count when replies were last seen unread
    try:
        while True:
            c = ref()
            if c is None:
                return
            look = c._background_look(me, seen)
            if look is None:
                return
            seen, kicks, waiting, took = look
            if took:
                continue
            with bgcv:
                if c._stopping:
                    return
                sleep = c._kicks == kicks
                c = None  # not held while it sleeps
                if sleep:
                    bgcv.wait(STALE if waiting else None)
    finally:
        done.release()


def _write_cb(ref, cond, outbox):
    """A client's writer thread (Client._write): the frames its callbacks
    send; it holds the client only while it writes."""
    while True:
        with cond:
            while not outbox:
                cond.wait()
            data = outbox.popleft()
        c = None if data is None else ref()
        if c is None:
            return
        c._sendall(data)
        c = None


def _collected(pid, sock, bgcv, cond, outbox):
    """A client dropped unclosed is gone: its connection closes and its
    threads return (in a child forked after it was made, only the
    child's descriptor closes).  On a thread of its own, as the collector
    may run this on the background reader while it holds bgcv's lock."""
    def close():
        if pid == _pid:
            try:
                sock.shutdown(SHUT_RDWR)
            except OSError:
                pass
        sock.close()
        with bgcv:
            bgcv.notify()
        with cond:
            outbox.append(None)
            cond.notify()
    _thread.start_new_thread(close, ())


class Client:
    """A connection to concd.  path: the socket (default_socket() when
    None); timeout: seconds to wait for a reply (None: no limit)."""

    def __init__(self, path=None, timeout=None):
        self.path = path or default_socket()
        self.timeout = timeout
        # the process the connection is made in, and its background reader
        # (started by the hello): a forked child has neither
        self._pid = _pid
        self._sock = _unix_socket(AF_UNIX, SOCK_STREAM)
        try:
            self._sock.connect(self.path)
        except OSError as e:
            self._sock.close()
            raise ConnectionError("cannot connect to concd at %s: %s"
                                  % (self.path, e.strerror or e)) from e
        self._send_lock = threading.Lock()
        # _lock guards the requests, the read turn and the waiters;
        # _cv wakes the threads that wait for a message or for the turn
        self._lock = threading.Lock()
        self._cv = threading.Condition(self._lock)
        self._pending = {}
        self._next_id = 1
        self._closed = None  # the exception once the connection is gone
        self._refused = None  # an input's refusal, for the next input()
        self._reading = None  # the ident of the thread whose turn it is
        self._waiting = 0  # threads in _wait, not reading
        self._reads = 0  # reads so far (the background thread's clock)
        self._frames = Frames()
        # one buffer for every read: recv(n) of a large n allocates, maps
        # and unmaps n bytes at each read (three system calls, and TLB
        # shootdowns across the client's threads).  It starts small and
        # grows to READ_SIZE once a read fills it: zeroing READ_SIZE bytes
        # at once faults in 64 pages, a millisecond of a new program.
        self._rbuf = bytearray(READ_FIRST)
        self._rview = memoryview(self._rbuf)
        # the background reader: reads while a request's messages must
        # be read and no thread waits to read them (callbacks to run, or
        # replies left unread for STALE seconds); it sleeps on _bgcv,
        # woken by _kick (its own lock, taken last, never held long)
        self._bglock = threading.Lock()
        self._bgcv = threading.Condition(self._bglock)
        self._kicks = 0
        self._eager = 0  # requests whose messages must be read at once
        self._stopping = False
        self._bg = None  # the background reader's ident, once started
        self._bg_done = None  # held by it until it returns (close joins)
        self._bg_idle = False  # it may sleep until kicked: requests kick
        # frames sent by the reading thread (by callbacks) go out on a
        # thread of their own, so that the reader never blocks writing
        self._outbox = collections.deque()
        self._outbox_cond = threading.Condition()
        self._writer = None
        # dropped unclosed, it closes (not at exit: the process ends)
        self._finalizer = weakref.finalize(
            self, _collected, self._pid, self._sock, self._bgcv,
            self._outbox_cond, self._outbox)
        self._finalizer.atexit = False
        try:
            w = self.call("hello", version=PROTO_VERSION)
        except BaseException:
            self.close()
            raise
        self.server_version = w.get("version")
        self.server = w.get("server")
        self.server_pid = w.get("pid")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Close the connection; requests in flight fail with
        ConnectionLost (their jobs go on).  In a child forked after it was
        made, only the child's descriptor closes: the parent's connection
        goes on."""
        self._finalizer.detach()
        if self._in_child():
            self._sock.close()  # the parent's threads and locks stay theirs
            return
        with self._bglock:
            self._stopping = True
            self._kicks += 1
            self._bgcv.notify()
        try:
            self._sock.shutdown(SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        if self._bg is not None and _thread.get_ident() != self._bg:
            with self._bg_done:
                pass
        with self._outbox_cond:
            self._outbox.append(None)
            self._outbox_cond.notify()
        if (self._writer is not None
                and self._writer is not threading.current_thread()):
            self._writer.join()

    def _in_child(self):
        """True in a child forked after the client was made."""
        return self._pid != _pid

    def _check_process(self):
        """RuntimeError in a child forked after the client was made: the
        connection is the parent's, and what the child read or wrote on
        it would take the parent's replies or break its frames."""
        if self._in_child():
            raise RuntimeError("this concd client was made in process %d: "
                               "make a new one in the child" % self._pid)

    # the wire

    def send(self, t, done=_done_single, callback=None, eager=None,
             **fields):
        """Send one request; its messages go to the returned _Pending (to
        callback(msg) when given, on the thread that reads the connection
        then: it must not block).  done(msg, state) says whether msg is
        the request's last.  eager: its messages are read at once even
        while no thread waits for them (default: when there is a
        callback); else _mark_eager can say so later."""
        self._check_process()
        p = _Pending(done, callback)
        with self._lock:
            if self._closed is not None:
                raise self._closed
            rid = self._next_id
            self._next_id += 1
            self._pending[rid] = p
        fields["t"] = t
        fields["id"] = rid
        try:
            frame = pack(fields)
        except BaseException:
            with self._lock:
                self._pending.pop(rid, None)
            raise
        self._start_background()
        if eager or (eager is None and callback is not None):
            self._mark_eager(p)
        self._write(frame)
        return rid, p

    def send_many(self, requests):
        """Send several requests, each (t, done, callback, fields), in one
        write: the ids, in order.  Those with a callback are eager."""
        self._check_process()
        ids = []
        frames = []
        eager = []
        with self._lock:
            if self._closed is not None:
                raise self._closed
            for t, done, callback, fields in requests:
                rid = self._next_id
                self._next_id += 1
                fields = dict(fields, t=t, id=rid)
                try:
                    frames.append(pack(fields))
                except BaseException:
                    for r in ids:
                        self._pending.pop(r, None)
                    raise
                self._pending[rid] = p = _Pending(done, callback)
                if callback is not None:
                    eager.append(p)
                ids.append(rid)
        self._start_background()
        for p in eager:
            self._mark_eager(p)
        self._write(b"".join(frames))
        return ids

    def _write(self, data):
        if self._reading == _thread.get_ident():
            with self._outbox_cond:
                if self._writer is None:
                    self._writer = threading.Thread(
                        target=_write_cb, name="concd-writer", daemon=True,
                        args=(weakref.ref(self), self._outbox_cond,
                              self._outbox))
                    self._writer.start()
                self._outbox.append(data)
                self._outbox_cond.notify()
            return
        self._sendall(data)

    def _sendall(self, data):
        try:
            with self._send_lock:
                self._sock.sendall(data)
        except OSError as e:
            self._lost(ConnectionLost("cannot send to concd: %s" % e))

    # reading: whichever thread waits for a message reads the connection
    # itself while no other does (a reply reaches it without a hand-over
    # between threads); the others wait for it on _cv

    def _wait(self, ready, timeout=None):
        """Until ready() (called under _lock, it must not block) or the
        connection is gone: reading the connection while it is this
        thread's turn, else waiting for the thread that reads.  False
        when timeout (seconds) passed first."""
        self._check_process()
        deadline = None if timeout is None else time.monotonic() + timeout
        me = _thread.get_ident()
        nested = self._reading == me  # a callback, on the reading thread
        try:
            while True:
                with self._lock:
                    while True:
                        if ready() or self._closed is not None:
                            return True
                        left = None if deadline is None else (
                            deadline - time.monotonic())
                        if left is not None and left <= 0:
                            return False
                        if self._reading is None:
                            self._reading = me
                            break
                        if nested:
                            raise RuntimeError(
                                "a callback cannot wait for a reply of "
                                "concd: it runs on the thread that reads "
                                "them")
                        self._waiting += 1
                        try:
                            self._cv.wait(left)
                        finally:
                            self._waiting -= 1
                self._read_turn(ready, left)
        finally:
            # an exception anywhere once the turn was taken (a
            # KeyboardInterrupt between two lines) must not keep it
            if not nested and self._reading == me:
                self._end_turn()

    def _read_turn(self, ready, left=None, background=False):
        """This thread's turn to read (self._reading is it): reads until
        ready() under _lock, or for at most left seconds; then the turn
        is free again."""
        deadline = None if left is None else time.monotonic() + left
        try:
            while True:
                if deadline is not None:
                    wait = deadline - time.monotonic()
                    if wait <= 0 or not self._readable(wait):
                        return
                    # readable, yet what poll saw may be gone: a read that
                    # waits could outlast the deadline
                    read = self._read_once(MSG_DONTWAIT)
                    if read is None:
                        continue
                else:
                    read = self._read_once(0)
                if not read:
                    return
                with self._lock:
                    if ready() or self._closed is not None:
                        return
                    if background and self._eager == 0 and self._waiting:
                        return  # a waiting thread reads for itself
        finally:
            self._end_turn(background)

    def _end_turn(self, background=False):
        """The reading thread's turn is over: a waiting thread may take
        it, and so may the background thread, for callbacks left."""
        # given back before anything that an exception could stop; the
        # waiting threads look at it under _lock, and are woken below
        self._reading = None
        with self._lock:
            if self._waiting:
                self._cv.notify_all()
            handover = self._eager > 0 and not background
        if handover:
            self._kick()

    def _readable(self, seconds):
        import select  # only for reads with a timeout
        p = select.poll()  # not select(): any descriptor number
        try:
            p.register(self._sock, select.POLLIN)
            # poll() takes an int of milliseconds: 24.8 days at most
            ms = min(max(0.0, seconds * 1000 + 0.999), POLL_MAX_MS)
            return bool(p.poll(int(ms)))
        except (OSError, ValueError):
            return True  # closed: the read says so

    def _read_once(self, flags):
        """One read of the connection and the messages it completes,
        delivered; False when the connection is gone, None when flags has
        MSG_DONTWAIT and nothing waits."""
        try:
            n = self._sock.recv_into(self._rbuf, 0, flags)
            if n == 0:
                self._lost(ConnectionLost("concd closed the connection"))
                return False
            self._frames.feed(self._rview[:n])
            if n == len(self._rbuf) and n < READ_SIZE:
                self._rbuf = bytearray(READ_SIZE)
                self._rview = memoryview(self._rbuf)
            for m in self._frames:
                self._deliver(m)
        except BlockingIOError:
            return None
        except (OSError, ValueError) as e:
            self._lost(ConnectionLost("connection to concd lost: %s" % e))
            return False
        with self._lock:
            self._reads += 1
            if self._waiting:
                self._cv.notify_all()
        return True

    def _poll(self):
        """Read what has arrived, without waiting, if no thread reads."""
        self._check_process()
        me = _thread.get_ident()
        if self._reading == me:
            return  # a callback, on the reading thread
        try:
            with self._lock:
                if self._reading is not None or self._closed is not None:
                    return
                self._reading = me
            while self._read_once(MSG_DONTWAIT):
                pass
        finally:
            if self._reading == me:
                self._end_turn()

    def _mark_eager(self, p):
        """p's messages are read at once from now on, even while no
        thread waits for them (its callback must run)."""
        with self._bglock:
            if p.eager or p.gone:
                return
            p.eager = True
            self._eager += 1
            self._kicks += 1
            self._bgcv.notify()

    def _kick(self):
        with self._bglock:
            self._kicks += 1
            self._bgcv.notify()

    def _start_background(self):
        # a thread of _thread's, not a threading.Thread: Thread.start()
        # waits until the new thread runs, half a millisecond of the
        # first request of a new program
        if self._bg is None:
            with self._bglock:
                if self._bg is not None or self._stopping:
                    return
                self._bg_done = _thread.allocate_lock()
                self._bg_done.acquire()
                self._bg = _thread.start_new_thread(_background, (
                    weakref.ref(self), self._bgcv, self._bg_done))
        elif self._bg_idle:
            self._kick()  # a new request: its replies may go unread

    def _background_look(self, me, seen):
        """One look of the background reader (_background): None once
        the connection is gone, else (seen, kicks, waiting, took), having
        read while requests' messages were to be read (took)."""
        with self._bglock:
            kicks = self._kicks
            # set before the requests are looked at: one sent after this
            # sees it and kicks, so a sleep without a timeout never
            # misses it
            self._bg_idle = True
        with self._lock:
            if self._closed is not None:
                return None
            free = self._reading is None
            waiting = bool(self._pending)
            take = free and waiting and (self._eager > 0 or
                                         seen == self._reads)
            if take:
                self._reading = me
            seen = self._reads if free and waiting else None
        if waiting:
            self._bg_idle = False  # it looks again within STALE
        if take:
            seen = None
            self._read_turn(lambda: not self._pending, background=True)
        return seen, kicks, waiting, take

    def _deliver(self, m):
        rid = m.get("id", 0)
        with self._lock:
            p = self._pending.get(rid)
            if p is not None:
                last = p.done(m, p.state)
                if last:
                    del self._pending[rid]
                if p.callback is None:
                    p.msgs.append(m)
                    p.finished = last
        if p is None:
            if rid == 0 and m.get("t") == "error":
                # a frame concd could not read: the connection ends, and
                # every request in flight fails with this error
                self._lost(error_from(m))
            elif m.get("t") == "error":
                # the one request sent with nothing to wait for its reply
                # is an input: its refusal, for the next input() to raise
                with self._lock:
                    if self._refused is None:
                        self._refused = error_from(m)
            return
        if last:
            self._gone(p)
        if p.callback is not None:
            self._callback(p, m)

    def _gone(self, p):
        with self._bglock:
            p.gone = True
            if p.eager:
                self._eager -= 1

    @staticmethod
    def _callback(p, m):
        try:
            p.callback(m)
        except Exception:  # a callback's bug must not stop the others
            import traceback
            traceback.print_exc()

    def _lost(self, err):
        with self._lock:
            if self._closed is None:
                self._closed = err
            err = self._closed
            pending = list(self._pending.values())
            self._pending.clear()
            for p in pending:
                if p.callback is None:
                    p.error = err
            self._cv.notify_all()
        self._kick()
        for p in pending:
            self._gone(p)
            if p.callback is not None:
                self._callback(p, {"t": "error", "error": err.code,
                                   "message": err.message})

    def call(self, t, timeout=None, **fields):
        """Send a request and return its reply; an `error` reply raises."""
        _, p = self.send(t, **fields)
        m = Watch(self, None, p).next(timeout)
        if m is None:
            raise ConnectionLost("no reply to %s" % t)
        return m

    def stream(self, t, done=_done_watch, **fields):
        """Send a request whose answer is several messages: a Watch."""
        rid, p = self.send(t, done=done, **fields)
        return Watch(self, rid, p)

    # the requests

    def ping(self):
        return self.call("ping")

    def submit(self, task, args=None, **options):
        """Queue a job; its id.  options: executor, timeout and
        retry_delay (seconds), retries, daemon, fresh, group, label,
        priority, cpus, mem, pids, after, after_any, cwd, umask, env, stdin,
        at, held."""
        return self.call("submit", **submit_fields(task, args,
                                                   **options))["job"]

    def submit_watch(self, task, args=None, **options):
        """Queue a job and watch it: a Watch whose first message is
        `accepted` (or `error`) and whose last is the job's `end`."""
        return self.stream("submit", watch=True,
                           **submit_fields(task, args, **options))

    def run(self, task, args=None, **options):
        """Run a job to its end: its result, or its error raised."""
        return end_result(self.submit_watch(task, args, **options).end())

    def gather(self, jobs, fail_fast=False):
        """Submit many jobs (maps from submit_fields) in one request: a
        Watch whose messages are `accepted` (its `jobs`), then every job's
        events with `index`."""
        return self.stream("gather", done=_done_gather, jobs=list(jobs),
                           fail_fast=fail_fast)

    def watch(self, job):
        return self.stream("watch", job=job)

    def wait(self, job, timeout=None):
        """The job's end message, once it has ended."""
        return self.watch(job).end(timeout)

    def status(self, job):
        return self.call("status", job=job)

    def result(self, job):
        """The end message of a finished job (NotFinished if it runs)."""
        return self.call("result", job=job)

    def cancel(self, job):
        return self.call("cancel", job=job)

    def ps(self, **filters):
        """The `jobs` reply: jobs, total, counts."""
        return self.call("ps", **filters)

    def tasks(self):
        return self.call("tasks")["tasks"]

    def pool(self):
        return self.call("pool")

    def log(self, job, **options):
        """A job's kept output, as bytes (both streams, or `stream`)."""
        out = bytearray()
        for m in self.stream("log", done=_done_log, job=job, **options):
            if m["t"] == "output":
                out += m["data"]
        return bytes(out)

    def input(self, job, data=b"", eof=False, check=False):
        """Bytes for the standard input of a job submitted with
        stdin="stream" on this connection.  concd answers only a refusal,
        and later: the next input() on the connection raises it, or, with
        check, this one, which then waits until concd has read it."""
        self._check_process()
        # no request waits for a refusal, nor reads for one: read what has
        # come (the background thread reads only for requests)
        self._poll()
        with self._lock:
            if self._closed is not None:
                raise self._closed
            refused, self._refused = self._refused, None
            if refused is None and not check:
                rid = self._next_id
                self._next_id += 1
        if refused is not None:
            raise refused
        fields = {"job": job, "data": bytes(data), "eof": eof}
        if not check:
            fields.update(t="input", id=rid)
            self._write(pack(fields))
            return
        # a refusal comes before the reply to a request sent after it
        rid, p = self.send("input", **fields)
        try:
            self.call("ping")
        finally:
            with self._lock:
                self._pending.pop(rid, None)
                m = p.msgs[0] if p.msgs else None
            self._gone(p)
        if m is not None and m["t"] == "error":
            raise error_from(m)

    def hold(self, job):
        return self.call("hold", job=job)

    def release(self, job):
        return self.call("release", job=job)

    def restart(self, job):
        return self.call("restart", job=job)["job"]

    def clean(self, **filters):
        return self.call("clean", **filters)["forgotten"]

    def group(self, op="list", name=None, **fields):
        if name is not None:
            fields["name"] = name
        return self.call("group", op=op, **fields)

    def wait_group(self, group, timeout=None):
        return self.call("wait", group=group, timeout=timeout)

    def resize(self, threads=None, processes=None):
        fields = {k: v for k, v in (("threads", threads),
                                    ("processes", processes)) if v is not None}
        return self.call("resize", **fields)

    def remote(self, op, **fields):
        return self.call("remote", op=op, **fields)

    def shutdown(self, cancel_pending=False):
        return self.call("shutdown", cancel_pending=cancel_pending)

