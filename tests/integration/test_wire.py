"""concd on the wire: requests, replies, events and hostile input, spoken
with Python's msgpack rather than concd's own codec."""
import os
import signal
import socket
import struct
import sys

import msgpack

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import BOUND, DaemonTest  # noqa: E402


class Wire(DaemonTest):
    def test_hello_is_welcomed_with_the_protocol_version(self):
        c = self.d.client()
        m = c.call("hello", version=harness.PROTO_VERSION)
        self.assertEqual(m["t"], "welcome")
        self.assertEqual(m["version"], harness.PROTO_VERSION)
        self.assertEqual(m["pid"], self.d.proc.pid)

    def test_wrong_version_gets_an_error_and_the_connection_closes(self):
        c = self.d.client()
        m = c.call("hello", version=99)
        self.assertEqual((m["t"], m["error"]), ("error", "version_mismatch"))
        self.assertIsNone(c.recv())

    def test_a_client_of_the_previous_protocol_is_told_why(self):
        c = self.d.client()
        m = c.call("hello", version=harness.PROTO_VERSION - 1)
        self.assertEqual((m["t"], m["error"]), ("error", "version_mismatch"))
        self.assertIn("protocol version %d is not supported (concd speaks %d)"
                      % (harness.PROTO_VERSION - 1, harness.PROTO_VERSION),
                      m["message"])
        self.assertIsNone(c.recv())

    def test_ping_pongs(self):
        self.assertEqual(self.d.client().call("ping")["t"], "pong")

    def test_tasks_lists_traits_executors_and_defaults(self):
        m = self.d.client().call("tasks")
        tasks = {t["name"]: t for t in m["tasks"]}
        self.assertEqual(set(tasks), {"noop", "sleep", "primes", "counter",
                                      "checksum", "table", "exec"})
        self.assertEqual(tasks["primes"]["traits"], ["cpu"])
        self.assertEqual(tasks["primes"]["default"], "process")
        self.assertEqual(tasks["sleep"]["default"], "loop")
        self.assertIn("loop", tasks["sleep"]["executors"])
        self.assertEqual(tasks["primes"]["usage"], "primes n=N")

    def run_job(self, c, **submit):
        rid = c.request("submit", watch=True, **submit)
        m = c.recv()
        self.assertEqual(m["t"], "accepted", m)
        return m["job"], c.until_end(rid)

    def test_primes_gives_the_count_on_both_executors(self):
        c = self.d.client()
        for x in ("thread", "loop"):
            job, ev = self.run_job(c, task="primes", args={"n": 5000000},
                                   exec=x)
            end = ev[-1]
            self.assertEqual(end["t"], "end")
            self.assertEqual(end["state"], "succeeded")
            self.assertEqual(end["result"], 348513)
            self.assertEqual(end["exec"], x)
            self.assertEqual(end["job"], job)
            progress = [e for e in ev if e["t"] == "progress"]
            # on the loop every slice reports; a pool worker's snapshots
            # may all be overtaken by the end (they are coalesced)
            if x == "loop":
                self.assertTrue(progress, "primes reports progress")
            self.assertTrue(all(e["total"] == 5000000 for e in progress))

    def test_sleep_streams_one_progress_event_per_step(self):
        c = self.d.client()
        _, ev = self.run_job(c, task="sleep", args={"ms": 200, "steps": 4},
                             exec="loop")
        done = [e["done"] for e in ev if e["t"] == "progress"]
        self.assertEqual(done, [1, 2, 3, 4])
        self.assertEqual(ev[-1]["result"], 200)
        self.assertGreaterEqual(ev[-1]["runtime"], 200000)

    def test_a_sleep_never_ends_before_its_time(self):
        # libevent's timers go by the kernel's coarse clock, a tick (4 ms
        # at HZ=250) behind the precise one at times: 40 short sleeps in
        # one go, none may end early on any executor
        c = self.d.client()
        for x in ("loop", "thread", "process"):
            rids = [c.request("submit", task="sleep", args={"ms": 7},
                              exec=x, watch=True) for _ in range(40)]
            for rid in rids:
                end = c.until_end(rid)[-1]
                self.assertEqual(end["state"], "succeeded", end)
                self.assertGreaterEqual(end["runtime"], 7000, (x, end))

    def test_noop_returns_its_arguments(self):
        c = self.d.client()
        args = {"a": 1, "b": "two", "c": True, "d": -5}
        _, ev = self.run_job(c, task="noop", args=args)
        self.assertEqual(ev[-1]["result"], args)

    def test_thread_pool_workers_are_reused(self):
        c = self.d.client()
        served = {}
        for _ in range(6):
            _, ev = self.run_job(c, task="noop", exec="thread")
            end = ev[-1]
            served.setdefault(end["worker"], []).append(end["served"])
        self.assertLessEqual(len(served), 2)  # a pool of two threads
        self.assertEqual(sum(len(v) for v in served.values()), 6)
        for counts in served.values():
            self.assertEqual(counts, sorted(counts))
        self.assertGreater(max(max(v) for v in served.values()), 1)

    def test_many_jobs_in_flight_on_one_connection(self):
        c = self.d.client()
        ids = [c.request("submit", task="primes", args={"n": 1000 + i},
                         exec="thread", watch=True) for i in range(200)]
        ends = {}
        while len(ends) < len(ids):
            m = c.recv()
            self.assertIsNotNone(m)
            if m["t"] == "end":
                ends[m["id"]] = m["result"]
        self.assertEqual(set(ends), set(ids))
        self.assertEqual(ends[ids[0]], 168)   # pi(1000)
        self.assertEqual(ends[ids[-1]], 196)  # pi(1199)

    def test_submit_without_watch_then_status_watch_and_result(self):
        c = self.d.client()
        gate = self.d.gate()
        job = c.call("submit", task="exec", args={"argv": gate.argv})["job"]
        st = c.call("status", job=job)
        self.assertEqual(st["t"], "job")
        self.assertIn(st["state"], ("queued", "running"))
        self.assertEqual(st["task"], "exec")
        self.assertEqual(st["uid"], os.getuid())
        r = c.call("result", job=job)
        self.assertEqual((r["t"], r["error"]), ("error", "not_finished"))
        rid = c.request("watch", job=job)
        gate.release()
        self.assertEqual(c.until_end(rid)[-1]["result"], {"status": 0})
        r = c.call("result", job=job)
        self.assertEqual((r["t"], r["state"], r["result"]),
                         ("end", "succeeded", {"status": 0}))

    def test_cancel_stops_a_running_job_on_each_executor(self):
        c = self.d.client()
        for x in ("loop", "thread"):
            rid = c.request("submit", task="sleep", args={"ms": 600000},
                            exec=x, watch=True)
            job = c.recv()["job"]
            cid = c.request("cancel", job=job)
            replies = {}
            while len(replies) < 2:
                m = c.recv()
                replies[m["id"]] = m
            self.assertEqual(replies[cid]["t"], "ok")
            end = replies[rid]
            self.assertEqual(end["state"], "cancelled")
            self.assertEqual(end["error"], "cancelled")

    def test_a_timeout_ends_the_job_as_timed_out_on_each_executor(self):
        c = self.d.client()
        for x in ("loop", "thread"):
            _, ev = self.run_job(c, task="sleep", args={"ms": 600000},
                                 exec=x, timeout=200)
            end = ev[-1]
            self.assertEqual((end["state"], end["error"]),
                             ("timed_out", "timed_out"), end)
            # never a tick of the coarse clock early
            self.assertGreaterEqual(end["runtime"], 200000)
            self.assertLess(end["runtime"], 20 * 10**6)
        _, ev = self.run_job(c, task="sleep", args={"ms": 10},
                             timeout=60000)
        self.assertEqual(ev[-1]["state"], "succeeded")

    def test_a_timeout_is_at_most_a_year(self):
        # far beyond, libevent's timeval overflowed: the job timed out at
        # once
        c = self.d.client()
        for t in (31536000000 + 1, 2 ** 63, 2 ** 64 - 1):
            m = c.call("submit", task="sleep", args={"ms": 10}, timeout=t)
            self.assertEqual((m["t"], m["error"]), ("error", "bad_field"), t)
            self.assertEqual(m["message"],
                             "timeout must be at most 31536000000 ms (a year)")
        _, ev = self.run_job(c, task="sleep", args={"ms": 10},
                             timeout=31536000000)
        self.assertEqual(ev[-1]["state"], "succeeded")

    def test_cancel_of_a_queued_job_means_it_never_starts(self):
        c = self.d.client()
        busy = [c.call("submit", task="sleep", args={"ms": 600000},
                       exec="thread")["job"] for _ in range(2)]
        queued = c.call("submit", task="primes", args={"n": 10},
                        exec="thread")["job"]
        self.assertEqual(c.call("status", job=queued)["state"], "queued")
        c.call("cancel", job=queued)
        st = c.call("status", job=queued)
        self.assertEqual(st["state"], "cancelled")
        self.assertNotIn("worker", st)
        for j in busy:
            c.call("cancel", job=j)

    def test_ps_lists_active_jobs_and_all_with_counts(self):
        c = self.d.client()
        done = c.call("submit", task="noop", watch=False)["job"]
        rid = c.request("watch", job=done)
        c.until_end(rid)
        running = c.call("submit", task="sleep", args={"ms": 600000})["job"]
        ps = c.call("ps")
        self.assertEqual([j["job"] for j in ps["jobs"]], [running])
        self.assertEqual(ps["counts"]["succeeded"], 1)
        ps = c.call("ps", all=True)
        self.assertEqual([j["job"] for j in ps["jobs"]], [done, running])
        c.call("cancel", job=running)

    def test_user_errors_get_clear_replies_and_the_connection_stays(self):
        c = self.d.client()
        cases = [
            (dict(t="submit", task="nope"), "unknown_task", "nope"),
            (dict(t="submit", task="primes"), "bad_args", "missing argument n"),
            (dict(t="submit", task="primes", args={"n": "x"}), "bad_args",
             "n must be an integer"),
            (dict(t="submit", task="primes", args={"n": -1}), "bad_args",
             "between"),
            (dict(t="submit", task="primes", args={"n": 1, "q": 2}),
             "bad_args", "unknown argument \"q\""),
            (dict(t="submit", task="primes", args={"n": 1}, exec="gpu"),
             "bad_executor", "gpu"),
            (dict(t="submit", task="sleep", args={"ms": 1}, exec="loop",
                  fresh=True), "bad_executor",
             "\"fresh\" needs the thread or process executor, not the "
             "loop"),
            (dict(t="submit", task=5), "bad_field", "\"task\""),
            (dict(t="status", job=424242), "no_such_job", "424242"),
            (dict(t="cancel", job=424242), "no_such_job", "424242"),
            (dict(t="status", job="x"), "bad_field", "\"job\""),
            (dict(t="status"), "bad_field", "missing field \"job\""),
            (dict(t="frobnicate"), "unknown_message", "frobnicate"),
            (dict(t="end", job=1, state="x"), "unknown_message", "reply"),
        ]
        for i, (msg, code, text) in enumerate(cases, start=100):
            msg["id"] = i
            c.send(msg)
            m = c.recv()
            self.assertEqual((m["t"], m["id"], m["error"]),
                             ("error", i, code), msg)
            self.assertIn(text, m["message"], msg)
        self.assertEqual(c.call("ping")["t"], "pong")

    def test_strings_that_are_not_utf8_are_refused_and_never_echoed(self):
        c = self.d.client()
        # bytes packed as str: what a careless client sends
        raw = lambda m: msgpack.packb(m, use_bin_type=False)
        cases = [
            ({"t": b"p\xffng", "id": 200}, "\"t\" is not valid UTF-8"),
            ({"t": "submit", "id": 201, "task": b"no\xc0\x80op"},
             "\"task\" is not valid UTF-8"),
            ({"t": "submit", "id": 202, "task": "exec",
              "args": {"argv": ["echo", b"\xed\xa0\x80"]}},
             "\"args\" holds a string that is not valid UTF-8"),
            ({"t": "submit", "id": 203, "task": "noop",
              "args": {b"k\xff": 1}},
             "\"args\" holds a string that is not valid UTF-8"),
            ({"t": "gather", "id": 204,
              "jobs": [{"task": "noop", "exec": b"lo\xf4\x90\x80\x80p"}]},
             "\"jobs\" holds a string that is not valid UTF-8"),
        ]
        for msg, text in cases:
            body = raw(msg)
            c.send_raw(struct.pack(">I", len(body)) + body)
            # the harness decodes strictly (raw=False): an invalid
            # string in the reply would raise here
            m = c.recv()
            self.assertEqual((m["t"], m["id"], m["error"]),
                             ("error", msg["id"], "bad_field"), msg)
            self.assertIn(text, m["message"])
        self.assertEqual(c.call("ping")["t"], "pong")

    def test_a_nul_in_a_name_is_echoed_escaped_not_cut(self):
        c = self.d.client()
        m = c.call("submit", task="no\x00pe\x01")
        self.assertEqual(m["error"], "unknown_task")
        self.assertIn('no such task "no\\x00pe\\x01"', m["message"])
        m = c.call("submit", task="noop", args={"a\x00b": 1},
                   exec="lo\x00op")
        self.assertEqual(m["error"], "bad_executor")
        self.assertIn('unknown executor "lo\\x00op"', m["message"])
        m = c.call("submit", task="primes", args={"n\x00x": 1})
        self.assertEqual(m["error"], "bad_args")
        self.assertIn('unknown argument "n\\x00x"', m["message"])
        m = c.call("ps", state="run\x00ning")
        self.assertEqual(m["error"], "bad_field")
        self.assertIn('unknown state "run\\x00ning"', m["message"])

    def test_exec_output_that_is_not_utf8_arrives_as_bin(self):
        c = self.d.client()
        _, ev = self.run_job(c, task="exec", args={
            "argv": ["printf", "\\377\\300\\n"]})
        out = [e for e in ev if e["t"] == "output"]
        self.assertEqual(ev[-1]["state"], "succeeded", ev[-1])
        self.assertEqual([(e["stream"], e["data"]) for e in out],
                         [("stdout", b"\xff\xc0\n")])

    @staticmethod
    def args_of_size(size):
        """noop arguments whose MessagePack form is size bytes: four
        strings, each over 64 KiB (str 32) and within 256 KiB."""
        left = size - (1 + 4 * (2 + 5))
        return {k: "x" * (left // 4 + (i < left % 4))
                for i, k in enumerate("abcd")}

    def test_a_result_too_large_for_a_frame_is_left_out_and_said_so(self):
        c = self.d.client()
        size = (1 << 20) - 60  # the submit fits; its end does not
        args = self.args_of_size(size)
        self.assertEqual(len(msgpack.packb(args)), size)
        for x in ("thread", "process", "loop"):
            job, ev = self.run_job(c, task="noop", exec=x, args=args)
            end = ev[-1]
            self.assertEqual((end["state"], end["error"],
                              end["result_omitted"]),
                             ("failed", "internal", size), (x, end))
            self.assertIn("%d bytes" % size, end["message"])
            # status answers, with the true state and without the result
            st = c.call("status", job=job)
            self.assertEqual((st["t"], st["state"], st["result_omitted"]),
                             ("job", "succeeded", size))
            self.assertNotIn("result", st)
        small, _ = self.run_job(c, task="noop", args={"a": 1})
        r = self.d.concctl("status", job)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("left out: %d bytes, too large for a reply" % size,
                      r.stdout)
        # ps too, and the rows that fit keep their results
        ps = c.call("ps", all=True)
        self.assertEqual(ps["t"], "jobs", ps.get("message"))
        rows = {r["job"]: r for r in ps["jobs"]}
        self.assertEqual(rows[job]["result_omitted"], size)
        self.assertNotIn("result", rows[job])
        self.assertEqual(rows[small]["result"], {"a": 1})
        # result says why, naming the size
        r = c.call("result", job=job)
        self.assertEqual((r["t"], r["error"]), ("end", "internal"))
        self.assertIn("%d bytes" % size, r["message"])

    def test_ps_gives_results_to_the_oldest_rows_while_the_frame_holds(self):
        c = self.d.client()
        size = 600 * 1024  # one fits in a frame, two do not
        args = self.args_of_size(size)
        jobs = [self.run_job(c, task="noop", args=args)[0] for _ in range(3)]
        for j in jobs:
            self.assertEqual(c.call("status", job=j)["result"], args)
        ps = c.call("ps", all=True)
        self.assertEqual(ps["t"], "jobs", ps.get("message"))
        self.assertEqual([r["job"] for r in ps["jobs"]], jobs)
        self.assertEqual(ps["jobs"][0]["result"], args)
        for r in ps["jobs"][1:]:
            self.assertEqual(r["result_omitted"], size)
            self.assertNotIn("result", r)

    @staticmethod
    def container_headers(b, i=0, out=None):
        """The header kind of every map and array in the MessagePack
        value at b[i:], walked by hand: msgpack hides the encoding."""
        out = [] if out is None else out
        c = b[i]
        be = lambda at, n: int.from_bytes(b[at:at + n], "big")
        sized = {0xd9: 1, 0xc4: 1, 0xda: 2, 0xc5: 2, 0xdb: 4, 0xc6: 4}
        fixed = {0xcc: 2, 0xd0: 2, 0xcd: 3, 0xd1: 3, 0xca: 5, 0xce: 5,
                 0xd2: 5, 0xcb: 9, 0xcf: 9, 0xd3: 9}
        kinds = {0xdc: ("array 16", 2, 1), 0xdd: ("array 32", 4, 1),
                 0xde: ("map 16", 2, 2), 0xdf: ("map 32", 4, 2)}
        if c <= 0x7f or c >= 0xe0 or c in (0xc0, 0xc2, 0xc3):
            return i + 1, out
        if 0xa0 <= c <= 0xbf:
            return i + 1 + (c & 0x1f), out
        if c in sized:
            w = sized[c]
            return i + 1 + w + be(i + 1, w), out
        if c in fixed:
            return i + fixed[c], out
        if 0x80 <= c <= 0x9f:
            kind, n, per = (("fixmap", c & 0x0f, 2) if c <= 0x8f
                            else ("fixarray", c & 0x0f, 1))
            i += 1
        else:
            kind, w, per = kinds[c]
            n = be(i + 1, w)
            i += 1 + w
        out.append(kind)
        for _ in range(n * per):
            i, _ = Wire.container_headers(b, i, out)
        return i, out

    def test_every_map_and_array_concd_writes_has_a_16_bit_count(self):
        c = self.d.client()
        job = c.call("submit", task="sleep", args={"ms": 600000},
                     exec="thread")["job"]
        raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        raw.settimeout(BOUND)
        raw.connect(self.d.socket)
        requests = [{"t": "pool"}, {"t": "ps", "all": True},
                    {"t": "status", "job": job}, {"t": "tasks"},
                    {"t": "hello", "version": harness.PROTO_VERSION}, {"t": "ping"},
                    {"t": "status", "job": 0}]
        buf = b""
        for i, req in enumerate(requests, start=1):
            body = msgpack.packb(dict(req, id=i))
            raw.sendall(struct.pack(">I", len(body)) + body)
            while len(buf) < 4 or len(buf) < 4 + int.from_bytes(buf[:4],
                                                                 "big"):
                data = raw.recv(1 << 16)
                self.assertTrue(data, "concd closed the connection")
                buf += data
            n = int.from_bytes(buf[:4], "big")
            payload, buf = buf[4:4 + n], buf[4 + n:]
            end, kinds = self.container_headers(payload)
            self.assertEqual(end, n)
            self.assertEqual(set(kinds) - {"map 16", "array 16"}, set(),
                             (req, kinds))
        raw.close()
        c.call("cancel", job=job)

    def test_unknown_keys_are_ignored(self):
        c = self.d.client()
        m = c.call("ping", future_field={"x": [1, 2]})
        self.assertEqual(m["t"], "pong")

    def assert_rejected_and_closed(self, raw, code):
        c = self.d.client()
        c.send_raw(raw)
        m = c.recv()
        self.assertEqual((m["t"], m["error"]), ("error", code), raw[:32])
        self.assertIsNone(c.recv())
        # everyone else is still served
        self.assertEqual(self.d.client().call("ping")["t"], "pong")

    def test_bad_frames_are_answered_then_the_connection_closed(self):
        frame = lambda body: struct.pack(">I", len(body)) + body
        self.assert_rejected_and_closed(struct.pack(">I", 2 << 20),
                                        "frame_too_large")
        # a map header claiming ~800 million entries in 12 bytes
        self.assert_rejected_and_closed(
            frame(b"\xdf\x30\x00\x00\x00" + b"\x00" * 7), "bad_frame")
        self.assert_rejected_and_closed(
            frame(b"\xdb\xff\xff\xff\xf0abc"), "bad_frame")
        self.assert_rejected_and_closed(frame(b"\x91" * 40 + b"\x01"),
                                        "bad_frame")
        self.assert_rejected_and_closed(frame(b"\xc1garbage"), "bad_frame")
        self.assert_rejected_and_closed(frame(b"\x93\x01\x02\x03"),
                                        "bad_frame")
        self.assert_rejected_and_closed(
            frame(msgpack.packb({"t": "ping"}) + b"\x00"), "bad_frame")
        self.assert_rejected_and_closed(frame(msgpack.packb({1: 2})),
                                        "bad_frame")

    def test_a_request_over_a_limit_is_refused_alone(self):
        # a sound frame whose map holds a value over a limit: that request
        # gets bad_field under its id, the others on the connection go on
        c = self.d.client()
        job = c.call("submit", task="sleep", args={"ms": 60000})["job"]
        wid = c.request("watch", job=job)
        deep = [[[[[[[None]]]]]]]  # the 9th level, with the map and args
        over = [
            ({"a": deep}, "nested too deeply"),
            ({"a": [0] * 65537}, "container too large"),
            ({"a": b"x" * (256 * 1024 + 1)}, "string too long"),
        ]
        for args, cause in over:
            m = c.call("submit", task="noop", args=args)
            self.assertEqual((m["t"], m["error"]), ("error", "bad_field"))
            self.assertIn("over the protocol's limits: " + cause,
                          m["message"])
        # one level less is accepted, and the connection still serves
        rid = c.request("submit", task="noop", args={"a": deep[0]},
                        watch=True)
        self.assertEqual(c.until_end(rid)[-1]["result"], {"a": deep[0]})
        self.assertEqual(c.call("cancel", job=job)["t"], "ok")
        end = c.until_end(wid)[-1]
        self.assertEqual((end["t"], end["state"]), ("end", "cancelled"))

    def test_a_frame_split_across_writes_is_reassembled(self):
        c = self.d.client()
        body = msgpack.packb({"t": "ping", "id": 7})
        data = struct.pack(">I", len(body)) + body
        for b in data:
            c.send_raw(bytes([b]))
        self.assertEqual(c.recv(), {"t": "pong", "id": 7})

    def test_a_client_that_vanishes_loses_nothing_for_the_others(self):
        a, b = self.d.client(), self.d.client()
        a.request("submit", task="sleep", args={"ms": 300, "steps": 3},
                  exec="thread", watch=True)
        job = a.recv()["job"]
        wid = b.request("watch", job=job)
        a.close()
        end = b.until_end(wid)[-1]
        self.assertEqual((end["state"], end["result"]), ("succeeded", 300))

    def test_jobs_of_a_vanished_client_keep_running(self):
        a = self.d.client()
        job = a.call("submit", task="sleep", args={"ms": 200},
                     exec="loop")["job"]
        a.close()
        b = self.d.client()
        self.assertEqual(b.until_end(b.request("watch", job=job))[-1]
                         ["state"], "succeeded")

    def test_a_slow_reader_gets_coalesced_progress_but_its_end(self):
        c = self.d.client()
        steps = 200000
        rid = c.request("submit", task="sleep",
                        args={"ms": 2000, "steps": steps}, exec="loop",
                        watch=True)
        # read nothing until the job is over: watch it from elsewhere
        other = self.d.client()
        job = other.first_job()
        other.until_end(other.request("watch", job=job))
        ev = c.until_end(rid)
        progress = [e for e in ev if e["t"] == "progress"]
        self.assertEqual(ev[-1]["state"], "succeeded")
        self.assertLess(len(progress), steps)
        dones = [e["done"] for e in progress]
        self.assertEqual(dones, sorted(dones))

    def test_a_client_that_reads_late_gets_every_reply_and_later_events(self):
        c = self.d.client()
        big = "x" * 50000
        # its end comes from a timer, after the backlog below has drained:
        # no read of this client's requests is there to push it out
        sleeper = c.request("submit", task="sleep", args={"ms": 1000},
                            exec="loop", watch=True)
        # about 2 MB of replies: concd's socket fills while requests
        # are still arriving, then the client reads it all
        ids = [c.request("submit", task="noop", args={"s": big},
                         exec="loop", watch=True) for _ in range(40)]
        pings = [c.request("ping") for _ in range(5)]
        for rid in ids:
            ev = c.until_end(rid)
            self.assertEqual(ev[-1]["state"], "succeeded")
            self.assertEqual(ev[-1]["result"], {"s": big})
        for rid in pings:
            self.assertEqual(c.recv_for(rid)["t"], "pong")
        self.assertEqual(c.until_end(sleeper)[-1]["state"], "succeeded")

    def test_sigterm_kills_daemon_jobs_delivers_end_events_exits_zero(self):
        c = self.d.client()
        rids = [c.request("submit", task="sleep", args={"ms": 600000},
                          exec=x, daemon=True, watch=True)
                for x in ("loop", "thread")]
        for _ in rids:
            self.assertEqual(c.recv()["t"], "accepted")
        self.d.proc.send_signal(signal.SIGTERM)
        for rid in rids:
            self.assertEqual(c.until_end(rid)[-1]["state"], "cancelled")
        self.assertEqual(self.d.proc.wait(BOUND), 0)
        self.d.notify.wait_for("STOPPING=1")
        self.assertFalse(os.path.exists(self.d.socket))


def fnv1a64(data):
    """64-bit FNV-1a, the digest the checksum task computes."""
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    return "%016x" % h


class TaskResults(DaemonTest):
    """The counter's and the checksum's results, through the daemon,
    against what they must be."""
    args = ("-p", "2")

    def run_job(self, c, **submit):
        rid = c.request("submit", watch=True, **submit)
        end = c.until_end(rid)[-1]
        self.assertEqual((end["t"], end["state"]), ("end", "succeeded"), end)
        return end

    def test_the_counter_with_a_lock_counts_every_increment(self):
        c = self.d.client()
        for x in ("thread", "process"):
            for threads, iters in ((1, 1), (4, 250000), (64, 10007)):
                end = self.run_job(c, task="counter", exec=x, args={
                    "threads": threads, "iters": iters, "lock": True})
                n = threads * iters
                self.assertEqual(end["result"], {
                    "expected": n, "actual": n, "lost": 0, "lock": True},
                    (x, threads, iters))

    def test_the_counter_without_a_lock_reports_what_it_lost(self):
        c = self.d.client()
        for x in ("thread", "process"):
            end = self.run_job(c, task="counter", exec=x, args={
                "threads": 8, "iters": 200000, "lock": False})
            r = end["result"]
            self.assertEqual((r["expected"], r["lock"]), (1600000, False))
            # every thread adds at least its own last increment
            self.assertGreaterEqual(r["actual"], 1, r)
            self.assertLessEqual(r["actual"], r["expected"], r)
            self.assertEqual(r["lost"], r["expected"] - r["actual"], r)

    def test_checksum_gives_the_size_and_fnv1a_digest_of_the_file(self):
        # empty, short, and over two of the task's 1 MiB reads
        # without ending on one
        contents = [b"", b"hello, world\n", bytes(range(256)) * 8192 + b"x"]
        c = self.d.client()
        for i, data in enumerate(contents):
            path = os.path.join(self.d.dir, "file%d" % i)
            with open(path, "wb") as f:
                f.write(data)
            want = {"path": path, "size": len(data), "fnv1a64": fnv1a64(data)}
            for x in ("thread", "process"):
                end = self.run_job(c, task="checksum", exec=x,
                                   args={"path": path})
                self.assertEqual(end["result"], want, (x, len(data)))


if __name__ == "__main__":
    harness.main()
