"""Records the fleet's migration ``m20261203_120000_location_and_scroll``: an anonymous session's
``location_data`` and a page view's ``scroll_depth_percent``. Unmanaged models: applying it
changes no table (the fleet's ``migration up`` adds the columns)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("analytics", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="anonymoussession",
            name="location_data",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name="anonymouspageview",
            name="scroll_depth_percent",
            field=models.SmallIntegerField(blank=True, null=True),
        ),
    ]
