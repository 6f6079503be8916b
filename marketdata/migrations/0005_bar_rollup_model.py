"""Make the rollup table known to Django (admin, and test-database flushes
truncate it), and clean it up with the instrument delete trigger instead of a
foreign key (a key from a table Django does not flush blocks TRUNCATE)."""

import django.db.models.deletion
from django.db import migrations, models

FORWARD = """
ALTER TABLE marketdata_bar_rollup
    DROP CONSTRAINT IF EXISTS marketdata_bar_rollup_instrument_id_fkey;
CREATE OR REPLACE FUNCTION marketdata_instrument_delete_bars() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM marketdata_bar WHERE instrument_id = OLD.id;
    DELETE FROM marketdata_bar_rollup WHERE instrument_id = OLD.id;
    RETURN OLD;
END
$$;
"""

BACKWARD = """
CREATE OR REPLACE FUNCTION marketdata_instrument_delete_bars() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM marketdata_bar WHERE instrument_id = OLD.id;
    RETURN OLD;
END
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("marketdata", "0004_bar_fk_trigger")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="BarRollup",
                    fields=[
                        (
                            "pk",
                            models.CompositePrimaryKey(
                                "instrument",
                                "timeframe",
                                "ts",
                                blank=True,
                                editable=False,
                                primary_key=True,
                                serialize=False,
                            ),
                        ),
                        ("timeframe", models.CharField(max_length=3)),
                        ("ts", models.DateTimeField()),
                        ("open", models.DecimalField(decimal_places=8, max_digits=20)),
                        ("high", models.DecimalField(decimal_places=8, max_digits=20)),
                        ("low", models.DecimalField(decimal_places=8, max_digits=20)),
                        ("close", models.DecimalField(decimal_places=8, max_digits=20)),
                        (
                            "volume",
                            models.DecimalField(decimal_places=8, max_digits=28),
                        ),
                        ("trade_count", models.BigIntegerField(null=True)),
                        ("minutes", models.IntegerField()),
                        (
                            "instrument",
                            models.ForeignKey(
                                db_constraint=False,
                                on_delete=django.db.models.deletion.DO_NOTHING,
                                to="marketdata.instrument",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "marketdata_bar_rollup",
                        "ordering": ["instrument", "timeframe", "ts"],
                    },
                ),
            ],
            database_operations=[migrations.RunSQL(FORWARD, BACKWARD)],
        ),
    ]
