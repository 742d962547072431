"""Stored results from before calibration had one ``threshold`` and two outcomes: give them the shape results have now
(``thresholds``, ``calibration``, raw probabilities, people with a reason), saying they were not calibrated."""

from django.db import migrations

RAW_MEANING = "the network's raw score (this checkpoint carries no calibration): not a probability one can rely on"
INCONCLUSIVE_MEANING = (
    "INCONCLUSIVE is not a verdict either way: the evidence lies between the REAL and FAKE thresholds, the windows "
    "of one person contradict each other, or no face could be followed long enough to be analysed"
)


def upgrade(result: dict) -> dict:
    threshold = float(result.pop("threshold", 0.5))
    result["thresholds"] = {"fake": threshold, "real": threshold, "source": "uncalibrated"}
    result["calibration"] = {"calibrated": False, "meaning": RAW_MEANING, "inconclusive_means": INCONCLUSIVE_MEANING}
    result.setdefault("raw_probability", result.get("fake_probability"))
    result.setdefault("checkpoint", {}).setdefault("calibration", None)
    result.setdefault("ensemble", None)
    by_index = {}
    for window in result.get("windows", []):
        window.setdefault("raw_probability", window.get("fake_probability"))
        by_index[window.get("index")] = window
        for track in window.get("tracks", []):
            track.setdefault("raw_probability", track.get("fake_probability"))
    for person in result.get("people", []):
        scores = [
            max(t["fake_probability"] for t in by_index[i]["tracks"] if t.get("person_id") == person["person_id"])
            for i in person.get("windows", [])
            if i in by_index and any(t.get("person_id") == person["person_id"] for t in by_index[i]["tracks"])
        ]
        person.setdefault("raw_probability", person.get("fake_probability"))
        person.setdefault("window_probabilities", scores)
        person.setdefault("disagreement", (max(scores) - min(scores)) if scores else 0.0)
        person.setdefault("reason", None)
    return result


def forwards(apps, schema_editor):
    Analysis = apps.get_model("ml_app", "Analysis")
    for analysis in Analysis.objects.exclude(result=None).iterator():
        if isinstance(analysis.result, dict) and "thresholds" not in analysis.result and analysis.result:
            analysis.result = upgrade(analysis.result)
            analysis.save(update_fields=["result"])


class Migration(migrations.Migration):
    dependencies = [("ml_app", "0003_analysis_stage_choices")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
