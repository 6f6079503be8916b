"""Invites that let someone sign up when `TAPELINE_SIGNUP=invite`, and the
record of how each self-made account came to be (mode, invite, whether its
email address is confirmed). Accounts an administrator makes have no record."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Invite(models.Model):
    # Kept in clear: staff copy the link from admin or the invites page at any
    # time; it is single-use and expires, which bounds what a leak gives away.
    token = models.CharField(max_length=64, unique=True, editable=False)
    email = models.EmailField(
        blank=True, help_text="Optional: the address the account must use."
    )
    note = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="invites_created",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True, editable=False)
    used_by = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="invite_used",
        editable=False,
    )
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        # Never any part of the token: this text lands in the audit log.
        return f"invite #{self.pk} ({self.status})"

    @property
    def status(self) -> str:
        if self.used_at:
            return "used"
        if self.revoked_at:
            return "revoked"
        if self.expires_at <= timezone.now():
            return "expired"
        return "open"


class SignUp(models.Model):
    class Mode(models.TextChoices):
        INVITE = "invite", "Invite"
        OPEN = "open", "Open sign-up"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="signup"
    )
    mode = models.CharField(max_length=8, choices=Mode.choices)
    invite = models.ForeignKey(Invite, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    # Open sign-ups stay inactive until the address is confirmed; an invite
    # vouches for the person, so theirs is set at sign-up.
    email_verified_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"sign-up of {self.user} ({self.mode})"
