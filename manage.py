#!/usr/bin/env python
"""Django's command-line utility for Tapeline."""

from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings")
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except Exception as exc:
        # A down database or Redis, or a missing setting, deserves one clear
        # line, not a traceback.
        from django.core.exceptions import ImproperlyConfigured
        from django.db.utils import OperationalError
        from redis.exceptions import ConnectionError as RedisConnectionError

        from core.services_check import ServiceUnavailable, services_check

        if isinstance(exc, (OperationalError, RedisConnectionError)):
            try:
                services_check()
            except ServiceUnavailable as unavailable:
                exc = unavailable
        if isinstance(exc, ImproperlyConfigured):
            sys.stderr.write(f"Configuration error: {exc}\n")
            sys.exit(2)
        if isinstance(exc, ServiceUnavailable):
            sys.stderr.write(f"{exc}\n")
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
