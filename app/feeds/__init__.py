"""Upstream feeds: one per API process, publishing every new event into the hub."""
