"""The database-level guards and the role groups.

- triggers that refuse UPDATE and DELETE on the audit history (imports.db_guards);
- the audit chain's head row;
- the Requesters, Approvers and Auditors groups with their permissions (imports.roles; kept
  in sync on every later migrate by a post_migrate handler).
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

from imports.db_guards import REQUEST_HISTORY, install_audit_guards, remove_audit_guards
from imports.roles import sync_role_groups


def install_guards(apps, schema_editor):
    install_audit_guards(schema_editor.connection, [REQUEST_HISTORY])


def remove_guards(apps, schema_editor):
    remove_audit_guards(schema_editor.connection, [REQUEST_HISTORY])


def create_chain_head(apps, schema_editor):
    head_model = apps.get_model("imports", "AuditChainHead")
    head_model.objects.using(schema_editor.connection.alias).get_or_create(
        pk=1, defaults={"seq": 0, "hash": "0" * 64}
    )


def create_role_groups(apps, schema_editor):
    # Permissions are normally created after all migrations ran; the groups need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0, apps=apps, using=schema_editor.connection.alias)
        app_config.models_module = None
    sync_role_groups(apps, using=schema_editor.connection.alias)


class Migration(migrations.Migration):
    dependencies = [
        ("imports", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(install_guards, remove_guards),
        migrations.RunPython(create_chain_head, migrations.RunPython.noop),
        migrations.RunPython(create_role_groups, migrations.RunPython.noop),
    ]
