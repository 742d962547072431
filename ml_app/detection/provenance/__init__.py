"""Content Credentials (C2PA): what a file says about its own origin, read offline and kept apart from the verdict.

:func:`read_provenance` reads and validates; :class:`Provenance` is what it finds (``to_dict`` for results);
:func:`load_trust_anchors` checks a trust list. c2pa-python is imported only when a file or a list is read.
"""

from .reader import NO_CREDENTIALS, Provenance, load_trust_anchors, read_provenance

__all__ = ["NO_CREDENTIALS", "Provenance", "load_trust_anchors", "read_provenance"]
