"""Prompt executions: writing them, their minute and hour rollups, the incremental refresh, and spike detection."""
