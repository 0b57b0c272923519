"""Renderers for reports: a table for people, JSON for scripts."""
