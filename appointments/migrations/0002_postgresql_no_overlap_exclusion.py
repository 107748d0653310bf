"""The one database-specific part of booking: PostgreSQL refuses overlapping appointments.

An exclusion constraint over the booking lane (the company, and the resource or none)
and the time the appointment keeps busy, [start, blocked_until), for the statuses that
hold their time. Concurrent bookings of one slot then book exactly one; the others get
an IntegrityError (SQLSTATE 23P01) that the booking service turns into alternatives.

SQLite (the embedded run) has no exclusion constraints: there every booking runs in a
BEGIN IMMEDIATE transaction (the embedded database settings), which serialises the
check and the insert. This migration does nothing there.
"""

from django.contrib.postgres.operations import BtreeGistExtension
from django.db import migrations

CONSTRAINT = "appointment_no_overlap_per_lane"

ADD = f"""
ALTER TABLE appointments_appointment ADD CONSTRAINT {CONSTRAINT}
EXCLUDE USING gist (
    company_id WITH =,
    (COALESCE(resource_id, 0)) WITH =,
    tstzrange("start", "blocked_until", '[)') WITH &&
) WHERE (status IN ('pending', 'confirmed'))
"""

DROP = f"ALTER TABLE appointments_appointment DROP CONSTRAINT IF EXISTS {CONSTRAINT}"


def add_exclusion(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(ADD)


def drop_exclusion(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("appointments", "0001_services_resources_closures_appointments")]

    operations = [
        BtreeGistExtension(),
        migrations.RunPython(add_exclusion, drop_exclusion),
    ]
