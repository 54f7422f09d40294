"""concd over asyncio streams: the requests of concd.Client as coroutines.

    import asyncio, concd.aio
    async def main():
        async with await concd.aio.Client.connect() as c:
            job = await c.submit("sleep", {"ms": 100})
            print((await c.wait(job))["result"])
    asyncio.run(main())

Requests are pipelined on one connection: any number of tasks may await
replies at once, each matched to its request by id.
"""
import asyncio

from . import (PROTO_VERSION, ConcdError, ConnectionLost, Frames, Timeout,
               _done_gather, _done_log, _done_single, _done_watch,
               _watched, default_socket, end_result, error_from, pack,
               submit_fields)

__all__ = ["Client", "Watch"]


# when a request's last message has come: the blocking client's rules
_last_single, _last_watch = _done_single, _done_watch
_last_log, _last_gather = _done_log, _done_gather


class Watch:
    """The messages of a request answered by several (a watch, a submit
    with watch, a gather, a log): `async for m in w`, or await w.end()."""

    def __init__(self, client, rid, last):
        self.client = client
        self.id = rid
        self.last = last
        self.state = {}
        self.queue = asyncio.Queue()
        self.finished = False
        self.job = None
        self.jobs = None

    async def next(self, timeout=None):
        """The next message, or None once the request is complete."""
        if timeout is None:
            timeout = self.client.timeout
        return await self._next(timeout, timeout)

    async def _next(self, left, timeout):
        # left: the seconds this message may take, of timeout in all
        if self.finished and self.queue.empty():
            return None
        if not self.queue.empty():
            m = self.queue.get_nowait()
        else:
            try:
                m = await asyncio.wait_for(self.queue.get(), left)
            except asyncio.TimeoutError:
                raise Timeout("no message within %ss" % timeout) from None
        if isinstance(m, ConcdError):
            self.finished = True
            raise m
        if m is None:
            return None
        return _watched(self, m)

    def __aiter__(self):
        return self

    async def __anext__(self):
        m = await self.next()
        if m is None:
            raise StopAsyncIteration
        return m

    async def end(self, timeout=None):
        """Read to the end: the last message, within timeout seconds in
        all (the client's when None)."""
        if timeout is None:
            timeout = self.client.timeout
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        last = None
        while True:
            m = await self._next(None if deadline is None else
                                 max(0, deadline - loop.time()), timeout)
            if m is None:
                return last
            last = m


class Client:
    """A connection to concd over asyncio: `await Client.connect(path)`."""

    def __init__(self, reader, writer, path, timeout):
        self.path = path
        self.timeout = timeout
        self._reader = reader
        self._writer = writer
        self._pending = {}
        self._next_id = 1
        self._closed = None
        self._refused = None  # an input's refusal, for the next input()
        # the connection belongs to the loop it is made on, and ends with
        # it: another loop's tasks would never see its replies
        self._loop = asyncio.get_running_loop()
        self._closing = False
        self._task = self._loop.create_task(self._read())
        self.server = self.server_version = self.server_pid = None

    @classmethod
    async def connect(cls, path=None, timeout=None):
        path = path or default_socket()
        try:
            reader, writer = await asyncio.open_unix_connection(
                path, limit=1 << 22)
        except OSError as e:
            raise ConnectionError("cannot connect to concd at %s: %s"
                                  % (path, e.strerror or e)) from e
        c = cls(reader, writer, path, timeout)
        try:
            w = await c.call("hello", version=PROTO_VERSION)
        except BaseException:
            await c.close()
            raise
        c.server_version = w.get("version")
        c.server = w.get("server")
        c.server_pid = w.get("pid")
        return c

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    async def close(self):
        self._closing = True
        if asyncio.get_running_loop() is not self._loop:
            # its loop has ended, and the connection with it (_read), or
            # runs elsewhere: nothing of it may be awaited here
            if not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._writer.close)
            elif not self._writer.transport.is_closing():
                try:
                    self._writer.close()
                except RuntimeError:
                    pass  # closed without its tasks cancelled: too late
            self._lost(ConnectionLost("the connection was closed"))
            return
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except OSError:
            pass
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._lost(ConnectionLost("the connection was closed"))

    def _check_loop(self):
        if asyncio.get_running_loop() is not self._loop:
            raise RuntimeError(
                "this concd.aio client belongs to the event loop it was "
                "connected on, which has ended or is another: connect a "
                "new one on this loop")

    async def _read(self):
        frames = Frames()
        try:
            while True:
                data = await self._reader.read(1 << 18)
                if not data:
                    break
                frames.feed(data)
                for m in frames:
                    rid = m.get("id", 0)
                    w = self._pending.get(rid)
                    if w is None:
                        if rid == 0 and m.get("t") == "error":
                            # a frame concd could not read: the connection
                            # ends, every request in flight fails with it
                            self._lost(error_from(m))
                        elif m.get("t") == "error" and self._refused is None:
                            # an input's refusal (the one request sent
                            # with no Watch), for the next input()
                            self._refused = error_from(m)
                        continue
                    w.queue.put_nowait(m)
                    if w.last(m, w.state):
                        del self._pending[w.id]
                        w.finished = True
                        w.queue.put_nowait(None)
        except (OSError, ValueError) as e:
            self._lost(ConnectionLost("connection to concd lost: %s" % e))
            return
        except asyncio.CancelledError:
            if not self._closing:
                # the loop ends (asyncio.run cancels what runs on it at
                # the end), and so does the connection, closed while the
                # loop can still close it
                self._writer.close()
                self._lost(ConnectionLost(
                    "the event loop of this concd.aio client has ended"))
            raise
        self._lost(ConnectionLost("concd closed the connection"))

    def _lost(self, err):
        if self._closed is None:
            self._closed = err
        for w in self._pending.values():
            w.queue.put_nowait(self._closed)
        self._pending.clear()

    def send(self, t, last=_last_single, **fields):
        """Send one request: its Watch (no waiting: pipelined)."""
        self._check_loop()
        if self._closed is not None:
            raise self._closed
        rid = self._next_id
        self._next_id += 1
        fields["t"] = t
        fields["id"] = rid
        frame = pack(fields)
        w = Watch(self, rid, last)
        self._pending[rid] = w
        self._writer.write(frame)
        return w

    async def call(self, t, timeout=None, **fields):
        """A request and its reply; an `error` reply raises."""
        w = self.send(t, **fields)
        await self._writer.drain()
        m = await w.next(timeout)
        if m is None:
            raise ConnectionLost("no reply to %s" % t)
        return m

    async def stream(self, t, last=_last_watch, **fields):
        w = self.send(t, last=last, **fields)
        await self._writer.drain()
        return w

    async def ping(self):
        return await self.call("ping")

    async def submit(self, task, args=None, **options):
        """Queue a job: its id (options as concd.Client.submit)."""
        return (await self.call("submit", **submit_fields(
            task, args, **options)))["job"]

    async def submit_watch(self, task, args=None, **options):
        return await self.stream("submit", watch=True,
                                 **submit_fields(task, args, **options))

    async def run(self, task, args=None, **options):
        """Run a job to its end: its result, or its error raised."""
        w = await self.submit_watch(task, args, **options)
        return end_result(await w.end())

    async def gather(self, jobs, fail_fast=False):
        return await self.stream("gather", last=_last_gather,
                                 jobs=list(jobs), fail_fast=fail_fast)

    async def watch(self, job):
        return await self.stream("watch", job=job)

    async def wait(self, job, timeout=None):
        """The job's end message, once it has ended."""
        return await (await self.watch(job)).end(timeout)

    async def status(self, job):
        return await self.call("status", job=job)

    async def result(self, job):
        return await self.call("result", job=job)

    async def cancel(self, job):
        return await self.call("cancel", job=job)

    async def ps(self, **filters):
        return await self.call("ps", **filters)

    async def tasks(self):
        return (await self.call("tasks"))["tasks"]

    async def pool(self):
        return await self.call("pool")

    async def log(self, job, **options):
        out = bytearray()
        async for m in await self.stream("log", last=_last_log, job=job,
                                         **options):
            if m["t"] == "output":
                out += m["data"]
        return bytes(out)

    async def input(self, job, data=b"", eof=False, check=False):
        """As concd.Client.input: a refusal is raised by the next input(),
        or with check by this one, which waits until concd has read it."""
        self._check_loop()
        if self._closed is not None:
            raise self._closed
        if self._refused is not None:
            refused, self._refused = self._refused, None
            raise refused
        fields = {"job": job, "data": bytes(data), "eof": eof}
        if not check:
            rid = self._next_id
            self._next_id += 1
            fields.update(t="input", id=rid)
            self._writer.write(pack(fields))
            await self._writer.drain()
            return
        # a refusal comes before the reply to a request sent after it
        w = self.send("input", **fields)
        try:
            await self.call("ping")
        finally:
            self._pending.pop(w.id, None)
        if not w.queue.empty():
            m = w.queue.get_nowait()
            if isinstance(m, dict) and m.get("t") == "error":
                raise error_from(m)

    async def hold(self, job):
        return await self.call("hold", job=job)

    async def release(self, job):
        return await self.call("release", job=job)

    async def restart(self, job):
        return (await self.call("restart", job=job))["job"]

    async def clean(self, **filters):
        return (await self.call("clean", **filters))["forgotten"]

    async def group(self, op="list", name=None, **fields):
        if name is not None:
            fields["name"] = name
        return await self.call("group", op=op, **fields)

    async def wait_group(self, group, timeout=None):
        return await self.call("wait", group=group, timeout=timeout)

    async def resize(self, threads=None, processes=None):
        fields = {k: v for k, v in (("threads", threads),
                                    ("processes", processes)) if v is not None}
        return await self.call("resize", **fields)

    async def remote(self, op, **fields):
        return await self.call("remote", op=op, **fields)

    async def shutdown(self, cancel_pending=False):
        return await self.call("shutdown", cancel_pending=cancel_pending)
