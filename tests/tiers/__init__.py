"""Tests of the level-0 tier (graph analysis, platforms, predictions, efficiency, CLI)."""
