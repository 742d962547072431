"""Content Credentials (C2PA) in the report: what the file's signed manifest claims (the result's "provenance", made
by ml_app.detection.provenance), as rows, kept apart from the network's verdict."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .wording import Row

STATES = {
    "none": "none: the file carries no Content Credentials",
    "valid": "present; signature and hashes check out (the file is unchanged since it was signed)",
    "invalid": "present but not valid: the file does not match what was signed",
    "unreadable": "present but unreadable",
}


def _signer(signer: Mapping[str, Any]) -> list[Row]:
    who = ", ".join(str(signer[key]) for key in ("name", "organization") if signer.get(key))
    rows = [("Signed by", who)] if who else []
    if signer.get("issuer"):
        rows.append(("Certificate issued by", str(signer["issuer"])))
    valid = " to ".join(str(signer[key])[:10] for key in ("valid_from", "valid_until") if signer.get(key))
    if valid:
        rows.append(("Certificate valid", valid))
    if signer.get("time"):
        rows.append(("Signed at (time stamp)", str(signer["time"])))
    if signer.get("algorithm"):
        rows.append(("Signature algorithm", str(signer["algorithm"])))
    return rows


def provenance_rows(provenance: Mapping[str, Any]) -> list[Row]:
    """The record in rows: its state and summary, then (for a readable manifest) who made and signed it, what it
    says was done, its problems and whether its signer is trusted."""
    state = str(provenance.get("state", "none"))
    rows: list[Row] = [("State", STATES.get(state, state)), ("Summary", str(provenance.get("summary", "")))]
    if provenance.get("error"):
        rows.append(("Why unreadable", str(provenance["error"])))
    if state not in ("valid", "invalid"):
        return rows
    for key, label in (("generator", "Made with"), ("title", "Title"), ("format", "Format"), ("ai", "AI claim")):
        if provenance.get(key):
            rows.append((label, str(provenance[key])))
    rows += _signer(provenance.get("signer") or {})
    for number, action in enumerate(provenance.get("actions") or [], 1):
        when = f" ({action['when']})" if action.get("when") else ""
        rows.append((f"Action {number}", f"{action.get('description', action.get('action', ''))}{when}"))
    if provenance.get("ingredients") is not None:
        rows.append(
            (
                "Ingredients",
                f"{provenance['ingredients']} source file(s); {provenance.get('manifests', '?')} "
                "manifest(s) in the history",
            )
        )
    for problem in provenance.get("problems") or []:
        rows.append(("Problem", f"{problem.get('meaning', '')} ({problem.get('code', '')})"))
    if provenance.get("trust_explanation"):
        rows.append(("Trust", str(provenance["trust_explanation"])))
    return rows
