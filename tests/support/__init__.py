"""Helpers the tests import: settings, databases, polling, actors, AppTest and browser helpers.

Fixtures live in ``conftest.py`` files; nothing here is a fixture and nothing here imports a conftest.
"""
