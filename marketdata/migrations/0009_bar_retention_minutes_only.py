"""Remove the Timescale retention policy on the bar table.

Earlier installations turned BAR_RETENTION_DAYS into `add_retention_policy`
on `marketdata_bar`, which drops whole chunks: hourly and daily bars along
with the minutes. Retention now deletes 1-minute bars only
(`marketdata.retention`); on plain PostgreSQL there is nothing to remove.
"""

from django.db import migrations


def forward(apps, schema_editor):
    from marketdata.bar_storage import timescale_enabled

    with schema_editor.connection.cursor() as cursor:
        if timescale_enabled(cursor):
            cursor.execute(
                "SELECT remove_retention_policy('marketdata_bar', if_exists => true)"
            )


class Migration(migrations.Migration):
    dependencies = [("marketdata", "0008_instrument_budget_fields")]

    operations = [migrations.RunPython(forward, migrations.RunPython.noop)]
