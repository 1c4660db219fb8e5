"""The domain vocabulary every other package speaks: models, exceptions, roles, the catalogue and the classifier."""
