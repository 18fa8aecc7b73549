"""xtwizard's benchmarks (issue #8): `.venv/bin/python -m benchmarks` runs them all against the sandbox and
writes `benchmarks/results.json` and the table between the bench markers in README.md.  Not collected by
pytest (testpaths = tests).  What each measures and how: docs/benchmarks.md."""


class NotMeasurable(Exception):
    """A benchmark whose subject is not built yet: reported as such, never with a made-up number."""
