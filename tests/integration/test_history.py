"""ps as a history listing: its filters by state, task, owner and time
of submission, on the wire and through concctl ps, whose WHEN parser
reads durations, local and zoned dates and times, and @epoch seconds."""
import calendar
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import DaemonTest  # noqa: E402

NOBODY = 65534
# time zones named the POSIX way, so that no zone database is needed:
# "<+03>-3" is three hours east of UTC
UTC = "UTC0"
EAST3 = "<+03>-3"


def iso(us, offset_hours=0, fmt="%Y-%m-%dT%H:%M:%S"):
    """The wall-clock time us (microseconds since the epoch) shows at
    offset_hours from UTC, whole seconds."""
    return time.strftime(fmt, time.gmtime(us // 1000000 + offset_hours * 3600))


def epoch(us):
    """us as concctl's @SECONDS, to the microsecond."""
    return "@%d.%06d" % divmod(us, 1000000)


class History(DaemonTest):
    def ids(self, reply):
        self.assertEqual(reply["t"], "jobs", reply.get("message"))
        return [r["job"] for r in reply["jobs"]]

    def finished(self, c, *submits):
        """Submit each (task, args) and wait for it to end: the jobs'
        records, in order."""
        records = []
        for task, args in submits:
            rid = c.request("submit", task=task, args=args, watch=True)
            events = c.until_end(rid)
            self.assertEqual(events[-1]["t"], "end", events)
            records.append(c.call("status", job=events[0]["job"]))
        return records

    # ---- the wire ----

    def test_task_filter_lists_only_that_tasks_jobs_and_counts_them(self):
        c = self.d.client()
        n1, s, n2 = self.finished(c, ("noop", {}), ("sleep", {"ms": 1}),
                                  ("noop", {}))
        ps = c.call("ps", all=True, task="noop")
        self.assertEqual(self.ids(ps), [n1["job"], n2["job"]])
        self.assertEqual(ps["total"], 2)
        self.assertEqual(ps["counts"]["succeeded"], 2)
        self.assertEqual(self.ids(c.call("ps", all=True, task="sleep")),
                         [s["job"]])
        # a task no job has (or no longer loaded) matches nothing
        ps = c.call("ps", all=True, task="nosuchtask")
        self.assertEqual((self.ids(ps), ps["total"]), ([], 0))
        self.assertEqual(sum(ps["counts"].values()), 0)

    def test_the_limit_keeps_the_newest_matches_and_the_total_counts_all(
            self):
        c = self.d.client()
        recs = self.finished(c, ("noop", {}), ("sleep", {"ms": 1}),
                             ("noop", {}), ("noop", {}))
        ps = c.call("ps", all=True, task="noop", limit=2)
        self.assertEqual(self.ids(ps), [recs[2]["job"], recs[3]["job"]])
        self.assertEqual(ps["total"], 3)

    def test_a_limit_beyond_any_table_is_no_more_than_what_matched(self):
        c = self.d.client()
        rec, = self.finished(c, ("noop", {}))
        for limit in (2**32, 2**62, 2**64 - 1):
            ps = c.call("ps", all=True, limit=limit)
            self.assertEqual(self.ids(ps), [rec["job"]], limit)

    def test_since_and_until_window_the_submitted_time(self):
        c = self.d.client()
        a, b, d = self.finished(c, ("noop", {}), ("noop", {}), ("noop", {}))
        self.assertLess(a["submitted"], b["submitted"])
        self.assertLess(b["submitted"], d["submitted"])
        every = [a["job"], b["job"], d["job"]]
        # since is inclusive, until exclusive
        self.assertEqual(
            self.ids(c.call("ps", all=True, since=b["submitted"])),
            [b["job"], d["job"]])
        self.assertEqual(
            self.ids(c.call("ps", all=True, until=b["submitted"])),
            [a["job"]])
        self.assertEqual(
            self.ids(c.call("ps", all=True, since=a["submitted"],
                            until=d["submitted"])), [a["job"], b["job"]])
        self.assertEqual(
            self.ids(c.call("ps", all=True, since=a["submitted"],
                            until=a["submitted"] + 1)), [a["job"]])
        ps = c.call("ps", all=True, since=d["submitted"] + 1)
        self.assertEqual((self.ids(ps), ps["total"]), ([], 0))
        self.assertEqual(self.ids(c.call("ps", all=True, since=0)), every)

    def test_the_filters_narrow_and_all_or_state_let_finished_jobs_in(self):
        c = self.d.client()
        gate = self.d.gate()
        old, done = self.finished(c, ("noop", {}), ("noop", {}))
        held = c.call("submit", task="exec", args={"argv": gate.argv})
        c.wait_state(held["job"], "running")
        since = done["submitted"]
        self.assertEqual(self.ids(c.call("ps", since=since)), [held["job"]])
        self.assertEqual(self.ids(c.call("ps", all=True, since=since)),
                         [done["job"], held["job"]])
        self.assertEqual(
            self.ids(c.call("ps", state="succeeded", since=since)),
            [done["job"]])
        # the counts are of the jobs that pass the other filters
        ps = c.call("ps", state="failed", task="exec")
        self.assertEqual((self.ids(ps), ps["total"]), ([], 0))
        self.assertEqual(ps["counts"]["running"], 1)
        self.assertEqual(ps["counts"]["succeeded"], 0)
        ps = c.call("ps", until=since)
        self.assertEqual((self.ids(ps), ps["total"]), ([], 0))
        self.assertEqual(ps["counts"]["succeeded"], 1)
        self.assertEqual(ps["counts"]["running"], 0)
        gate.release()
        c.wait_state(held["job"], "succeeded")

    def test_an_empty_time_window_is_a_bad_field(self):
        c = self.d.client()
        for since, until in ((10, 10), (11, 10), (0, 0)):
            m = c.call("ps", since=since, until=until)
            self.assertEqual((m["t"], m["error"]), ("error", "bad_field"))
            self.assertIn("until (%d) must be later than since (%d)"
                          % (until, since), m["message"])
        self.assertEqual(c.call("ping")["t"], "pong")

    def test_root_lists_one_owners_jobs_by_uid(self):
        os.chmod(self.d.socket, 0o666)
        mine = self.d.concctl("submit", "noop").stdout.strip()
        theirs = self.d.concctl("submit", "noop", user=NOBODY).stdout.strip()
        c = self.d.client()
        self.assertEqual(self.ids(c.call("ps", all=True, uid=NOBODY)),
                         [int(theirs)])
        self.assertEqual(self.ids(c.call("ps", all=True, uid=0)),
                         [int(mine)])
        ps = c.call("ps", all=True, uid=NOBODY - 1)
        self.assertEqual((self.ids(ps), ps["total"]), ([], 0))

    # ---- concctl ps ----

    def ctl(self, *args, **kw):
        return self.d.concctl(*args, **kw)

    def listed(self, *args, tz=UTC, user=None):
        """The job ids concctl ps lists."""
        r = self.ctl("ps", "-q", *args, env={"TZ": tz}, user=user)
        self.assertEqual(r.returncode, 0, r.stderr)
        return [int(line.split()[0]) for line in r.stdout.splitlines()[1:]]

    def test_concctl_ps_filters_by_task_and_state(self):
        c = self.d.client()
        n, s = self.finished(c, ("noop", {}), ("sleep", {"ms": 1}))
        self.assertEqual(self.listed("-a", "--task", "sleep"), [s["job"]])
        self.assertEqual(self.listed("--task=noop", "--state", "succeeded"),
                         [n["job"]])
        self.assertEqual(self.listed("--task", "noop"), [])
        r = self.ctl("ps", "--state", "done")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown state: done, valid: queued, running", r.stderr)

    def test_concctl_ps_reads_durations_back_from_now(self):
        c = self.d.client()
        job = self.finished(c, ("noop", {}))[0]["job"]
        for when in ("1h", "15m", "30s", "2d", "1w", "1h30m", "1d2h3m4s"):
            self.assertEqual(self.listed("-a", "--since", when), [job], when)
            self.assertEqual(self.listed("-a", "--until", when), [], when)

    def test_concctl_ps_reads_epoch_seconds_to_the_microsecond(self):
        c = self.d.client()
        a, b = self.finished(c, ("noop", {}), ("noop", {}))
        t = b["submitted"]
        self.assertEqual(self.listed("-a", "--since", epoch(t)), [b["job"]])
        self.assertEqual(self.listed("-a", "--until", epoch(t)), [a["job"]])
        self.assertIn(b["job"],
                      self.listed("-a", "--since", "@%d" % (t // 10**6)))
        self.assertEqual(self.listed("-a", "--since", "@0"),
                         [a["job"], b["job"]])

    def test_concctl_ps_reads_dates_and_times_in_local_time(self):
        c = self.d.client()
        job = self.finished(c, ("noop", {}))[0]["job"]
        t = c.call("status", job=job)["submitted"]
        later = t + 60 * 10**6
        # a minute after the job on a UTC wall clock: a minute after it
        # in UTC, but three hours before it three hours east of UTC
        self.assertEqual(self.listed("-a", "--until", iso(later), tz=UTC),
                         [job])
        self.assertEqual(self.listed("-a", "--until", iso(later), tz=EAST3),
                         [])
        self.assertEqual(self.listed("-a", "--since", iso(later), tz=EAST3),
                         [job])
        # minutes alone, and a space for the T
        self.assertEqual(
            self.listed("-a", "--until", iso(later + 60 * 10**6, 3,
                                             "%Y-%m-%d %H:%M"), tz=EAST3),
            [job])
        # a zone of its own wins over TZ
        self.assertEqual(
            self.listed("-a", "--until", iso(later) + "Z", tz=EAST3), [job])
        self.assertEqual(
            self.listed("-a", "--until", iso(later, 3) + "+03:00", tz=UTC),
            [job])
        self.assertEqual(
            self.listed("-a", "--until", iso(later, -5.5) + "-0530",
                        tz=EAST3), [job])
        self.assertEqual(
            self.listed("-a", "--since", iso(later, 3) + "+0300", tz=UTC),
            [])
        # a date alone is its midnight
        day = iso(t, 0, "%Y-%m-%d")
        midnight = calendar.timegm(time.strptime(day, "%Y-%m-%d"))
        self.assertEqual(self.listed("-a", "--since", day, tz=UTC), [job])
        self.assertEqual(self.listed("-a", "--until", day, tz=UTC), [])
        tomorrow = iso((midnight + 86400) * 10**6, 0, "%Y-%m-%d")
        self.assertEqual(self.listed("-a", "--until", tomorrow, tz=UTC),
                         [job])
        self.assertEqual(self.listed("-a", "--since", tomorrow, tz=UTC), [])
        # fractions of a second
        self.assertEqual(
            self.listed("-a", "--since",
                        iso(t) + ".%06dZ" % (t % 10**6)), [job])
        self.assertEqual(
            self.listed("-a", "--until",
                        iso(t) + ".%06dZ" % (t % 10**6)), [])

    def test_concctl_ps_refuses_a_time_it_cannot_read(self):
        for when in ("yesterday", "15", "1x", "h", "-1h", "1h-", "2026",
                     "2026-13-01", "2026-02-30", "2026-12-06T24:00",
                     "2026-12-06T14", "2026-12-06T14:60", "2026-12-6",
                     "2026-12-06T14:00+5", "2026-12-06T14:00:00.1234567",
                     "2026-12-06x", "@", "@1.", "@-1", "@1.1234567",
                     "@1e9", "1969-12-31T23:59:59Z", "99999999999w", ""):
            r = self.ctl("ps", "--since", when)
            self.assertEqual(r.returncode, 2, (when, r.stderr))
            self.assertIn("ps: invalid time for --since: %s (a duration "
                          "back from now" % when, r.stderr)
            self.assertEqual(r.stdout, "")
        r = self.ctl("ps", "--until", "later")
        self.assertEqual(r.returncode, 2)
        self.assertIn("invalid time for --until: later", r.stderr)

    def test_concctl_ps_refuses_an_empty_window_before_asking(self):
        r = self.ctl("ps", "--since", "@100", "--until", "@100")
        self.assertEqual(r.returncode, 2)
        self.assertIn("ps: --until must be later than --since", r.stderr)
        r = self.ctl("ps", "--since", "1h", "--until", "2h")
        self.assertEqual(r.returncode, 2)

    def test_concctl_ps_user_names_an_owner_by_name_or_uid(self):
        os.chmod(self.d.socket, 0o666)
        mine = int(self.ctl("submit", "noop").stdout)
        theirs = int(self.ctl("submit", "noop", user=NOBODY).stdout)
        for user in ("nobody", str(NOBODY)):
            self.assertEqual(self.listed("-a", "-u", user), [theirs])
            self.assertEqual(self.listed("-a", "--user", user,
                                         user=NOBODY), [theirs])
        self.assertEqual(self.listed("-a", "--user", "root"), [mine])
        r = self.ctl("ps", "-u", "no-such-user-here")
        self.assertEqual(r.returncode, 2)
        self.assertIn("ps: unknown user: no-such-user-here", r.stderr)
        r = self.ctl("ps", "-u", "4294967295")
        self.assertEqual(r.returncode, 2)
        self.assertIn("ps: invalid uid: 4294967295", r.stderr)

    def test_a_user_who_is_not_an_admin_may_not_list_another_users_jobs(
            self):
        os.chmod(self.d.socket, 0o666)
        self.ctl("submit", "noop")
        for user in ("root", "0", str(NOBODY - 1)):
            r = self.ctl("ps", "-a", "-u", user, user=NOBODY)
            self.assertEqual(r.returncode, 4, r.stderr)
            self.assertIn("only an admin may list the jobs of another user",
                          r.stderr)
        r = self.ctl("--json", "ps", "-u", "0", user=NOBODY)
        self.assertEqual(r.returncode, 4)
        self.assertEqual(json.loads(r.stdout)["error"], "permission_denied")

    def test_concctl_ps_json_carries_the_filtered_rows(self):
        c = self.d.client()
        n, s = self.finished(c, ("noop", {}), ("sleep", {"ms": 1}))
        r = self.ctl("ps", "--json", "-a", "--task", "sleep", "--since",
                     epoch(n["submitted"]))
        self.assertEqual(r.returncode, 0, r.stderr)
        m = json.loads(r.stdout)
        self.assertEqual([j["job"] for j in m["jobs"]], [s["job"]])
        self.assertEqual(m["jobs"][0]["task"], "sleep")
        self.assertEqual(m["total"], 1)


if __name__ == "__main__":
    harness.main()
