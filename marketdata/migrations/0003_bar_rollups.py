from django.db import migrations

from marketdata.rollups import create_rollup_storage, drop_rollup_storage


def create(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        create_rollup_storage(cursor)


def drop(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        drop_rollup_storage(cursor)


class Migration(migrations.Migration):
    # A Timescale continuous aggregate cannot be created inside a transaction.
    atomic = False

    dependencies = [("marketdata", "0002_history_jobs_gaps")]

    operations = [migrations.RunPython(create, drop)]
