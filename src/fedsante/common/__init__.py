"""Shared by every layer: errors, keys and signatures (canonical JSON, Ed25519, SHA-256)."""
