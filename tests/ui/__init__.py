"""Dashboard tests: Pilot, snapshots, rows, hostile names."""
