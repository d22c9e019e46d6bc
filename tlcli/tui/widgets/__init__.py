"""Widgets of the dashboard, one area per module; each shows a `RunState` bound from its screen."""
