from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("ml_app", "0005_ensembles")]

    operations = [
        migrations.AlterField(
            model_name="analysis",
            name="stage",
            field=models.CharField(
                choices=[
                    ("queued", "Waiting for a worker"),
                    ("requeued", "Waiting for a worker (retry)"),
                    ("fetching", "Fetching the video"),
                    ("loading", "Loading the model"),
                    ("probe", "Reading the video"),
                    ("windows", "Finding and following faces"),
                    ("network", "Scoring face sequences"),
                    ("saving", "Saving the evidence"),
                    ("done", "Done"),
                    ("failed", "Failed"),
                    ("reused", "Done (same video analysed before)"),
                ],
                default="queued",
                max_length=40,
            ),
        ),
        migrations.AddField(
            model_name="analysis",
            name="source_url",
            field=models.CharField(blank=True, help_text="the link it was fetched from, if any", max_length=2000),
        ),
        migrations.AddField(
            model_name="analysis",
            name="final_url",
            field=models.CharField(blank=True, help_text="the file's address after redirects", max_length=2000),
        ),
        migrations.AddField(
            model_name="analysis",
            name="source_title",
            field=models.CharField(blank=True, help_text="the title of the page it was found on", max_length=300),
        ),
        migrations.AddField(
            model_name="analysis",
            name="fetched_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="analysis",
            name="fetched_bytes",
            field=models.BigIntegerField(default=0, help_text="bytes received so far while fetching"),
        ),
        migrations.AddField(
            model_name="analysis",
            name="fetch_total_bytes",
            field=models.BigIntegerField(blank=True, help_text="as announced by the server", null=True),
        ),
    ]
