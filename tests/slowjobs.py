"""Run `newsbot` with every Celery summary job held DELAY seconds before it computes (tests only).

    python tests/slowjobs.py DELAY worker --hostname NAME

Tests use it so that a SIGKILL or SIGTERM lands in the middle of a job. The delay is a test
device, not a user setting: it lives here, not in bot.config.
"""

from __future__ import annotations

import functools
import sys

# The delay comes first; the rest is `newsbot`'s own command line. The argument stays in
# sys.orig_argv, so the allocator re-exec of model commands runs this script again with it.
delay = float(sys.argv.pop(1))

import bot.jobs.celery_app as celery_app  # noqa: E402 - after reading our own argument
from bot.cli import main  # noqa: E402 - after reading our own argument

celery_app.run_summary_job = functools.partial(celery_app.run_summary_job, delay=delay)
main()
