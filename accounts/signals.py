"""Signals for what Django's own auth signals do not cover. Each is sent inside
the transaction that makes the change, so a receiver's writes (the audit log)
commit or roll back with it. `request` is None outside a request (admin
actions pass theirs; services called from commands pass none).

- user_signed_up(sender=User, user, mode, invite, request)
- email_verified(sender=User, user, request)
- invite_created(sender=Invite, invite, created_by, request)
- invite_used(sender=Invite, invite, user, request)
- invite_revoked(sender=Invite, invite, revoked_by, request)
- password_changed(sender=User, user, how ("change" | "reset"), request)
- login_locked(sender=None, scope ("username" | "ip"), value, seconds, request)
"""

from __future__ import annotations

from django.dispatch import Signal

user_signed_up = Signal()
email_verified = Signal()
invite_created = Signal()
invite_used = Signal()
invite_revoked = Signal()
password_changed = Signal()
login_locked = Signal()
