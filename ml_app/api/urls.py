"""API routes under /api/v1/."""

from django.urls import path
from rest_framework.routers import DefaultRouter

from .root import ApiRoot
from .views import AnalysisViewSet, CheckpointViewSet, EnsembleViewSet

app_name = "api"

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("analyses", AnalysisViewSet, basename="analysis")
router.register("checkpoints", CheckpointViewSet, basename="checkpoint")
router.register("ensembles", EnsembleViewSet, basename="ensemble")

urlpatterns = [
    path("", ApiRoot.as_view(), name="root"),
    *router.urls,
    path("analyses/<uuid:pk>/report.pdf", AnalysisViewSet.as_view({"get": "report"}), name="analysis-report"),
]
