"""Recognizers of this group."""
