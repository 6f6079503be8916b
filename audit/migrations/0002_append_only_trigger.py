"""Audit events are append-only below the ORM too.

A row trigger refuses UPDATE and DELETE on audit_auditevent except:
- DELETE inside a transaction that set `tapeline.audit_retention` = 'on'
  (audit.retention, the only writer allowed to remove events);
- an UPDATE that only sets actor_id and/or subject_id to NULL: Django's
  SET_NULL when the user they name is deleted (the username text stays).
TRUNCATE is not covered (a statement the test suite's flush uses).
"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF current_setting('tapeline.audit_retention', true) = 'on' THEN
            RETURN OLD;
        END IF;
        RAISE EXCEPTION 'audit events are append-only: DELETE refused (old events are removed by audit retention)';
    END IF;
    IF (to_jsonb(NEW) - 'actor_id' - 'subject_id') = (to_jsonb(OLD) - 'actor_id' - 'subject_id')
       AND (NEW.actor_id IS NULL OR NEW.actor_id = OLD.actor_id)
       AND (NEW.subject_id IS NULL OR NEW.subject_id = OLD.subject_id) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit events are append-only: UPDATE refused';
END
$$;
CREATE TRIGGER audit_event_append_only
    BEFORE UPDATE OR DELETE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_event_append_only();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS audit_event_append_only ON audit_auditevent;
DROP FUNCTION IF EXISTS audit_event_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
