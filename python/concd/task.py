"""Inside a function that concd's `python` task runs: its progress and
whether it was cancelled.

    import concd.task
    def count(n):
        for i in range(n):
            if concd.task.cancelled():
                return None
            concd.task.progress(i, n, "counting")

Outside concd (the function called directly), progress() does nothing and
cancelled() is False, so the same function runs anywhere.
"""
try:
    from _concd_task import cancelled, progress
except ImportError:
    def progress(done, total, msg=None):
        """Report done units of work out of total (0: unknown)."""
        return None

    def cancelled():
        """True once the job has been asked to stop."""
        return False

__all__ = ["progress", "cancelled"]
