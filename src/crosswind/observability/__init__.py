"""Counters the engines increment; exporters and progress displays only read them."""
