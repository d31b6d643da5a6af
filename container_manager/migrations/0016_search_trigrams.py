# The admin job search's trigram indexes on PostgreSQL (issue 27): name, image and command,
# upper-cased as Django's ``icontains`` compares them. Only where the database lets this
# migration create the ``pg_trgm`` extension (a trusted extension since PostgreSQL 13: the
# database's owner may); elsewhere the search works as before, by a scan. Not part of the
# models' state: an index the database may lack.

from django.db import DatabaseError, migrations, transaction

TABLE = "container_manager_containerjob"
INDEXES = {
    "cjob_name_trgm": "name",
    "cjob_image_trgm": "docker_image",
    "cjob_command_trgm": "command",
}


def _has_trigrams(schema_editor) -> bool:
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        try:
            with transaction.atomic(using=connection.alias):
                cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        except DatabaseError:
            return False
    return True


def create_indexes(apps, schema_editor):
    """The three trigram indexes, when the database is PostgreSQL and has or allows pg_trgm."""
    if schema_editor.connection.vendor != "postgresql" or not _has_trigrams(schema_editor):
        return
    for name, column in INDEXES.items():
        schema_editor.execute(
            f'CREATE INDEX IF NOT EXISTS "{name}" ON "{TABLE}" '
            f'USING gin (UPPER("{column}"::text) gin_trgm_ops)'
        )


def drop_indexes(apps, schema_editor):
    """Drop the trigram indexes; the extension stays (other tables may use it)."""
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')


class Migration(migrations.Migration):

    dependencies = [
        ("container_manager", "0015_million_rows"),
    ]

    operations = [
        migrations.RunPython(create_indexes, drop_indexes, elidable=False),
    ]
