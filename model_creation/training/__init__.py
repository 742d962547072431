"""Dataset preprocessing, training, evaluation and export, free of Django.

The management commands in ``model_creation/management/commands`` are thin wrappers around these modules. Every crop
is made by the detection core (``ml_app.detection``) exactly as the app makes it at inference, and the settings that
shaped the crops travel from the preprocess manifest into each checkpoint.
"""
