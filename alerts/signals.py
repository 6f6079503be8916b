"""Any ORM save or delete of a rule reaches running engines (see services)."""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from alerts.models import AlertRule
from alerts.services import rules_changed


@receiver(post_save, sender=AlertRule, dispatch_uid="alerts.rule_saved")
def _rule_saved(sender, instance: AlertRule, **kwargs) -> None:
    rules_changed(rule_ids=[instance.pk])


@receiver(post_delete, sender=AlertRule, dispatch_uid="alerts.rule_deleted")
def _rule_deleted(sender, instance: AlertRule, **kwargs) -> None:
    rules_changed(rule_ids=[instance.pk])
