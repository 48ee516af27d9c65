"""Test support: broker tools and helpers shared by test modules (no tests here)."""
