"""The detection core: video sampling, faces, the network, checkpoints and prediction.

No Django here: training, the worker, the command line and the tests all share this package.
"""
