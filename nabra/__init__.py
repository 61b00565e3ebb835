"""nabra: stance and sentiment of statements in Arabic news."""

__version__ = "0.1.0"


def __getattr__(name):
    # `from nabra import StanceClassifier` without importing torch at `import nabra`
    if name == "StanceClassifier":
        from nabra.train.predict import StanceClassifier

        return StanceClassifier
    raise AttributeError(name)
