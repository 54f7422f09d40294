"""Functions that test_python_client.py sends to concd's python task:
importable by name from this directory, which the client sends as part
of its sys.path."""
import os

import concd.task


def square(x):
    return x * x


def add(a, b, scale=1):
    return (a + b) * scale


def pair(a, b):
    return (a, b)


def where():
    return os.getcwd()


def umask(*ignored):
    mask = os.umask(0o22)
    os.umask(mask)
    return mask


def chatty(name):
    print("hello,", name)
    return len(name)


def fail(message):
    raise ValueError(message)


def slow(steps):
    """Reports progress and stops once cancelled: returns the steps done."""
    for i in range(steps):
        if concd.task.cancelled():
            return i
        concd.task.progress(i, steps, "step")
        sum(range(100000))
    return steps


def unencodable():
    return object()


class Maths:
    @staticmethod
    def cube(x):
        return x ** 3


def big(n):
    return b"x" * n


def ident(x):
    return x


def big_then_slow(n, i):
    """n bytes; called in a job of its own (map's resend of a chunk) with
    i > 0, runs first until cancelled (at most a minute)."""
    import sys
    import time
    try:  # a chunk's calls come from _call_chunk's list
        alone = sys._getframe(1).f_code.co_name != "<listcomp>"
    except ValueError:
        alone = True  # called by the worker itself
    if alone and i > 0:
        end = time.monotonic() + 60
        while not concd.task.cancelled() and time.monotonic() < end:
            time.sleep(0.01)
    return b"x" * n


def fail_lines():
    raise ValueError("line1\nline2: x")
