"""Figures and documents made from runs."""
