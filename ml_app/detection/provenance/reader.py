"""What an uploaded file says about where it came from: its C2PA Content Credentials, read with c2pa-python.

This is the file's own claim, kept apart from the network's verdict: which software made it (a camera, an editor, an
AI generator), who signed that claim, what was done to the file, and whether the signature and the hashes still
match the file (a mismatch: the file was changed after it was signed). Whether the signer is *trusted* is another
question, answered only against a configured list of trust anchors (``trust_anchors``, a PEM bundle): untrusted is
not invalid. Reading never touches the network: remote manifests and OCSP are not fetched and no host is allowed.

:func:`read_provenance` never raises for a bad file: no credentials, damaged credentials and a format that cannot
carry them all come back as a :class:`Provenance` whose ``state`` says which. Plain words live in
:mod:`.words`.
"""

from __future__ import annotations

import json
import mmap
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import ConfigurationError
from .words import action_label, meaning_of, source_words

State = Literal["none", "valid", "invalid", "unreadable"]
Trust = Literal["trusted", "untrusted", "not_checked"]

# The JUMBF description box of a C2PA manifest store: "jumd", then its type UUID, which starts with "c2pa".
_MANIFEST_MARKER = b"jumdc2pa"
# Codes about whether the signer is on the trust list: they decide ``trust``, not ``state``.
_TRUST_CODES = {"signingCredential.trusted", "signingCredential.untrusted"}
_AI_SOURCES = ("trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia")  # strongest claim first

_TRUST_WORDS = {
    "trusted": "the signer's certificate chains to one of the configured trust anchors",
    "untrusted": "the signer is not on the configured trust list: the file is unchanged since it was signed, but "
    "nobody on the list vouches for who signed it",
    "not_checked": "no trust list is configured (C2PA_TRUST_ANCHORS), so who signed it is not vouched for; the "
    "signature and hashes are still checked",
}


@dataclass
class Provenance:
    """The Content Credentials of one file, as ``to_dict`` gives them to the result, the API and the PDF."""

    state: State
    summary: str
    error: str | None = None  # for "unreadable": why
    generator: str | None = None
    generator_info: list[dict[str, str | None]] = field(default_factory=list)
    signer: dict[str, str | None] | None = None
    title: str | None = None
    format: str | None = None
    actions: list[dict[str, str | None]] = field(default_factory=list)
    ai: str | None = None
    ingredients: int = 0
    manifests: int = 0
    problems: list[dict[str, str]] = field(default_factory=list)
    trust: Trust = "not_checked"
    present: bool = True  # False for "none", and for a file that could not even be opened
    seconds: float = 0.0  # reading and validating; the timings, not the dict

    def to_dict(self) -> dict[str, Any]:
        head: dict[str, Any] = {"present": self.present, "state": self.state, "summary": self.summary}
        if self.state == "none":
            return head
        if self.state == "unreadable":
            return {**head, "error": self.error}
        return {
            **head,
            "generator": self.generator,
            "generator_info": self.generator_info,
            "signer": self.signer,
            "title": self.title,
            "format": self.format,
            "actions": self.actions,
            "ai": self.ai,
            "ingredients": self.ingredients,
            "manifests": self.manifests,
            "problems": self.problems,
            "trust": self.trust,
            "trust_explanation": _TRUST_WORDS[self.trust],
        }


NO_CREDENTIALS = "No Content Credentials"


def _library() -> Any:
    """c2pa-python, imported on first use: it loads a large native library, and ships no type information."""
    import c2pa  # type: ignore[import-untyped]

    return c2pa


def load_trust_anchors(path: str | os.PathLike) -> str:
    """The PEM text of a trust-anchor bundle, checked by the C2PA library itself; a ConfigurationError naming the
    file and the problem otherwise (settings call this at start-up, so a bad list is found before any upload)."""
    try:
        pem = Path(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"The C2PA trust anchors file {path} cannot be read: {exc}.") from exc
    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise ConfigurationError(f"The C2PA trust anchors file {path} holds no PEM certificate.")
    c2pa = _library()
    try:
        _context(pem).close()
    except c2pa.C2paError as exc:
        raise ConfigurationError(f"The C2PA trust anchors file {path} is not usable: {exc}.") from exc
    return pem


def _context(trust_pem: str | None):
    """A c2pa Context that validates offline: nothing fetched, no host allowed, trust checked only against a list."""
    c2pa = _library()
    config: dict[str, Any] = {
        "verify": {
            "remote_manifest_fetch": False,
            "ocsp_fetch": False,
            "verify_trust": trust_pem is not None,
            "verify_timestamp_trust": trust_pem is not None,
        },
        "core": {"allowed_network_hosts": []},
    }
    if trust_pem is not None:
        config["trust"] = {"user_anchors": trust_pem}
    return c2pa.Context.from_dict(config)


def read_provenance(path: str | os.PathLike, trust_anchors: str | os.PathLike | None = None) -> Provenance:
    """The Content Credentials of the file at ``path``, validated against its own certificates and, when given, the
    trust anchors (a PEM bundle's path). Only a bad ``trust_anchors`` raises (ConfigurationError)."""
    started = time.perf_counter()
    trust_pem = load_trust_anchors(trust_anchors) if trust_anchors else None
    provenance = _read(Path(path), trust_pem)
    provenance.seconds = time.perf_counter() - started
    return provenance


def _read(path: Path, trust_pem: str | None) -> Provenance:
    c2pa = _library()
    try:
        with open(path, "rb") as stream, _context(trust_pem) as context:
            reader = c2pa.Reader.try_create(stream, context=context)  # the format is told by the bytes, not the name
            if reader is None:
                return _none()
            with reader:
                store = json.loads(reader.json())
                certificates = _certificates(reader)
    except OSError as exc:
        reason = f"the file cannot be opened ({exc.strerror or exc})"
        return Provenance("unreadable", f"Content Credentials not checked: {reason}", error=reason, present=False)
    except c2pa.C2paError as exc:
        return _from_error(path, exc)
    except ValueError as exc:  # JSON the library should never produce
        return _unreadable(f"the library returned malformed data ({exc})")
    try:
        return _from_store(store, certificates, trust_pem is not None)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        return _unreadable(f"the manifest is not laid out as C2PA says ({type(exc).__name__}: {exc})")


def _none() -> Provenance:
    return Provenance("none", NO_CREDENTIALS, present=False)


def _unreadable(reason: str) -> Provenance:
    return Provenance("unreadable", f"Unreadable Content Credentials: {reason}", error=reason)


def _from_error(path: Path, exc: Exception) -> Provenance:
    """A library error: a format that cannot carry credentials or a damaged file without any is "none"; a remote
    manifest or damaged credentials is "unreadable", with the reason."""
    c2pa = _library()
    message = " ".join(str(exc).split())
    if isinstance(exc, c2pa.C2paError.NotSupported):
        return _none()
    if message.startswith("Remote:"):
        return _unreadable(
            "the file points to Content Credentials stored elsewhere, which are not fetched: only what the file "
            f"itself carries is read ({message})"
        )
    if not _has_manifest_marker(path):
        return _none()
    return _unreadable(message)


def _has_manifest_marker(path: Path) -> bool:
    """Whether the bytes hold a C2PA manifest store's label at all (so a damaged plain file is not said to carry
    damaged credentials)."""
    try:
        with open(path, "rb") as handle:
            if os.fstat(handle.fileno()).st_size == 0:
                return False
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return data.find(_MANIFEST_MARKER) >= 0
    except (OSError, ValueError):
        return False


def _certificates(reader) -> dict[str, dict]:
    """Manifest label -> the signing certificate's subject, issuer, serial and validity (crJSON has them; the plain
    JSON names only the subject). Empty when crJSON is unavailable: the plain JSON's names are used then."""
    c2pa = _library()
    try:
        data = json.loads(reader.crjson())
    except (c2pa.C2paError, ValueError):
        return {}
    found = {}
    for manifest in data.get("manifests") or []:
        info = (manifest.get("signature") or {}).get("certificateInfo")
        if isinstance(info, dict) and manifest.get("label"):
            found[manifest["label"]] = info
    return found


def _from_store(store: dict, certificates: dict[str, dict], trust_checked: bool) -> Provenance:
    label = store.get("active_manifest")
    manifests = store.get("manifests") or {}
    if not label or label not in manifests:
        return _unreadable("the manifest store names no active manifest")
    manifest = manifests[label]
    failures, successes = _statuses(store)
    problems = [
        {"code": code, "explanation": explanation, "meaning": meaning_of(code, explanation)}
        for code, explanation in failures
        if code not in _TRUST_CODES
    ]
    codes = {code for code, _ in failures} | successes
    trust: Trust = "not_checked"
    if trust_checked:
        vouched = "signingCredential.trusted" in codes and "signingCredential.untrusted" not in codes
        trust = "trusted" if vouched else "untrusted"
    invalid = bool(problems) or store.get("validation_state") == "Invalid"
    actions = _actions(manifest)
    ai = next((source_words(s) for s in _AI_SOURCES if any(a["source_type"] == s for a in actions)), None)
    provenance = Provenance(
        "invalid" if invalid else "valid",
        "",
        generator_info=_generator_info(manifest),
        signer=_signer(manifest.get("signature_info") or {}, certificates.get(label) or {}),
        title=manifest.get("title"),
        format=manifest.get("format"),
        actions=actions,
        ai=ai,
        ingredients=len(manifest.get("ingredients") or []),
        manifests=len(manifests),
        problems=problems,
        trust=trust,
    )
    provenance.generator = _generator_text(provenance.generator_info, manifest.get("claim_generator"))
    provenance.summary = _summary(provenance)
    return provenance


def _statuses(store: dict) -> tuple[list[tuple[str, str]], set[str]]:
    """(code, explanation) of each failure of the active manifest, and the codes of its successes."""
    results = (store.get("validation_results") or {}).get("activeManifest")
    if isinstance(results, dict):
        failures = results.get("failure") or []
        successes = {entry.get("code", "") for entry in results.get("success") or []}
    else:  # older stores: one flat list, failures only
        failures, successes = store.get("validation_status") or [], set()
    return [(entry.get("code", "unknown"), entry.get("explanation") or "") for entry in failures], successes


def _generator_info(manifest: dict) -> list[dict[str, str | None]]:
    info = manifest.get("claim_generator_info") or []
    if isinstance(info, dict):
        info = [info]
    return [
        {"name": str(entry["name"]), "version": None if entry.get("version") is None else str(entry["version"])}
        for entry in info
        if isinstance(entry, dict) and entry.get("name")
    ]


def _generator_text(info: list[dict[str, str | None]], claim_generator: Any) -> str | None:
    if info:
        first = info[0]
        return f"{first['name']} {first['version']}" if first["version"] else first["name"]
    return str(claim_generator) if claim_generator else None


def _name_part(name: Any, key: str) -> str | None:
    return str(name[key]) if isinstance(name, dict) and name.get(key) else None


def _signer(signature: dict, certificate: dict) -> dict[str, str | None] | None:
    """Who signed: the certificate's subject (CN, O) and issuer; the library's ``issuer`` is the subject's O."""
    if not signature and not certificate:
        return None
    subject, issuer = certificate.get("subject"), certificate.get("issuer")
    validity = certificate.get("validity") or {}
    return {
        "name": _name_part(subject, "CN") or signature.get("common_name"),
        "organization": _name_part(subject, "O") or signature.get("issuer"),
        "issuer": _name_part(issuer, "CN") or _name_part(issuer, "O"),
        "serial": certificate.get("serialNumber") or signature.get("cert_serial_number"),
        "algorithm": (signature.get("alg") or certificate.get("algorithm") or "").lower() or None,
        "time": signature.get("time"),
        "valid_from": validity.get("notBefore"),
        "valid_until": validity.get("notAfter"),
    }


def _actions(manifest: dict) -> list[dict[str, str | None]]:
    found = []
    for assertion in manifest.get("assertions") or []:
        if not str(assertion.get("label", "")).startswith("c2pa.actions"):
            continue
        for action in (assertion.get("data") or {}).get("actions") or []:
            name = str(action.get("action") or "c2pa.unknown")
            source_url = action.get("digitalSourceType")
            source_type = str(source_url).rstrip("/").rpartition("/")[2] if source_url else None
            agent = action.get("softwareAgent")
            software = agent.get("name") if isinstance(agent, dict) else agent
            entry: dict[str, str | None] = {
                "action": name,
                "label": action_label(name),
                "source_type": source_type,
                "source": source_words(source_type) if source_type else None,
                "software": str(software) if software else None,
                "when": str(action["when"]) if action.get("when") else None,
            }
            entry["description"] = _describe_action(entry)
            found.append(entry)
    return found


def _describe_action(action: dict[str, str | None]) -> str:
    text = str(action["label"])
    if action["source"]:
        text += f": {action['source']}"
    if action["software"]:
        text += f" ({action['software']})"
    return text


def _summary(p: Provenance) -> str:
    """One line, in plain words, of what the file says and whether it checks out."""
    said = "This file says it was made by " + (p.generator or "unnamed software")
    if p.signer and (p.signer["name"] or p.signer["organization"]):
        who = p.signer["name"] or p.signer["organization"]
        if p.signer["name"] and p.signer["organization"]:
            who = f"{p.signer['name']} ({p.signer['organization']})"
        said += f", signed by {who}"
    if p.ai:
        said += f"; it says it was {p.ai}"
    if p.state == "invalid":
        reasons = list(dict.fromkeys(problem["meaning"] for problem in p.problems)) or ["it does not validate"]
        checked = "Validation FAILED: " + "; ".join(reasons)
    else:
        checked = "Signature and hashes valid"
    trust = {"trusted": "signer trusted", "untrusted": "signer not on the trust list", "not_checked": "no trust list"}
    return f"{said}. {checked} ({trust[p.trust]})."
