"""The site's routes; every analysis route carries the analysis' UUID."""

from django.urls import path

from . import closer, history, privacy, views

app_name = "ml_app"

urlpatterns = [
    path("", views.upload_page, name="upload"),
    path("analyses/", views.create_analysis, name="create"),
    path("analyses/mine/", history.my_analyses, name="mine"),
    path("analyses/<uuid:analysis_id>/", views.analysis_page, name="analysis"),
    path("analyses/<uuid:analysis_id>/status", views.analysis_status, name="analysis-status"),
    path("analyses/<uuid:analysis_id>/video", views.analysis_video, name="analysis-video"),
    path("analyses/<uuid:analysis_id>/crops/<str:name>", views.analysis_crop, name="analysis-crop"),
    path("analyses/<uuid:analysis_id>/report.pdf", views.analysis_report_pdf, name="analysis-report"),
    path("analyses/<uuid:analysis_id>/delete", views.delete_analysis, name="analysis-delete"),
    path("analyses/<uuid:analysis_id>/retry", views.retry_analysis, name="analysis-retry"),
    path("analyses/<uuid:analysis_id>/privacy", privacy.set_privacy, name="analysis-privacy"),
    path("analyses/<uuid:analysis_id>/closer", closer.look_closer, name="analysis-closer"),
]
