"""Helpers of the conformance kit that run in children: importable without pytest."""
