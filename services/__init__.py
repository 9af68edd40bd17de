"""Rapport's four services. Each is a package that never imports another."""
