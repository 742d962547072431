"""The detection core: video sampling, faces, the network, checkpoints and prediction.

No Django here: training, the worker, the command line and the tests all share this package. One job per module:
``video`` (probe, windows, decoding), ``faces`` and ``tracking`` (finding and following faces), ``preprocessing`` (every
input setting and the crop), ``network``, ``checkpoints`` (the file format), ``model_loading`` (a checkpoint ready to
analyse, cached per process), ``windows`` (one window's faces), ``scoring`` (logits to fake probabilities, batched),
``decision`` (the app's rule: people, verdict, reasons), ``prediction`` (the analysis in order), ``results``,
``stages``, ``timing``, ``defaults``.
"""
