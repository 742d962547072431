"""C2PA's vocabulary in plain words: actions, IPTC digital source types, and validation status codes.

One table each, so the result page, the command line and the PDF report say the same thing. Unknown entries fall
back to the term itself (actions, sources) or the library's own explanation (status codes): a newer file is shown,
never refused.
"""

from __future__ import annotations

_ACTIONS = {
    "c2pa.created": "created",
    "c2pa.opened": "opened",
    "c2pa.edited": "edited",
    "c2pa.edited.metadata": "metadata edited",
    "c2pa.color_adjustments": "colours adjusted",
    "c2pa.cropped": "cropped",
    "c2pa.resized": "resized",
    "c2pa.orientation": "turned",
    "c2pa.filtered": "filtered",
    "c2pa.drawing": "drawn on",
    "c2pa.placed": "another file placed in it",
    "c2pa.removed": "something removed",
    "c2pa.converted": "converted to another format",
    "c2pa.transcoded": "transcoded",
    "c2pa.repackaged": "repackaged",
    "c2pa.published": "published",
    "c2pa.watermarked": "watermarked",
    "c2pa.redacted": "redacted",
    "c2pa.translated": "translated",
    "c2pa.dubbed": "dubbed",
    "c2pa.unknown": "changed in an unrecorded way",
}

# The last part of http://cv.iptc.org/newscodes/digitalsourcetype/<term>.
_SOURCES = {
    "trainedAlgorithmicMedia": "made by an AI generator",
    "compositeWithTrainedAlgorithmicMedia": "edited with AI",
    "algorithmicallyEnhanced": "enhanced by an algorithm",
    "algorithmicMedia": "made by a computer program (not a trained AI)",
    "compositeSynthetic": "a composite including synthetic elements",
    "digitalCapture": "captured by a camera",
    "computationalCapture": "captured by a camera with computational processing",
    "compositeCapture": "a composite of camera captures",
    "composite": "a composite of several sources",
    "negativeFilm": "scanned from a film negative",
    "positiveFilm": "scanned from film",
    "print": "scanned from a print",
    "humanEdits": "edited by a person",
    "minorHumanEdits": "lightly edited by a person",
    "digitalCreation": "made by a person with software",
    "digitalArt": "made by a person with software",
    "dataDrivenMedia": "made from data",
    "screenCapture": "a screen capture",
    "virtualRecording": "a recording of a virtual scene",
}

_FILE_CHANGED = "the file was changed after it was signed"
_CODES = {
    "assertion.hashedURI.mismatch": "the Content Credentials themselves were altered after signing",
    "assertion.hashedURI.missing": "part of the Content Credentials is missing",
    "assertion.missing": "part of the Content Credentials is missing",
    "assertion.multipleHardBindings": "the credentials bind to the file more than once",
    "assertion.undeclared": "the credentials hold a part their claim does not list",
    "assertion.action.malformed": "the recorded history of changes is malformed",
    "assertion.action.ingredientMismatch": "the recorded history does not match the source files it names",
    "claim.missing": "the credentials hold no claim",
    "claim.multiple": "the credentials hold more than one claim",
    "claim.hardBindings.missing": "the credentials are not bound to the file's content",
    "claim.malformed": "the claim is malformed",
    "claimSignature.missing": "the credentials are not signed",
    "claimSignature.mismatch": "the signature does not match: the credentials were altered or forged",
    "claimSignature.outsideValidity": "it was signed while the certificate was not valid",
    "signingCredential.invalid": "the signing certificate is not valid for Content Credentials",
    "signingCredential.expired": "the signing certificate had expired",
    "signingCredential.revoked": "the signing certificate was revoked",
    "signingCredential.untrusted": "the signer is not on the trust list",
    "timeStamp.mismatch": "the signing time stamp does not match",
    "timeStamp.untrusted": "the signing time stamp comes from an untrusted authority",
    "timeStamp.outsideValidity": "the signing time stamp lies outside the certificate's validity",
    "manifest.inaccessible": "the credentials could not be reached",
    "manifest.compressed.invalid": "the compressed credentials are damaged",
    "ingredient.hashedURI.mismatch": "a source file's credentials were altered",
    "ingredient.manifest.missing": "a source file's credentials are missing",
    "general.error": "the credentials could not be validated",
}


def action_label(action: str) -> str:
    """``c2pa.color_adjustments`` -> "colours adjusted"; an unknown action by its own name."""
    if action in _ACTIONS:
        return _ACTIONS[action]
    return action.removeprefix("c2pa.").replace("_", " ").replace(".", " ")


def source_words(source_type: str) -> str:
    """An IPTC digital source type (its last part) in words: ``trainedAlgorithmicMedia`` -> made by an AI
    generator."""
    return _SOURCES.get(source_type, f"source type {source_type}")


def meaning_of(code: str, explanation: str = "") -> str:
    """A validation failure in words; every hash mismatch of the content (data, BMFF, boxes, collection) means
    the file changed after signing."""
    if code in _CODES:
        return _CODES[code]
    if code.startswith("assertion.") and code.endswith("Hash.mismatch"):
        return _FILE_CHANGED
    return explanation or code
