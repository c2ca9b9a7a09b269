"""User-facing errors: one base class, turned into a one-line message and an exit code by the CLI."""

from __future__ import annotations

import errno

#: "The disk is full", in its forms: no space, a quota, a file size limit (RLIMIT_FSIZE, a FAT volume).
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class AlbstatsError(Exception):
    """Something the user can fix: the message says what was wrong (file and line, or argument)."""

    exit_code = 1


class UsageError(AlbstatsError):
    """A bad argument or option value."""

    exit_code = 2


class InputError(AlbstatsError):
    """A log file that cannot be read as what it claims to be (wrong format, corrupt gzip, bad line under --strict)."""


class AwsError(AlbstatsError):
    """An AWS call failed; the message carries AWS's own error code and reason."""


class SloBreached(AlbstatsError):
    """Not an error in the program: the SLO was missed. Cron sees exit code 3."""

    exit_code = 3
